"""The node summary (PROTOCOL.md §3.5): records round-trip through the wire, the agent builds
them as a per-unit reading of its windows would, they fit the issue's 64 bytes per GPU, an
agent on real sockets publishes them and our client keeps them; a jump in a summary's seq is
no loss, and a kind the client does not know is ignored, not an error (§8)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

import msgpack
import numpy as np
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from cuagent import Engine, MockDevice, wire
from cuagent.client import Client
from cuagent.node.agent import Agent, AgentConfig
from cuagent.node.summary import SummaryBuilder, SummaryPublisher
from cuagent.topology import CounterInfo, CounterStat, DeviceState, DeviceTopology, PartitionInfo
from cuagent.wire.summary import (GROUPS, MAX_GROUPS, NO_WINDOW, RECORD_DTYPE, RECORD_SIZE, STATES, WINDOW,
                                  empty_records)
from feed_support import WAIT_S, request, start_agent, wait_until
from protocol_checker import FeedChecker
from test_client import FakeUpstream

FLOATS = ("idle_units", "sm_active", "mem_used", "power", "temp")
COUNTS = ("idle", "active", "saturated", "thrashing")
NOW = 1_790_000_000_000_000_000


def same_records(a: np.ndarray, b: np.ndarray) -> None:
    """Field by field, NaN equal to NaN (assert_array_equal's rule)."""
    assert len(a) == len(b)
    for name in RECORD_DTYPE.names:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


# --------------------------------------------------------------------------- encoding

f32 = st.floats(width=32, allow_nan=True, allow_infinity=False)


@st.composite
def records(draw: Any) -> np.ndarray:
    n = draw(st.integers(0, 20))
    rec = np.zeros(n, RECORD_DTYPE)
    for i in range(n):
        for name in FLOATS:
            rec[name][i] = draw(f32)
        for name in ("age_ms", "units", *COUNTS):
            rec[name][i] = draw(st.integers(0, 0xFFFF))
        for name in ("status", "flags", "groups"):
            rec[name][i] = draw(st.integers(0, 255))
        rec["group_idle"][i] = draw(st.lists(st.integers(0, 255), min_size=MAX_GROUPS, max_size=MAX_GROUPS))
    return rec


@settings(max_examples=200, deadline=None)
@given(records())
def test_records_round_trip_byte_for_byte(rec):
    raw = wire.pack(wire.encode_summary_body(rec))
    got = wire.decode_summary_body(wire.unpack(raw))
    assert got.layout == 1 and len(got) == len(rec)
    assert got.records.tobytes() == rec.tobytes()  # NaN payloads included
    same_records(got.records, rec)


def test_rows_say_absent_for_nan_and_clear_flags():
    rec = empty_records(2)
    rec["units"] = 132
    rec["idle_units"][1], rec["age_ms"][1], rec["flags"][1] = 7.5, 12, WINDOW | STATES | GROUPS
    rec["idle"][1], rec["groups"][1], rec["group_idle"][1][:3] = 7, 3, [1, 2, 3]
    rec["status"][0] = 1
    rows = wire.Summary(rec).rows()
    assert rows[0]["status"] == "lost" and rows[0]["age_ms"] is None and rows[0]["idle"] is None
    assert rows[0]["idle_units"] is None and rows[0]["group_idle"] is None and rows[0]["units"] == 132
    assert rows[1]["status"] == "ok" and rows[1]["age_ms"] == 12 and rows[1]["idle_units"] == 7.5
    assert rows[1]["idle"] == 7 and rows[1]["active"] == 0 and rows[1]["group_idle"] == [1, 2, 3]
    assert rows[1]["sm_active"] is None  # NaN: absent, never 0


def test_a_larger_record_is_read_through_its_first_47_bytes():
    # A later agent may append fields (§3.5): same layout, larger size.
    rec = empty_records(3)
    rec["units"], rec["idle_units"] = [10, 20, 30], [1.0, 2.0, 3.0]
    wide = b"".join(rec[i:i + 1].tobytes() + b"\xab" * 9 for i in range(3))
    got = wire.decode_summary_body({"layout": 1, "size": RECORD_SIZE + 9, "records": wide})
    same_records(np.array(got.records, RECORD_DTYPE), rec)


@pytest.mark.parametrize("body, field", [
    ({"layout": 2, "size": 47, "records": b""}, "sum.layout"),
    ({"layout": True, "size": 47, "records": b""}, "sum.layout"),
    ({"layout": 1, "size": 46, "records": b""}, "sum.size"),
    ({"layout": 1, "size": 47, "records": b"x" * 48}, "sum.records"),
    ({"layout": 1, "size": 47, "records": "text"}, "sum.records"),
    ({"layout": 1, "size": 47}, "sum.records"),
    ([1, 2], "sum"),
])
def test_bad_bodies_name_the_field(body, field):
    with pytest.raises(wire.ProtocolError) as e:
        wire.decode_summary_body(body)
    assert e.value.field == field


def test_the_dtype_is_the_documented_layout():
    # PROTOCOL.md §3.5's table, offset by offset, and its struct format.
    table = [("idle_units", 0, "<f4"), ("sm_active", 4, "<f4"), ("mem_used", 8, "<f4"), ("power", 12, "<f4"),
             ("temp", 16, "<f4"), ("age_ms", 20, "<u2"), ("units", 22, "<u2"), ("idle", 24, "<u2"),
             ("active", 26, "<u2"), ("saturated", 28, "<u2"), ("thrashing", 30, "<u2"), ("status", 32, "u1"),
             ("flags", 33, "u1"), ("groups", 34, "u1")]
    for name, offset, fmt in table:
        dt, off = RECORD_DTYPE.fields[name][:2]
        assert (off, dt) == (offset, np.dtype(fmt)), name
    dt, off = RECORD_DTYPE.fields["group_idle"][:2]
    assert off == 35 and dt.shape == (12,) and dt.base == np.dtype("u1")
    assert RECORD_DTYPE.itemsize == RECORD_SIZE == 47
    doc = (Path(__file__).resolve().parents[1] / "docs" / "PROTOCOL.md").read_text()
    assert '"<5f6H3B12B"' in doc


# --------------------------------------------------------------------------- the builder

@st.composite
def device_windows(draw: Any) -> tuple[DeviceTopology, Optional[DeviceState], bool, int]:
    units = draw(st.integers(1, 300))
    n_groups = draw(st.integers(0, 20))
    levels = ["gpc", "sm"] if n_groups else ["sm"]
    counts = {"gpc": n_groups, "sm": units} if n_groups else {"sm": units}
    layout = {}
    if n_groups and draw(st.booleans()):  # known layout; some units beyond the groups (unplaced)
        layout["gpc"] = np.array(draw(st.lists(st.integers(0, n_groups + 1), min_size=units, max_size=units)),
                                 np.uint16)
    d = DeviceTopology(id="GPU-x", index=0, vendor="nvidia", model="m", backend="test", unit="sm", units=units,
                       levels=levels, layout=layout, layout_source="probe" if layout else "none", counts=counts,
                       partitions=[PartitionInfo("0", "whole", units, 1 << 30)], memory_bytes=1 << 30,
                       counters={"active": CounterInfo("sm", "ratio")})
    lost = draw(st.booleans())
    if draw(st.integers(0, 5)) == 0:
        return d, None, lost, NOW
    where = draw(st.sampled_from(["sm", "gpc", None] if n_groups else ["sm", None]))
    levels_map: dict[str, Any] = {}
    if where is not None:
        n = units if where == "sm" else n_groups
        states = np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), np.uint8)
        a = np.zeros(n, np.float32)
        levels_map[where] = {"active": CounterStat(a, a), "state": states}
    device = {k: draw(f32) for k in draw(st.sets(st.sampled_from(["sm_active", "mem_used", "power", "temp"])))}
    idle = draw(st.none() | f32)
    age_ns = draw(st.integers(0, 100_000 * 10**6))
    state = DeviceState(device_id=d.id, index=0, window_seq=1, t_ns=NOW - age_ns, window_ns=100_000_000,
                        samples=1, levels=levels_map, groups={}, partition={}, device=device, idle_units=idle)
    return d, state, lost, NOW


def reference(d: DeviceTopology, s: Optional[DeviceState], lost: bool, now_ns: int) -> np.ndarray:
    """The record PROTOCOL.md §3.5 describes, unit by unit (slow and plain on purpose)."""
    r = empty_records(1)
    r["units"], r["status"] = d.units, 1 if lost else 0
    r["groups"] = d.counts[d.levels[0]] if len(d.levels) > 1 else 0
    if s is None:
        return r
    r["age_ms"] = min(65534, (now_ns - s.t_ns) // 1_000_000)
    r["flags"] = WINDOW
    if lost:
        return r
    r["idle_units"] = math.nan if s.idle_units is None else s.idle_units
    for k in ("sm_active", "mem_used", "power", "temp"):
        r[k] = s.device.get(k, math.nan)
    unit_state: Optional[list[Optional[int]]] = None
    if "sm" in s.levels:
        unit_state = [int(x) for x in s.levels["sm"]["state"]]
    elif "gpc" in s.levels and "gpc" in d.layout:
        gs = s.levels["gpc"]["state"]
        unit_state = [int(gs[a]) if a < len(gs) else None for a in d.layout["gpc"]]
    if unit_state is None:
        return r
    r["flags"] |= STATES
    for u in unit_state:
        if u is not None:
            r[COUNTS[u]] += 1
    if "gpc" in d.layout:
        r["flags"] |= GROUPS
        for unit, a in enumerate(d.layout["gpc"]):
            if a < min(d.counts["gpc"], MAX_GROUPS) and unit_state[unit] == 0:
                r["group_idle"][0][a] += 1
    return r


@settings(max_examples=300, deadline=None)
@given(st.lists(device_windows(), min_size=1, max_size=6))
def test_the_builder_reads_windows_as_the_page_says(devices):
    topology = [d for d, _, _, _ in devices]
    topology = [DeviceTopology(**{**d.__dict__, "id": f"GPU-{i}"}) for i, d in enumerate(topology)]
    snapshot = [None if s is None else DeviceState(**{**s.__dict__, "device_id": f"GPU-{i}"})
                for i, (_, s, _, _) in enumerate(devices)]
    lost = {f"GPU-{i}" for i, (_, _, is_lost, _) in enumerate(devices) if is_lost}
    got = SummaryBuilder(topology).records(snapshot, lost, NOW)
    want = np.concatenate([reference(d, s, f"GPU-{i}" in lost, NOW)
                           for i, (d, s) in enumerate(zip(topology, snapshot))])
    same_records(got, want)
    # And through the wire, unchanged.
    back = wire.decode_summary_body(wire.unpack(wire.pack(wire.encode_summary_body(got))))
    assert back.records.tobytes() == got.tobytes()


def test_a_window_of_another_device_is_not_taken_for_this_ones():
    d = DeviceTopology(id="GPU-new", index=0, vendor="nvidia", model="m", backend="test", unit="sm", units=4,
                       levels=["sm"], layout={}, layout_source="none", counts={"sm": 4},
                       partitions=[PartitionInfo("0", "whole", 4, 1)], memory_bytes=1, counters={})
    old = DeviceState(device_id="GPU-old", index=0, window_seq=1, t_ns=NOW, window_ns=1, samples=1, levels={},
                      groups={}, partition={}, device={"power": 5.0}, idle_units=1.0)
    rec = SummaryBuilder([d]).records([old], (), NOW)
    assert rec["flags"][0] == 0 and rec["age_ms"][0] == NO_WINDOW and math.isnan(rec["power"][0])


def test_the_publisher_sends_every_nth_window_and_status_changes_at_once():
    d = DeviceTopology(id="GPU-0", index=0, vendor="nvidia", model="m", backend="test", unit="sm", units=4,
                       levels=["sm"], layout={}, layout_source="none", counts={"sm": 4},
                       partitions=[PartitionInfo("0", "whole", 4, 1)], memory_bytes=1, counters={})
    topology = [d]

    def window(k: int) -> list[Optional[DeviceState]]:
        return [DeviceState(device_id="GPU-0", index=0, window_seq=k, t_ns=NOW + k * 10**8, window_ns=10**8,
                            samples=1, levels={}, groups={}, partition={}, device={}, idle_units=2.0)]

    pub = SummaryPublisher(3)
    assert pub.due(topology, [None], (), 1, NOW) is None  # nothing measured yet
    sent = [k for k in range(1, 11) if pub.due(topology, window(k), (), 1, NOW + k * 10**8) is not None]
    assert sent == [1, 4, 7, 10]  # the first window, then every third
    assert pub.due(topology, window(10), (), 1, NOW) is None  # the same window again: nothing new
    body = pub.due(topology, None, {"GPU-0"}, 1, NOW)  # a status change: at once, last windows
    assert body is not None and wire.decode_summary_body(body).records["status"][0] == 1
    assert pub.due(topology, None, {"GPU-0"}, 1, NOW) is None
    assert pub.due(topology, None, {"GPU-0"}, 2, NOW) is not None  # a new gen: at once
    assert SummaryPublisher(0).due(topology, window(1), (), 1, NOW) is None


# --------------------------------------------------------------------------- size on the wire

def zmtp_bytes(frames: list[bytes]) -> int:
    """A ZMTP 3 message on the wire: per frame a flags byte and a 1-byte size (up to 255
    bytes) or an 8-byte one, then the frame."""
    return sum(len(f) + (2 if len(f) <= 255 else 9) for f in frames)


@pytest.mark.parametrize("gpus", [8, 16])
def test_a_summary_costs_at_most_64_bytes_per_gpu_on_the_wire(gpus):
    # A busy H100 node: all eight (or sixteen) GPUs measured, a realistic node name, a 64-bit
    # epoch and a day's worth of seqs.
    from test_protocol import h100_device

    topology = [h100_device(f"GPU-{i:08x}-1111-2222-3333-444455556666") for i in range(gpus)]
    rng = np.random.default_rng(1)
    snapshot = []
    for d in topology:
        a = rng.random(d.units, dtype=np.float32)
        snapshot.append(DeviceState(device_id=d.id, index=0, window_seq=1, t_ns=NOW, window_ns=100_000_000,
                                    samples=100, levels={"sm": {"active": CounterStat(a, a),
                                                                "state": (a >= 0.05).astype(np.uint8)}},
                                    groups={}, partition={}, device={"sm_active": 0.5, "mem_used": 3e10,
                                                                      "power": 600.0, "temp": 70.0},
                                    idle_units=float((1 - a).sum())))
    body = wire.encode_summary_body(SummaryBuilder(topology).records(snapshot, (), NOW + 10**6))
    node = "gpu-node-00042"
    header = wire.Header(node, 0xF00DFACE12345678, 864_000, NOW + 10**6, 3)
    frames = wire.encode_frames(wire.build_topic("sum", node), header, body)
    per_gpu = zmtp_bytes(frames) / gpus
    assert per_gpu <= 64, f"{per_gpu:.1f} bytes per GPU"
    # Against what the same windows cost as state messages (the reason the topic exists).
    states = [wire.encode_frames(wire.build_topic("state", node, d.id), header, wire.encode_state_body(s, d.counters))
              for d, s in zip(topology, snapshot)]
    assert sum(map(zmtp_bytes, states)) / gpus > 10 * per_gpu


# --------------------------------------------------------------------------- the agent, live

def _states_by_window(updates: list) -> dict[tuple[str, int], wire.State]:
    return {(u.device, u.header.ts): u.body for u in updates if u.kind == "state"}


def test_an_agent_on_loopback_tcp_publishes_summaries_the_client_keeps():
    engine = Engine(driver="mock", devices=[MockDevice("h100-sxm", scenario="fragmented"),
                                            MockDevice("mi300x", scenario="training"),
                                            MockDevice("a100-sxm", scenario="thrashing")],
                    rate_hz=200, window_ms=50, seed=4)
    agent = Agent(engine, AgentConfig(node="sum-a", feed="tcp://127.0.0.1:*", sync="tcp://127.0.0.1:*",
                                      publish_interval_ms=50))
    engine.start()
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    client = Client([f"{agent.feed_endpoint},{agent.sync_endpoint}"], context=zmq.Context.instance())
    updates: list = []
    client.on_update(updates.append)
    try:
        assert client.wait_ready(WAIT_S)
        wait_until(lambda: sum(u.kind == "sum" for u in updates) >= 6, step=lambda: client.poll(0.05) and None,
                   what="six summaries")
    finally:
        agent.stop()
        thread.join(WAIT_S)
        engine.stop()
        agent.close()
    client.poll(0.2)
    ids = ["mock-0", "mock-1", "mock-2"]
    summary = client.view.summaries["sum-a"]
    assert summary.devices == tuple(ids) and summary.gen == 1
    states = _states_by_window(updates)
    checked = 0
    for u in [u for u in updates if u.kind == "sum"]:
        ns = u.body
        assert ns.devices == tuple(ids) and len(ns.records) == 3
        for i, device in enumerate(ids):
            r = ns.records[i]
            assert r["status"] == 0, r
            if not r["flags"] & WINDOW:  # no window of it yet when the first one was made
                assert r["flags"] == 0 and r["age_ms"] == NO_WINDOW and math.isnan(r["idle_units"]), r
                continue
            assert r["flags"] & STATES, r
            # The window it summarises is a state the agent sent: the one that ended age_ms
            # (floored) before the summary.
            ends = [ts for (dev, ts) in states if dev == device and 0 <= ns.ts - ts - int(r["age_ms"]) * 10**6 < 10**6]
            if not ends:
                continue  # its state was sent before this client joined
            s = states[(device, ends[0])]
            assert r["idle_units"] == np.float32(s.idle_units)
            for k in ("sm_active", "mem_used", "power", "temp"):
                assert r[k] == np.float32(s.device[k]) if k in s.device else math.isnan(r[k])
            dv = client.view.device("sum-a", device)
            level = next(lv for lv in reversed(dv.topology.levels) if "state" in s.levels.get(lv, {}))
            assert level == dv.topology.unit  # the mock measures per unit
            counts = np.bincount(s.levels[level]["state"], minlength=4)
            assert [int(r[k]) for k in COUNTS] == counts.tolist()
            gpc = dv.topology.layout[dv.topology.levels[0]]
            idle_per_group = np.bincount(gpc[s.levels[level]["state"] == 0], minlength=MAX_GROUPS)[:MAX_GROUPS]
            assert r["group_idle"].tolist() == idle_per_group.tolist()
            checked += 1
    assert checked >= 6, checked
    # The cluster-wide helpers: one row per device, named.
    table = client.view.summaries.table()
    assert len(table) == 3 and [table.device_id(i) for i in range(3)] == ids and table.nodes == ["sum-a"]
    np.testing.assert_array_equal(client.view.summaries.idle_units(), summary.records["idle_units"])
    # (No gap check: a window the agent missed on a starved machine is an honest gap.)
    assert client.stats.decode_errors == 0 and client.stats.unknown_kinds == 0 and client.stats.resyncs == 0
    client.close()


@pytest.mark.parametrize("every", [0, 3])
def test_summary_every_sets_the_rate(tmp_path, every):
    agent = start_agent(tmp_path, f"every-{every}", "h100-sxm:idle", "--summary-every", str(every))
    try:
        wait_until(lambda: msgpack.unpackb(request(agent.sync, {"op": "snapshot"}))["seqs"]
                   .get(f"cua1/state/every-{every}/mock-0/", 0) >= 30, what="30 windows")
        seqs = msgpack.unpackb(request(agent.sync, {"op": "snapshot"}))["seqs"]
    finally:
        assert agent.stop() == 0, agent.log()
    states, sums = seqs[f"cua1/state/every-{every}/mock-0/"], seqs.get(f"cua1/sum/every-{every}/", 0)
    if every == 0:
        assert sums == 0, seqs
    else:
        # The first window, then every third (a missed window skips a state seq, not a count).
        # A missed window skips a state seq but is no window to count: fewer summaries then.
        assert states / 6 <= sums <= states / 3 + 2, (states, sums)


def test_the_cli_shows_summaries(tmp_path):
    agent = start_agent(tmp_path, "cli-sum", "h100-sxm:fragmented,mi300x:training")
    try:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        snap = subprocess.run([sys.executable, "-m", "cuagent.cli", "snapshot", "--summary", "--compact", agent.endpoint],
                              capture_output=True, text=True, timeout=60, env=env)
        assert snap.returncode == 0, snap.stderr
        out = json.loads(snap.stdout)
        devices = out["nodes"]["cli-sum"]["devices"]
        assert [d["id"] for d in devices] == ["mock-0", "mock-1"] and devices[0]["units"] == 132
        assert devices[1]["groups"] == 8 and len(devices[1]["group_idle"]) == 8
        watch = subprocess.run([sys.executable, "-m", "cuagent.cli", "watch", "--summary", "--count", "2", agent.endpoint],
                               capture_output=True, text=True, timeout=60, env=env)
        assert watch.returncode == 0, watch.stderr
        lines = [json.loads(x) for x in watch.stdout.splitlines()]
        assert len(lines) == 2 and all(x["topic"] == "cua1/sum/cli-sum/" for x in lines)
        assert lines[0]["body"]["devices"][0]["status"] == "ok"
    finally:
        assert agent.stop() == 0, agent.log()


# --------------------------------------------------------------------------- the client's rules

def _join(up: FakeUpstream, client: Client) -> None:
    def step():
        up.serve()
        client.poll(0.02)

    wait_until(lambda: client.ready, step=step, what="join")


def _summary_body(n: int, idle: float = 1.0) -> dict:
    rec = empty_records(n)
    rec["units"], rec["idle_units"], rec["flags"], rec["age_ms"] = 132, idle, WINDOW, 0
    return wire.encode_summary_body(rec)


def test_a_jump_in_a_summary_seq_is_no_loss(tmp_path):
    # A relay may forward only some summaries (§3.5): the client applies the newest, never
    # resynchronises for the jump, and does not count it (nor the hb's seq) as a gap.
    from test_protocol import AGENT, h100_device

    up = FakeUpstream(tmp_path)
    client = Client([f"{up.feed},{up.sync}"])
    try:
        up.send("topo", "node-a", wire.encode_topo_body([h100_device()], AGENT))
        up.send("sum", "node-a", _summary_body(1, 3.0))
        _join(up, client)
        assert client.view.summaries["node-a"].seq == 1
        up.seqs["cua1/sum/node-a/"] = 4  # three the relay did not forward
        up.send("sum", "node-a", _summary_body(1, 5.0))
        wait_until(lambda: client.view.summaries["node-a"].seq == 5, step=lambda: client.poll(0.02) and None,
                   what="the fifth summary")
        hb = "cua1/hb/node-a/"
        up.send("hb", "node-a", wire.encode_hb_body({hb: 1, "cua1/topo/node-a/": 1, "cua1/sum/node-a/": 9}, 1.0, 0, 1.0))
        wait_until(lambda: client.view.nodes["node-a"].heartbeat is not None, step=lambda: client.poll(0.02) and None,
                   what="the heartbeat")
        assert client.view.summaries["node-a"].records["idle_units"][0] == 5.0
        assert client.view.summaries["node-a"].devices == ("mock-0",)
        s = client.stats
        assert (s.gaps, s.gap_events, s.resyncs, s.summaries_skipped, s.decode_errors) == (0, 0, 0, 3, 0), s
    finally:
        client.close()
        up.close()


def test_a_summary_of_another_gen_has_no_device_ids_and_a_restart_forgets_it(tmp_path):
    from test_protocol import AGENT, h100_device

    up = FakeUpstream(tmp_path)
    client = Client([f"{up.feed},{up.sync}"])
    try:
        up.send("topo", "node-a", wire.encode_topo_body([h100_device()], AGENT))
        _join(up, client)
        topic = wire.build_topic("sum", "node-a")
        up.pub.send_multipart(wire.encode_frames(topic, wire.Header("node-a", 5, 2, time.time_ns(), 2), _summary_body(4)))
        wait_until(lambda: "node-a" in client.view.summaries, step=lambda: client.poll(0.02) and None,
                   what="the summary")
        assert client.view.summaries["node-a"].devices is None and len(client.view.summaries["node-a"].records) == 4
        with pytest.raises(KeyError):
            client.view.summaries["node-a"].record("mock-0")
        up.send("hb", "node-a", wire.encode_hb_body({}, 1.0, 0, 1.0), epoch=6)  # a restart
        wait_until(lambda: client.stats.restarts >= 1, step=lambda: (up.serve(), client.poll(0.02)) and None,
                   what="the restart")
        assert "node-a" not in client.view.summaries
    finally:
        client.close()
        up.close()


def test_our_client_ignores_kinds_it_does_not_know(tmp_path):
    # §8: a newer agent's kind, on the feed and in a snapshot, is ignored and counted, not an
    # error; everything else goes on.
    from test_protocol import AGENT, h100_device

    up = FakeUpstream(tmp_path)
    future = "cua1/forecast/node-a/"
    frames = [future.encode(), wire.encode_header(wire.Header("node-a", 5, 1, time.time_ns(), 1)),
              wire.pack({"whatever": [1, 2, 3]})]
    up.latest[future] = frames
    up.seqs[future] = 1
    client = Client([f"{up.feed},{up.sync}"])
    try:
        up.send("topo", "node-a", wire.encode_topo_body([h100_device()], AGENT))
        _join(up, client)
        up.pub.send_multipart([future.encode(), frames[1], frames[2]])
        up.send("hb", "node-a", wire.encode_hb_body({"cua1/hb/node-a/": 1, future: 7}, 1.0, 0, 1.0))
        wait_until(lambda: client.view.nodes["node-a"].heartbeat is not None, step=lambda: client.poll(0.02) and None,
                   what="the heartbeat after the unknown kind")
        s = client.stats
        assert s.unknown_kinds >= 2 and s.decode_errors == 0 and s.gaps == 0 and s.resyncs == 0, s
        # A malformed topic is still an error, not an unknown kind.
        up.pub.send_multipart([b"cua1/Bad Kind/node-a/", frames[1], frames[2]])
        wait_until(lambda: client.stats.decode_errors == 1, step=lambda: client.poll(0.02) and None,
                   what="the bad topic counted")
    finally:
        client.close()
        up.close()


def test_the_independent_checker_ignores_unknown_kinds_and_reads_summaries():
    from test_protocol import AGENT, frames, h100_device

    checker = FeedChecker()
    dev = h100_device()
    checker.feed(frames("topo", wire.encode_topo_body([dev], AGENT)))
    a = np.linspace(0, 1, dev.units, dtype=np.float32)
    st_ = DeviceState(device_id=dev.id, index=0, window_seq=1, t_ns=NOW, window_ns=10**8, samples=1,
                      levels={"sm": {"active": CounterStat(a, a), "state": (a >= 0.05).astype(np.uint8)}}, groups={},
                      partition={}, device={"power": 300.0}, idle_units=float((1 - a).sum()))
    rec = SummaryBuilder([dev]).records([st_], (), NOW + 5 * 10**6)
    kind, *_ = checker.feed(frames("sum", wire.encode_summary_body(rec)))
    assert kind == "sum" and checker.counts["sum"] == 1
    _, records = checker.summaries["node-a"]
    assert records[0]["idle"] == int((a < 0.05).sum()) and records[0]["age_ms"] == 5 and records[0]["power"] == 300.0
    assert math.isnan(records[0]["temp"])
    header = wire.encode_header(wire.Header("node-a", 77, 1, NOW, 1))
    assert checker.feed([b"cua1/forecast/node-a/", header, wire.pack({})])[0] == "forecast"
    assert checker.counts["unknown"] == 1
    # Not vacuous: a record that says more idle units per group than it has idle units.
    bad = rec.copy()
    bad["group_idle"][0][0] = 200
    from protocol_checker import ProtocolViolation
    with pytest.raises(ProtocolViolation, match="group_idle"):
        checker.feed(frames("sum", wire.encode_summary_body(bad), seq=2))


def test_a_relay_serves_the_latest_summary_in_its_snapshot(tmp_path):
    from feed_support import start_relay

    agent = start_agent(tmp_path, "node-r", "h100-sxm:fragmented")
    relay = start_relay(tmp_path, "relay-r", agent.endpoint)
    try:
        topic = "cua1/sum/node-r/"
        wait_until(lambda: topic in {m[0] for m in msgpack.unpackb(request(relay.sync, {"op": "snapshot"}))["messages"]},
                   what="the summary in the relay's snapshot")
        reply = request(relay.sync, {"op": "snapshot", "prefix": "cua1/"})
        snap = FeedChecker().snapshot_reply(reply)
        (msg,) = [m for m in snap["messages"] if m[0] == topic]
        assert msg[1]["seq"] == snap["seqs"][topic]
        assert wire.decode_summary_body(msg[2]).records["units"].tolist() == [132]
    finally:
        assert relay.stop() == 0, relay.log()
        assert agent.stop() == 0, agent.log()
