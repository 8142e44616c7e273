"""cuagent.protocol: encode -> decode round trips, and clear errors naming the bad field.

The encoded frames also go through tests/protocol_checker.py, the independent reading of
PROTOCOL.md, so encoder and checker must agree on every message built here."""

from __future__ import annotations

import dataclasses
import json

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cuagent import protocol as p
from protocol_checker import FeedChecker, ProtocolViolation


def h100_device(dev_id: str = "mock-0") -> p.Device:
    units = 132
    sm = np.arange(units)
    tpc = (sm // 2).astype(np.uint16)
    gpc = (tpc % 8).astype(np.uint16)
    return p.Device(
        id=dev_id, index=0, vendor="mock", model="NVIDIA H100 80GB HBM3 (mock)", backend="mock", unit="sm",
        units=units, levels=["gpc", "tpc", "sm"], counts={"gpc": 8, "tpc": 66, "sm": units},
        layout={"gpc": gpc, "tpc": tpc}, layout_source="mock",
        partitions=[p.PartitionInfo("0", "whole", units, 80 * 2**30, "")], memory_bytes=80 * 2**30,
        counters={
            "active": p.CounterInfo("sm", "ratio", "cycles with a resident warp"),
            "mem_stall": p.CounterInfo("sm", "ratio", "issue slots stalled on memory"),
            "sm_active": p.CounterInfo("partition", "ratio", "mean active"),
            "power": p.CounterInfo("device", "W", "board power"),
            "mem_used": p.CounterInfo("device", "bytes", "memory in use"),
        },
        links=[p.LinkInfo("mock-1", "nvlink", 18, "NV18")], pci="0000:01:00.0", numa=0,
    )


def h100_state(seed: int = 0) -> p.State:
    rng = np.random.default_rng(seed)
    mean = rng.random(132, dtype=np.float32)
    stall = rng.random(132, dtype=np.float32) * 0.5
    return p.State(
        window_ns=100_000_000, samples=100,
        levels={"sm": {
            "active": p.Stat(mean, np.minimum(mean + 0.1, 1).astype(np.float32)),
            "mem_stall": p.Stat(stall, stall),
            "state": (mean >= 0.05).astype(np.uint8),
        }},
        partition={"0": {"sm_active": float(mean.mean())}},
        device={"power": 512.5, "mem_used": float(2**33), "temp": float("nan")},
        idle_units=float((1 - mean).sum()),
    )


AGENT = p.AgentInfo("0.1.0", "host-a", 1234, 1_700_000_000_000_000_000)


def summary_body(dev: p.Device, state: p.State, t_ns: int = 1_700_000_000_100_000_000) -> dict:
    """The ``sum`` body of one device's window (the agent's builder, from an engine-shaped state)."""
    from cuagent.node.summary import SummaryBuilder
    from cuagent.topology import DeviceState

    window = DeviceState(device_id=dev.id, index=dev.index, window_seq=1, t_ns=t_ns, window_ns=state.window_ns,
                         samples=state.samples, levels=state.levels, groups={}, partition=state.partition,
                         device=state.device, idle_units=state.idle_units)
    return p.encode_summary_body(SummaryBuilder([dev]).records([window], (), t_ns + 23_000_000))


def frames(kind, body, seq=1, device=None, node="node-a", epoch=77, gen=1):
    return p.encode_frames(p.build_topic(kind, node, device), p.Header(node, epoch, seq, 1_700_000_000_123_000_000, gen), body)


def test_topic_round_trip_and_prefix_safety():
    t = p.build_topic("state", "node-a", "GPU-1234")
    assert t == "cua1/state/node-a/GPU-1234/"
    assert p.parse_topic(t.encode()) == p.Topic("state", "node-a", "GPU-1234")
    assert p.parse_topic("cua1/hb/n.1_x-y/") == p.Topic("hb", "n.1_x-y", None)
    # Every component ends with '/', so a node prefix never matches a longer node name.
    assert not p.build_topic("state", "node-ab", "d").startswith("cua1/state/node-a/")


@pytest.mark.parametrize(
    "bad, field",
    [
        ("cua2/state/n/d/", "topic"), ("cua1/bogus/n/", "topic.kind"), ("cua1/state/n", "topic"),
        ("cua1/hb/bad node/", "topic.node"), ("cua1/hb/" + "x" * 65 + "/", "topic.node"),
        ("cua1/state/n/", "topic"), ("cua1/topo/n/d/", "topic"), (b"\xff\xfe", "topic"),
        ("cua1/state/n/d/e/", "topic"),
    ],
)
def test_bad_topics_name_the_field(bad, field):
    with pytest.raises(p.ProtocolError) as e:
        p.parse_topic(bad)
    assert e.value.field == field


def test_sanitize_node():
    assert p.sanitize_node("gpu01.example.com") == "gpu01.example.com"
    assert p.sanitize_node("weird host/name") == "weird-host-name"
    assert len(p.sanitize_node("a" * 100)) == 64
    with pytest.raises(p.ProtocolError, match="node"):
        p.sanitize_node("")


def test_header_validation():
    h = p.Header("node-a", 2**64 - 1, 1, 1, 1)
    assert p.decode_header(p.encode_header(h)) == h
    good = h.to_map()
    for key, value, match in [
        ("v", 2, "unsupported"), ("epoch", -1, "uint64"), ("seq", 0, "starts at 1"),
        ("seq", True, "uint64"), ("ts", "now", "int"), ("node", "a/b", "does not match"), ("gen", 0, "gen"),
    ]:
        bad = dict(good, **{key: value})
        with pytest.raises(p.ProtocolError, match=match) as e:
            p.decode_header(msgpack.packb(bad))
        assert e.value.field == f"header.{key}"
    with pytest.raises(p.ProtocolError) as e:
        p.decode_header(msgpack.packb({k: v for k, v in good.items() if k != "gen"}))
    assert e.value.field == "header.gen"
    with pytest.raises(p.ProtocolError, match="msgpack"):
        p.decode_header(b"\xc1")


def test_topo_round_trip():
    dev = h100_device()
    body = p.encode_topo_body([dev], AGENT)
    assert "layout" in body["devices"][0] and len(body["devices"][0]["layout"]["gpc"]) == 2 * 132
    topo = p.decode_topo_body(msgpack.unpackb(p.pack(body)))
    got = topo.devices[0]
    assert topo.agent == AGENT
    assert got.counts == dev.counts and got.counters == dev.counters and got.links == dev.links
    np.testing.assert_array_equal(got.layout["tpc"], dev.layout["tpc"])
    assert got.layout["gpc"].dtype == np.dtype("<u2")
    assert (got.pci, got.numa, got.memory_bytes) == (dev.pci, dev.numa, dev.memory_bytes)


def test_unknown_layout_is_absent_not_empty():
    dev = dataclasses.replace(h100_device(), layout={}, layout_source="none", pci=None, numa=None)
    m = p.encode_device(dev)
    assert "layout" not in m and "pci" not in m and "numa" not in m
    assert p.decode_device(m).layout == {}


def test_state_round_trip_absent_stays_absent():
    dev, s = h100_device(), h100_state()
    body = p.encode_state_body(s, dev.counters)
    assert "temp" not in body["device"]  # NaN = unmeasured = absent, never 0
    assert isinstance(body["device"]["mem_used"], int)  # bytes go out as a whole number
    got = p.decode_state_body(msgpack.unpackb(p.pack(body)), dev)
    np.testing.assert_array_equal(got.levels["sm"]["active"].mean, s.levels["sm"]["active"].mean)
    np.testing.assert_array_equal(got.levels["sm"]["state"], s.levels["sm"]["state"])
    assert got.device == {"power": 512.5, "mem_used": 2**33}
    assert got.idle_units == pytest.approx(s.idle_units)


def test_state_carries_counters_only_at_their_declared_level():
    # The engine also averages unit-level counters over partitions and the device under their
    # own names; topo declares them at "sm", so on the wire those means would contradict §3.1.
    dev, s = h100_device(), h100_state()
    s.partition["0"]["mem_stall"] = 0.25
    s.device.update(mem_stall=0.25, sm_active=0.5, undeclared=1.0)
    body = p.encode_state_body(s, dev.counters)
    assert set(body["partition"]["0"]) == {"sm_active"}
    # device: device counters and the device-wide value of a partition counter.
    assert set(body["device"]) == {"power", "mem_used", "sm_active"}
    checker = FeedChecker()
    checker.feed(frames("topo", p.encode_topo_body([dev], AGENT)))
    checker.feed(frames("state", body, device="mock-0"))
    leaky = dict(body, device=dict(body["device"], mem_stall=0.25))
    with pytest.raises(ProtocolViolation, match="mem_stall"):
        checker.feed(frames("state", leaky, seq=2, device="mock-0"))


def test_state_checked_against_topo():
    dev, s = h100_device(), h100_state()
    body = msgpack.unpackb(p.pack(p.encode_state_body(s, dev.counters)))
    short = dict(body, levels={"sm": dict(body["levels"]["sm"], state=b"\x00" * 131)})
    with pytest.raises(p.ProtocolError, match="131 elements, expected 132") as e:
        p.decode_state_body(short, dev)
    assert e.value.field == "state.levels.sm.state"
    undeclared = dict(body, levels={"sm": dict(body["levels"]["sm"], tensor=body["levels"]["sm"]["active"])})
    with pytest.raises(p.ProtocolError, match="no counter 'tensor'"):
        p.decode_state_body(undeclared, dev)
    with pytest.raises(p.ProtocolError, match="not a level"):
        p.decode_state_body(dict(body, levels={"xcd": body["levels"]["sm"]}), dev)
    with pytest.raises(p.ProtocolError, match="whole number"):
        p.decode_state_body(dict(body, levels={"sm": {"state": b"", "active": {"mean": b"abc", "max": b"abc"}}}))
    with pytest.raises(p.ProtocolError) as e:
        p.decode_state_body(dict(body, device={"power": "hot"}))
    assert e.value.field == "state.device.power"


def test_every_kind_passes_the_independent_checker():
    dev = h100_device()
    checker = FeedChecker()
    checker.feed(frames("topo", p.encode_topo_body([dev], AGENT)))
    checker.feed(frames("state", p.encode_state_body(h100_state(), dev.counters), device="mock-0"))
    checker.feed(frames("state", p.encode_state_body(h100_state(1), dev.counters), seq=2, device="mock-0"))
    checker.feed(frames("sum", summary_body(dev, h100_state(1))))
    checker.feed(frames("event", p.encode_event_body("device_lost", "fell off the bus", "mock-0"), device="mock-0"))
    seqs = {"cua1/topo/node-a/": 1, "cua1/state/node-a/mock-0/": 2, "cua1/event/node-a/mock-0/": 1,
            "cua1/sum/node-a/": 1}
    checker.feed(frames("hb", p.encode_hb_body(seqs, 999.5, 0, 12.5)))
    assert checker.counts == {"topo": 1, "state": 2, "hb": 1, "event": 1, "sum": 1, "unknown": 0}
    # ... and the checker is not vacuous: it rejects a repeated seq and a short array.
    with pytest.raises(ProtocolViolation, match="seq"):
        checker.feed(frames("state", p.encode_state_body(h100_state(), dev.counters), seq=2, device="mock-0"))
    bad = p.encode_state_body(h100_state(), dev.counters)
    bad["levels"]["sm"]["state"] = bad["levels"]["sm"]["state"][:-1]
    with pytest.raises(ProtocolViolation, match="bytes, expected 132"):
        checker.feed(frames("state", bad, seq=3, device="mock-0"))


def test_decode_message_and_envelope_errors():
    dev = h100_device()
    fr = frames("state", p.encode_state_body(h100_state(), dev.counters), device="mock-0")
    msg = p.decode_message(fr, dev)
    assert msg.topic == p.Topic("state", "node-a", "mock-0") and msg.header.seq == 1
    with pytest.raises(p.ProtocolError, match="expected 3"):
        p.decode_message(fr[:2])
    other = p.encode_frames("cua1/state/node-b/mock-0/", p.Header("node-a", 1, 1, 1, 1), {})
    with pytest.raises(p.ProtocolError, match="differs from the topic"):
        p.decode_message(other)


def test_snapshot_reply_embeds_feed_frames_verbatim():
    dev = h100_device()
    topo = frames("topo", p.encode_topo_body([dev], AGENT), seq=3)
    state = frames("state", p.encode_state_body(h100_state(), dev.counters), seq=9, device="mock-0")
    seqs = {"cua1/topo/node-a/": 3, "cua1/state/node-a/mock-0/": 9, "cua1/hb/node-a/": 4}
    reply = p.snapshot_reply(77, [topo, state], seqs)
    FeedChecker().snapshot_reply(reply)
    snap = p.decode_snapshot_reply(reply)
    assert snap.epoch == 77 and snap.seqs == seqs
    assert [list(m) for m in snap.messages] == [list(topo), list(state)]  # byte-identical re-encoding
    with pytest.raises(p.ProtocolError, match="refused"):
        p.decode_snapshot_reply(p.error_reply("unknown op"))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_decoders_only_ever_raise_protocol_error(data):
    for fn in (p.decode_header, p.parse_topic, p.decode_snapshot_reply):
        try:
            fn(data)
        except p.ProtocolError:
            pass


@settings(max_examples=150, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5) | st.binary(max_size=8),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4), max_leaves=20))
def test_body_decoders_reject_garbage_with_protocol_error(obj):
    dev = h100_device()
    for kind in p.KINDS:
        try:
            p.decode_body(kind, obj, dev)
        except p.ProtocolError:
            pass


def test_binary_is_much_smaller_than_json():
    dev = h100_device()
    body = p.encode_state_body(h100_state(), dev.counters)
    decoded = p.decode_state_body(msgpack.unpackb(p.pack(body)), dev)
    as_json = json.dumps({
        "levels": {"sm": {k: ({"mean": v.mean.tolist(), "max": v.max.tolist()} if k != "state" else v.tolist())
                          for k, v in decoded.levels["sm"].items()}},
        "device": decoded.device, "partition": decoded.partition,
    })
    assert len(p.pack(body)) * 2 < len(as_json)


def test_device_status_round_trips_and_absent_means_ok():
    body = p.encode_topo_body([h100_device("mock-0"), h100_device("mock-1")], AGENT)
    assert p.decode_topo_body(body).device_status("mock-1") == "ok"  # an agent before the key
    marked = p.with_device_status(body, {"mock-1"})
    assert all("status" not in d for d in body["devices"])  # a copy: the plain body stays plain
    topo = p.decode_topo_body(msgpack.unpackb(p.pack(marked)))
    assert topo.status == {"mock-0": "ok", "mock-1": "lost"}
    FeedChecker().feed(p.encode_frames("cua1/topo/node-a/", p.Header("node-a", 1, 1, 1_700_000_000_000_000_000, 1),
                                       marked))
    marked["devices"][0]["status"] = 3
    with pytest.raises(p.ProtocolError) as e:
        p.decode_topo_body(marked)
    assert e.value.field == "topo.devices[0].status"
    marked["devices"][0]["status"] = "on fire"
    with pytest.raises(ProtocolViolation, match="status"):
        FeedChecker().feed(p.encode_frames("cua1/topo/node-a/", p.Header("node-a", 1, 1, 1_700_000_000_000_000_000, 1),
                                           marked))
