"""`cuagent fleet`: many nodes from one process make a valid feed — for the independent protocol
checker and for our Client, directly and through a relay — with per-node epochs and seqs, and
snapshots consistent with the feed for a client that joins mid-stream. Small fleets, real
processes on ipc, bounded waits, no timing assertions."""

from __future__ import annotations

import struct
import subprocess
import sys
from collections import defaultdict

import msgpack
import numpy as np
import pytest

from cuagent.client import Client
from feed_support import (WAIT_S, CheckedFeed, Proc, Recorder, _env, drain_quiet, request, start_relay,
                          wait_until)
from protocol_checker import FeedChecker

PERIOD_NS = 100_000_000  # --rate-hz 10


def start_fleet(tmp, nodes: int = 3, gpus: int = 2, *extra: str, name: str = "fleet") -> Proc:
    feed, sync = f"ipc://{tmp}/{name}.feed", f"ipc://{tmp}/{name}.sync"
    args = ["fleet", "--nodes", str(nodes), "--gpus", str(gpus), "--rate-hz", "10", "--name", name,
            "--feed", feed, "--sync", sync, "--hb-interval-s", "0.3", "--topo-interval-s", "1",
            "--record-windows", "3", "--log-level", "info", *extra]
    proc = Proc(args, feed, sync, tmp / f"{name}.log")
    proc.wait_ping(timeout=WAIT_S * 2)  # it records a mock engine's windows before it binds
    return proc


@pytest.mark.parametrize("profile", ["sm", "device"])
def test_every_node_is_a_valid_agent_feed(tmp_path, profile):
    fleet = start_fleet(tmp_path, 3, 2, "--profile", profile)
    checked = CheckedFeed(fleet)  # joins by snapshot; every later message goes through the checker
    from_snapshot = len(checked.messages)
    client = Client([fleet.endpoint])
    try:
        ping = msgpack.unpackb(request(fleet.sync, {"op": "ping"}))
        assert ping["ok"] and ping["fleet"]["nodes"] == 3 and ping["fleet"]["profile"] == profile
        nodes = [f"fleet-{i:05d}" for i in range(3)]

        def enough(c: CheckedFeed) -> bool:
            return all(sum(1 for m in c.of("state") if m[1] == n) >= 2 * 12 and
                       sum(1 for m in c.of("topo") if m[1] == n) >= 2 and
                       sum(1 for m in c.of("hb") if m[1] == n) >= 3 for n in nodes)

        checked.wait(enough, "12 windows, 2 topos and 3 heartbeats of every node")
        msgs = checked.messages
        # Each node its own epoch, every header of the node carrying it; gen 1 throughout.
        epochs = {n: {m[3]["epoch"] for m in msgs if m[1] == n} for n in nodes}
        assert all(len(e) == 1 for e in epochs.values()), epochs
        assert len({next(iter(e)) for e in epochs.values()}) == 3
        assert {m[3]["gen"] for m in msgs} == {1}
        # A node's devices share one window: the same seq and ts. Seqs advance one per window,
        # and where the publisher missed windows the seq skips exactly as many as ts does.
        by_topic = defaultdict(list)
        for kind, node, device, header, body in msgs:
            if kind == "state":
                by_topic[(node, device)].append(header)
        assert {k[0] for k in by_topic} == set(nodes) and len(by_topic) == 6
        for (node, device), headers in by_topic.items():
            for a, b in zip(headers, headers[1:]):
                assert b["seq"] - a["seq"] == round((b["ts"] - a["ts"]) / PERIOD_NS) >= 1, (node, device, a, b)
            twin = by_topic[(node, "mock-1" if device == "mock-0" else "mock-0")]
            # (The last poll may have ended between a window's two devices.)
            assert {(h["seq"], h["ts"]) for h in headers[:-1]} <= {(h["seq"], h["ts"]) for h in twin}
        # A heartbeat lists the last seq of each of its node's topics, its own included.
        last: dict[str, int] = dict(checked.snap_seqs)
        for kind, node, device, header, body in msgs[from_snapshot:]:
            topic = f"cua1/{kind}/{node}/" + (f"{device}/" if device else "")
            last[topic] = header["seq"]
            if kind == "hb":
                assert set(body["seqs"]) == {f"cua1/topo/{node}/", f"cua1/hb/{node}/", f"cua1/sum/{node}/",
                                             f"cua1/state/{node}/mock-0/", f"cua1/state/{node}/mock-1/"}
                for t, seq in body["seqs"].items():
                    if t in last:
                        assert seq == last[t], (t, seq, last[t])
        # What the profile says a device is.
        topo = next(m[4] for m in msgs if m[0] == "topo")
        state = next(m[4] for m in reversed(msgs) if m[0] == "state")
        if profile == "device":
            dev = topo["devices"][0]
            assert dev["levels"] == ["sm"] and "layout" not in dev and dev["layout_source"] == "none"
            assert {c["level"] for c in dev["counters"].values()} <= {"partition", "device"}
            assert "levels" not in state
            assert state["idle_units"] == pytest.approx((1 - state["device"]["sm_active"]) * dev["units"])
        else:
            assert topo["devices"][0]["levels"] == ["gpc", "tpc", "sm"] and "sm" in state["levels"]

        # Our Client follows all of it: every device of every node has a window, nothing undecodable.
        assert client.wait_ready(WAIT_S)
        wait_until(lambda: sum(dv.state is not None for nv in client.view.nodes.values()
                               for dv in nv.devices.values()) == 6,
                   step=lambda: client.poll(0.05) and None, what="the client to hold every device's window")
        assert client.stats.decode_errors == 0 and client.stats.restarts == 0
        assert {n: {client.epochs[n]} for n in nodes} == epochs
    finally:
        client.close()
        checked.close()
        fleet.stop()


def test_a_client_joining_mid_stream_gets_a_snapshot_consistent_with_the_feed(tmp_path):
    fleet = start_fleet(tmp_path, 4, 2)
    rec = Recorder(fleet.feed)  # the ground truth: everything sent from (nearly) the start
    client = None
    try:
        # Until every node has re-published its topo (each 1 s): the recorder then holds the
        # latest message of every topic the snapshot can serve.
        wait_until(lambda: len({f[0] for f in rec.frames if f[0].startswith(b"cua1/topo/")}) == 4,
                   step=lambda: rec.drain(50) and None, what="a topo of every node")
        reply = request(fleet.sync, {"op": "snapshot"})
        checker = FeedChecker()
        snap = checker.snapshot_reply(reply)
        rec.drain(200)
        sent = {(f[0].decode(), msgpack.unpackb(f[1])["seq"]): f for f in rec.frames}
        # Every message in the snapshot is the one the feed carried with that seq, map for map,
        # and is its topic's latest at the snapshot's seqs.
        assert len(snap["messages"]) == 4 * (1 + 2 + 1)  # topo, 2 states and the summary of each node
        for topic, header, body in snap["messages"]:
            assert snap["seqs"][topic] == header["seq"]
            frames = sent[(topic, header["seq"])]
            assert msgpack.unpackb(frames[1]) == header and msgpack.unpackb(frames[2]) == body
        assert {t for t in snap["seqs"] if t.startswith("cua1/hb/")} == {f"cua1/hb/fleet-{i:05d}/" for i in range(4)}
        assert {t for t in snap["seqs"] if t.startswith("cua1/sum/")} == {f"cua1/sum/fleet-{i:05d}/" for i in range(4)}
        assert set(snap["epochs"]) == {f"fleet-{i:05d}" for i in range(4)}
        # One node's prefix: that node's epoch, as its own agent would answer.
        one = msgpack.unpackb(request(fleet.sync, {"op": "snapshot", "prefix": "cua1/state/fleet-00002/"}))
        assert one["epoch"] == snap["epochs"]["fleet-00002"]
        assert {m[0] for m in one["messages"]} == {"cua1/state/fleet-00002/mock-0/", "cua1/state/fleet-00002/mock-1/"}

        # A client joining now ends, once the fleet stops, where the feed ended, with no
        # more gaps than the feed itself had (windows the publisher missed).
        client = Client([fleet.endpoint])
        assert client.wait_ready(WAIT_S)
        wait_until(lambda: all(dv.state is not None for nv in client.view.nodes.values() for dv in nv.devices.values())
                   and len(client.view.nodes) == 4, step=lambda: client.poll(0.05) and None,
                   what="the late client to hold every device")
        assert fleet.stop() == 0, fleet.log()
        drain_quiet(lambda: rec.drain() + len(client.poll(0.0)))
        last: dict[str, dict] = {}
        feed_gaps = 0
        for f in rec.frames:
            h = msgpack.unpackb(f[1])
            prev = last.get(f[0].decode())
            feed_gaps += h["seq"] - prev["seq"] - 1 if prev else 0
            last[f[0].decode()] = h
        for nv in client.view.nodes.values():
            for dv in nv.devices.values():
                h = last[f"cua1/state/{nv.name}/{dv.id}/"]
                assert (dv.seq, dv.ts) == (h["seq"], h["ts"]), (nv.name, dv.id)
        assert client.stats.gaps <= feed_gaps and client.stats.decode_errors == 0
    finally:
        if client is not None:
            client.close()
        rec.close()
        fleet.kill()


def test_a_relay_follows_a_fleet_like_many_agents(tmp_path):
    fleet = start_fleet(tmp_path, 5, 2)
    relay = start_relay(tmp_path, "relay-1", fleet.endpoint)
    client = Client([relay.endpoint])
    try:
        assert client.wait_ready(WAIT_S)
        wait_until(lambda: sum(dv.state is not None for nv in client.view.nodes.values()
                               for dv in nv.devices.values()) == 10,
                   step=lambda: client.poll(0.05) and None, what="every device through the relay")
        assert sorted(client.view.nodes) == [f"fleet-{i:05d}" for i in range(5)]
        assert msgpack.unpackb(request(relay.sync, {"op": "ping"}))["nodes"] == sorted(client.view.nodes)
        snap = FeedChecker().snapshot_reply(request(relay.sync, {"op": "snapshot"}))
        assert sum(1 for m in snap["messages"] if m[0].startswith("cua1/state/")) == 10
        assert client.stats.decode_errors == 0
    finally:
        client.close()
        relay.stop()
        fleet.stop()


SUMMARY_FOLLOWER = ("cua1/sum/", "cua1/topo/", "cua1/hb/")  # ids from topo, staleness from hb


@pytest.mark.parametrize("profile", ["sm", "device"])
def test_every_node_publishes_its_summary_after_each_window(tmp_path, profile):
    """Each node's ``sum`` (§3.5) follows its states of the same window, with its own seqs
    (one per summary: none skipped), records of that window's states, listed in its
    heartbeats; the independent checker reads every record against the node's topo, and our
    Client, following summaries only, holds every node's with no gap."""
    fleet = start_fleet(tmp_path, 3, 2, "--profile", profile)
    checked = CheckedFeed(fleet)
    from_snapshot = len(checked.messages)
    client = Client([fleet.endpoint], prefixes=SUMMARY_FOLLOWER)
    try:
        nodes = [f"fleet-{i:05d}" for i in range(3)]
        checked.wait(lambda c: all(sum(1 for m in c.of("sum") if m[1] == n) >= 12 and
                                   sum(1 for m in c.of("hb") if m[1] == n) >= 3 for n in nodes),
                     "12 summaries and 3 heartbeats of every node")
        live = checked.messages[from_snapshot:]
        for node in nodes:
            sums = [m[3] for m in checked.messages if m[0] == "sum" and m[1] == node]
            # Its own seqs: one per summary sent, none skipped (a window the publisher missed
            # sends no summary), whatever the state seqs did; same epoch and gen as its states.
            assert [h["seq"] for h in sums] == list(range(sums[0]["seq"], sums[0]["seq"] + len(sums))), node
            assert {h["epoch"] for h in sums} == {m[3]["epoch"] for m in checked.messages if m[1] == node}
        # A summary comes right after its node's states of the same window, and its records
        # are what those states say: idle_units, sm_active, and the unit counts of sm levels.
        states: dict[tuple[str, str], tuple[dict, dict]] = {}
        checked_sums = 0
        for kind, node, device, header, body in live:
            if kind == "state":
                states[(node, device)] = (header, body)
            elif kind == "sum" and all((node, d) in states for d in ("mock-0", "mock-1")):
                raw = body["records"]
                for i, device in enumerate(("mock-0", "mock-1")):
                    sh, sb = states[(node, device)]
                    assert sh["ts"] == header["ts"], (node, device)  # the same window: aged 0 to it
                    rec = struct.unpack_from("<5f6H3B12B", raw, i * body["size"])
                    assert rec[0] == pytest.approx(sb["idle_units"], rel=1e-6, abs=1e-4)
                    assert rec[1] == pytest.approx(sb["device"]["sm_active"], rel=1e-6)
                    assert rec[5] == 0  # age_ms: the window ended at the header's ts
                    if profile == "sm":
                        units = np.frombuffer(sb["levels"]["sm"]["state"], np.uint8)
                        assert list(rec[7:11]) == [int((units == s).sum()) for s in range(4)]
                        assert rec[12] == 7  # flags: STATES, GROUPS, WINDOW
                    else:
                        assert rec[12] == 4 and rec[7:11] == (0, 0, 0, 0) and rec[13] == 0  # flags WINDOW only, no groups
                checked_sums += 1
        assert checked_sums >= 3 * 10
        # Heartbeats list the summary topic at the seq of the last summary sent before them.
        last_sum: dict[str, int] = {}
        for kind, node, device, header, body in live:
            if kind == "sum":
                last_sum[node] = header["seq"]
            elif kind == "hb" and node in last_sum:
                assert body["seqs"][f"cua1/sum/{node}/"] == last_sum[node]

        assert client.wait_ready(WAIT_S)
        wait_until(lambda: len(client.view.summaries) == 3 and
                   all(s.devices is not None and s.seq >= 12 for s in client.view.summaries.values()),
                   step=lambda: client.poll(0.05) and None, what="the client to hold 12 summaries of every node")
        assert sorted(client.view.summaries) == nodes
        assert all(s.devices == ("mock-0", "mock-1") for s in client.view.summaries.values())
        table = client.view.summaries.table()
        assert len(table) == 6 and not np.isnan(client.view.summaries.idle_units()).any()
        st = client.stats
        assert (st.gaps, st.summaries_skipped, st.decode_errors, st.restarts, st.resyncs) == (0, 0, 0, 0, 0), st
        assert not any(dv.state is not None for nv in client.view.nodes.values() for dv in nv.devices.values())
    finally:
        client.close()
        checked.close()
        fleet.stop()


def test_a_relay_downsamples_a_fleets_summaries_without_a_gap(tmp_path):
    """Through a relay that forwards one summary per node per 0.5 s, a summaries-only client
    holds every node's with no gap: the seqs skipped are counted as summaries not received."""
    fleet = start_fleet(tmp_path, 3, 2)
    relay = start_relay(tmp_path, "relay-sum", fleet.endpoint, extra=("--summary-interval-s", "0.5"))
    client = Client([relay.endpoint], prefixes=SUMMARY_FOLLOWER)
    try:
        assert client.wait_ready(WAIT_S)
        seen: dict[str, list[tuple[int, int]]] = defaultdict(list)
        client.on_update(lambda u: seen[u.node].append((u.header.seq, u.header.ts)) if u.kind == "sum" else None)
        wait_until(lambda: len(seen) == 3 and all(len(v) >= 4 for v in seen.values()),
                   step=lambda: client.poll(0.05) and None, what="4 summaries of every node through the relay")
        skipped = 0
        for node, got in seen.items():
            # The relay's rule: each forwarded summary's ts at least 0.5 s past the last one's
            # (about every 5th of a node's 10 Hz summaries; fewer skipped where it stalled).
            for (seq_a, ts_a), (seq_b, ts_b) in zip(got, got[1:]):
                assert seq_b > seq_a and ts_b - ts_a >= 500_000_000, (node, got)
                skipped += seq_b - seq_a - 1
        st = client.stats
        assert st.gaps == 0 and st.resyncs == 0 and st.decode_errors == 0, st
        assert st.summaries_skipped >= skipped > 0, (st, skipped)
        assert all(s.devices == ("mock-0", "mock-1") for s in client.view.summaries.values())
    finally:
        client.close()
        relay.stop()
        fleet.stop()


@pytest.mark.parametrize("flag, value, expected", [
    ("--nodes", "0", "an integer from 1 to 100000"),
    ("--gpus", "65", "an integer from 1 to 64"),
    ("--rate-hz", "nan", "a number from 0.1 to 100 Hz"),
    ("--first", "-1", "an integer from 0 to 1000000"),
    ("--profile", "nvml", "is not one of sm, device"),
    ("--name", "bad name", "expected 1 to 56 characters of [A-Za-z0-9._-]"),
    ("--hb-interval-s", "0", "a number from 0.01 to 3600 s"),
    ("--summary-every", "-1", "an integer from 0 to 1000000"),
    ("--feed", "tcp://*:70000", "port '70000' is out of range"),
    ("--mock-devices", "h100-sxm:", "expected PRESET[:SCENARIO]"),
])
def test_out_of_range_values_end_with_one_line(flag, value, expected):
    r = subprocess.run([sys.executable, "-m", "cuagent.cli", "fleet", "--duration", "5", flag, value],
                       capture_output=True, text=True, timeout=60, env=_env())
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cuagent fleet: error: "), r.stderr
    assert expected in lines[0] and flag in lines[0], lines[0]
