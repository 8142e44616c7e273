"""The lazy client (state bodies decoded when read) against the eager one (decoded on
arrival): the same frames give the same values; a malformed body is found when read; the
newest body of a device is the only one decoded.

The frames are handed to each client's session as a feed socket would (``Session.receive``
after joining from a snapshot reply, as bench/feed_ingest.py does): both clients see exactly
the same messages in the same order, which a live feed cannot promise two subscribers."""

from __future__ import annotations

from typing import Any, Optional

import msgpack
import numpy as np
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from cuagent import wire
from cuagent.client import Client, DeviceView
from cuagent.feed.lazy import LazyState
from cuagent.topology import CounterInfo, PartitionInfo

NODE = "node-a"
EPOCH = 7
AGENT = wire.AgentInfo("test", "test", 1, 1)


def _device(i: int) -> wire.Device:
    return wire.Device(
        id=f"GPU-{i}", index=i, vendor="mock", model="m", backend="mock", unit="sm", units=4,
        levels=["gpc", "sm"], counts={"gpc": 2, "sm": 4}, layout={"gpc": np.array([0, 0, 1, 1], np.uint16)},
        layout_source="mock", partitions=[PartitionInfo("0", "whole", 4, 1 << 30, "")], memory_bytes=1 << 30,
        counters={"active": CounterInfo("sm", "ratio", ""), "power": CounterInfo("device", "W", ""),
                  "sm_active": CounterInfo("partition", "ratio", "")},
    )


DEVICES = [_device(0), _device(1)]


class Feed:
    """One node's topo, then whatever state frames a test sends, to any number of clients."""

    def __init__(self, ctx: zmq.Context[Any]) -> None:
        self.ctx = ctx
        self.seqs = {d.id: 0 for d in DEVICES}
        self.topo_seq = 1
        self.clients: list[Client] = []

    def client(self, lazy: bool) -> Client:
        c = Client([f"inproc://unused-{id(self)}-{len(self.clients)},inproc://unused-sync"], context=self.ctx,
                   lazy=lazy)
        topo = [self.topo_frames(1)]
        c.sessions[0].join_from(wire.decode_snapshot_reply(wire.snapshot_reply(EPOCH, topo, {topo[0][0].decode(): 1})))
        self.clients.append(c)
        return c

    def topo_frames(self, seq: int) -> list[bytes]:
        return [f"cua1/topo/{NODE}/".encode(), wire.encode_header(wire.Header(NODE, EPOCH, seq, 1, 1)),
                wire.pack(wire.encode_topo_body(DEVICES, AGENT))]

    def state(self, device: str, body: bytes) -> int:
        self.seqs[device] += 1
        seq = self.seqs[device]
        frames = [f"cua1/state/{NODE}/{device}/".encode(),
                  wire.encode_header(wire.Header(NODE, EPOCH, seq, 1000 * seq, 1)), body]
        for c in self.clients:
            c.sessions[0].receive(list(frames))
        return seq

    def topo(self) -> None:
        self.topo_seq += 1
        for c in self.clients:
            c.sessions[0].receive(self.topo_frames(self.topo_seq))

    def close(self) -> None:
        for c in self.clients:
            c.close()


@pytest.fixture
def feed():
    ctx: zmq.Context[Any] = zmq.Context()
    f = Feed(ctx)
    yield f
    f.close()
    ctx.term()


# ---------------------------------------------------------------------- bodies
_f32 = st.lists(st.floats(width=32, allow_nan=False), min_size=4, max_size=4).map(lambda v: np.array(v, "<f4").tobytes())
_number = st.one_of(st.integers(0, 2**40), st.floats(allow_nan=False, allow_infinity=False))


@st.composite
def valid_bodies(draw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"window_ns": draw(st.integers(1, 2**62)), "samples": draw(st.integers(0, 10**6))}
    levels: dict[str, Any] = {}
    if draw(st.booleans()):
        sm: dict[str, Any] = {"state": bytes(draw(st.lists(st.integers(0, 3), min_size=4, max_size=4)))}
        if draw(st.booleans()):
            sm["active"] = {"mean": draw(_f32), "max": draw(_f32)}
        levels["sm"] = sm
    if draw(st.booleans()):
        levels["gpc"] = {"state": bytes(draw(st.lists(st.integers(0, 3), min_size=2, max_size=2)))}
    if levels:
        body["levels"] = levels
    body["partition"] = {"0": {"sm_active": draw(_number)}} if draw(st.booleans()) else {}
    body["device"] = draw(st.dictionaries(st.sampled_from(["power", "sm_active"]), _number, max_size=2))
    if draw(st.booleans()):
        body["idle_units"] = draw(st.floats(0, 4))
    if draw(st.booleans()):
        body["processes"] = [{"pid": draw(st.integers(1, 2**22)), "name": draw(st.text(max_size=5))}]
    if draw(st.booleans()):
        body["pods"] = [{"namespace": "n", "pod": draw(st.text(max_size=5)), "container": "c", "resource": "r"}]
    return body


# Ways to break a valid body, each refused by the decoder (checked in _body below).
_BREAKS = ["not msgpack", "not a map", "short array", "undeclared level", "undeclared counter", "text window",
           "text device value", "no partition", "nil idle_units", "bad pod"]


def _break(body: dict[str, Any], how: str) -> bytes:
    if how == "not msgpack":
        return b"\xc1"
    if how == "not a map":
        return wire.pack([1, 2])
    if how == "short array":
        body.setdefault("levels", {})["sm"] = {"state": bytes(3)}
    elif how == "undeclared level":
        body.setdefault("levels", {})["tpc"] = {"state": bytes(2)}
    elif how == "undeclared counter":
        body.setdefault("levels", {})["gpc"] = {"active": {"mean": bytes(8), "max": bytes(8)}}
    elif how == "text window":
        body["window_ns"] = "50ms"
    elif how == "text device value":
        body["device"]["power"] = "300 W"
    elif how == "no partition":
        del body["partition"]
    elif how == "nil idle_units":
        body["idle_units"] = None
    else:
        body["pods"] = [{"namespace": "n"}]
    return wire.pack(body)


def _decode(raw: bytes) -> Optional[wire.State]:
    try:
        return wire.decode_state_body(msgpack.unpackb(raw, raw=False, strict_map_key=False), DEVICES[0])
    except (wire.ProtocolError, ValueError):
        return None


def _values(s: Optional[wire.State]) -> Any:
    """A state as plain comparable values (arrays as bytes with their dtype)."""
    if s is None:
        return None
    levels = {level: {name: ((v.dtype.str, v.tobytes()) if isinstance(v, np.ndarray) else
                             (v.mean.dtype.str, v.mean.tobytes(), v.max.dtype.str, v.max.tobytes()))
                      for name, v in entries.items()} for level, entries in s.levels.items()}
    return (s.window_ns, s.samples, levels, s.partition, s.device, s.idle_units, s.processes, s.pods)


_messages = st.tuples(st.integers(0, len(DEVICES) - 1), valid_bodies(), st.one_of(st.none(), st.sampled_from(_BREAKS)))
_steps = st.lists(st.one_of(_messages, st.just("read"), st.just("topo")), max_size=30)


@settings(max_examples=150, deadline=None)
@given(steps=_steps)
def test_a_lazy_client_gives_the_values_an_eager_one_gives(steps: list[Any]) -> None:
    """Random state messages, some malformed, with reads (and topo re-publishes) between: at
    each read, a device whose newest body is valid shows in the lazy client what the eager one
    shows (that body's values, ts and seq); one whose newest body is malformed keeps what the
    lazy client showed before. In the end the updates carry the same states, and once every
    update is read both clients have counted the same malformed bodies."""
    ctx: zmq.Context[Any] = zmq.Context()
    feed = Feed(ctx)
    try:
        eager, lazy = feed.client(False), feed.client(True)
        newest: dict[str, Optional[tuple[bytes, int]]] = {d.id: None for d in DEVICES}  # since the last read
        shown: dict[str, Any] = {d.id: (None, 0, 0) for d in DEVICES}  # what the lazy client showed
        last_good: dict[str, Any] = {d.id: (None, 0, 0) for d in DEVICES}  # what the eager client holds
        malformed_read = 0
        for step in steps + ["read"]:
            if step == "topo":
                feed.topo()  # same shape: each device keeps its window, decoded or not
                continue
            if step == "read":
                for d in DEVICES:
                    got = lazy.view.device(NODE, d.id)
                    e = eager.view.device(NODE, d.id)
                    assert (_values(e.state), e.ts, e.seq) == last_good[d.id]
                    if newest[d.id] is not None:
                        raw, seq = newest[d.id]  # type: ignore[misc]
                        if _decode(raw) is not None:
                            shown[d.id] = last_good[d.id]
                        else:
                            malformed_read += 1
                    assert (_values(got.state), got.ts, got.seq) == shown[d.id]
                    newest[d.id] = None
                assert lazy.stats.decode_errors == malformed_read
                continue
            index, body, how = step
            dev = DEVICES[index].id
            raw = wire.pack(body) if how is None else _break(body, how)
            seq = feed.state(dev, raw)
            newest[dev] = (raw, seq)
            decoded = _decode(raw)
            assert (decoded is None) == (how is not None), (how, body)  # each break does break
            if decoded is not None:
                last_good[dev] = (_values(decoded), 1000 * seq, seq)
        lazy_updates = [u for u in lazy.process() if u.kind == "state"]
        eager_updates = [u for u in eager.process() if u.kind == "state"]
        assert [(u.device, u.header, _values(u.body)) for u in lazy_updates if u.body is not None] == \
               [(u.device, u.header, _values(u.body)) for u in eager_updates]
        assert lazy.stats.decode_errors == eager.stats.decode_errors
    finally:
        feed.close()
        ctx.term()


def _valid(seed: int) -> bytes:
    return wire.pack({"window_ns": 50_000_000, "samples": seed, "partition": {}, "device": {"power": seed},
                      "levels": {"sm": {"state": bytes([seed % 4] * 4)}}})


def test_only_the_newest_body_of_a_device_is_decoded(feed: Feed) -> None:
    client = feed.client(True)
    for i in range(10):
        feed.state("GPU-0", _valid(i))
    bodies = [u[4] for u in client.process() if u.kind == "state"]
    assert len(bodies) == 10 and all(type(b) is LazyState and not b.decoded for b in bodies)
    dv = client.view.device(NODE, "GPU-0")
    assert dv.pending is bodies[-1]
    assert dv.state is not None and dv.state.samples == 9 and (dv.seq, dv.ts) == (10, 10_000)
    assert [b.decoded for b in bodies] == [False] * 9 + [True] and dv.pending is None
    assert client.view.device(NODE, "GPU-1").state is None  # nothing received: nothing to decode
    # The update and the view share one decode.
    assert bodies[-1].get() is dv.state


def test_a_malformed_body_is_found_when_read(feed: Feed) -> None:
    client = feed.client(True)
    feed.state("GPU-0", _valid(1))
    dv = client.view.device(NODE, "GPU-0")
    good = dv.state
    assert good is not None and dv.seq == 1
    feed.state("GPU-0", wire.pack({"window_ns": "soon"}))
    updates = client.process()
    assert client.stats.decode_errors == 0 and client.seqs[f"cua1/state/{NODE}/GPU-0/"] == 2  # not read yet
    # Read: the previous good state stays, with its ts and seq; the body counts once.
    assert dv.state is good and (dv.seq, dv.ts) == (1, 1000)
    assert client.stats.decode_errors == 1
    assert [u.body is None for u in updates if u.kind == "state"] == [False, True]
    assert dv.state is good and client.stats.decode_errors == 1
    feed.state("GPU-0", _valid(3))
    assert dv.state is not None and dv.state.samples == 3 and dv.seq == 3


def test_an_eager_client_refuses_a_malformed_body_on_arrival(feed: Feed) -> None:
    client = feed.client(False)
    feed.state("GPU-0", _valid(1))
    feed.state("GPU-0", wire.pack({"window_ns": "soon"}))
    assert client.stats.decode_errors == 1
    assert [u.body.samples for u in client.process() if u.kind == "state"] == [1]


def test_a_topo_republished_keeps_the_window_not_yet_decoded(feed: Feed) -> None:
    client = feed.client(True)
    feed.state("GPU-1", _valid(2))
    before = client.view.device(NODE, "GPU-1")
    feed.topo()
    after = client.view.device(NODE, "GPU-1")
    assert after is not before and after.pending is not None
    assert after.state is not None and after.state.samples == 2 and after.seq == 1


def test_an_observer_gets_the_body_undecoded(feed: Feed) -> None:
    client = feed.client(True)
    seen: list[Any] = []

    class Observer:
        def applied(self, msg: Any, decoded: Any) -> None:
            seen.append((msg.topic.kind, msg.frames[2], decoded))

        def forgot(self, node: str) -> None:
            pass

    client.observe(Observer())
    raw = _valid(5)
    feed.state("GPU-0", raw)
    ((kind, frame, decoded),) = seen
    assert kind == "state" and frame == raw and isinstance(decoded, LazyState) and not decoded.decoded
    assert decoded.get() is client.view.device(NODE, "GPU-0").state


def test_a_view_built_by_hand_needs_no_feed() -> None:
    # Scorers and simulations build DeviceViews themselves, positionally, and set state.
    st_ = wire.decode_state_body(msgpack.unpackb(_valid(4)), DEVICES[0])
    dv = DeviceView(NODE, DEVICES[0], st_, 5, 6)
    assert (dv.state, dv.ts, dv.seq, dv.lost, dv.pending) == (st_, 5, 6, False, None)
    dv.state, dv.ts = None, 9
    assert (dv.state, dv.ts, dv.idle_units) == (None, 9, None)
