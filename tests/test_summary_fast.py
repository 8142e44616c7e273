"""The client's own path for the usual summary (Session._receive_sum) against the general path
every other message takes: on the same random feeds (duplicates, jumps, restarts, new nodes,
topo changes of the devices and of gen, bodies and headers the usual path must refuse, kinds
the client does not know, snapshots) the two give the same view, stats, seqs, updates and
observer calls after every message, and each summary names the devices of the topo held.
And the wire check behind it: a body the usual path takes, the general decode takes alike,
with the same records.

The frames are handed to each client's session as a feed socket would (``Session.receive``
after joining from a snapshot reply, as tests/test_client_lazy.py does), so both clients see
exactly the same messages in the same order."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import msgpack
import numpy as np
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from cuagent import wire
from cuagent.client import Client
from cuagent.feed.received import Received
from cuagent.feed.summaries import NodeSummary
from cuagent.wire.summary import RECORD_DTYPE, RECORD_SIZE, empty_records, summary_records, usual_summary_records
from test_protocol import AGENT, h100_device

NODES = ["node-a", "node-b", "node-c"]  # node-c is in no snapshot until one is taken after it spoke
T0 = 1_790_000_000_000_000_000


class Agent:
    """What one node publishes: its topo and summaries, with their seqs, in its epoch."""

    def __init__(self, node: str, epoch: int) -> None:
        self.node, self.epoch, self.gen, self.devices = node, epoch, 1, 2
        self.serial = 0  # a device replaced under the same gen and count renames it
        self.seqs: dict[str, int] = {}
        self.latest: dict[str, list[bytes]] = {}  # topic -> the frames a snapshot serves

    def header(self, topic: str, seq: int, gen: Optional[int] = None, epoch: Optional[int] = None) -> wire.Header:
        return wire.Header(self.node, self.epoch if epoch is None else epoch, seq, T0 + seq, self.gen if gen is None else gen)

    def next_seq(self, topic: str, step: int = 1) -> int:
        self.seqs[topic] = max(1, self.seqs.get(topic, 0) + step)
        return self.seqs[topic]

    def topo(self) -> list[bytes]:
        topic = f"cua1/topo/{self.node}/"
        devs = [h100_device(f"GPU-{self.gen}-{i}-{self.serial if i == 0 else 0}") for i in range(self.devices)]
        frames = [topic.encode(), wire.encode_header(self.header(topic, self.next_seq(topic))),
                  wire.pack(wire.encode_topo_body(devs, AGENT))]
        self.latest[topic] = frames
        return frames


def sum_body(how: str, n: int, idle: float) -> bytes:
    """A sum body frame: the usual one, or one the usual path must leave to the general path."""
    rec = empty_records(n)
    rec["idle_units"] = idle + np.arange(n, dtype=np.float32)
    usual = wire.encode_summary_body(rec)
    if how == "usual":
        return wire.pack(usual)
    if how == "wide":  # a later agent's 56-byte records
        wide = np.zeros(n, RECORD_DTYPE.descr + [("later", "V9")])
        wide[list(RECORD_DTYPE.names)] = rec
        return wire.pack({"layout": 1, "size": RECORD_SIZE + 9, "records": wide.tobytes()})
    if how == "reordered":  # the same map, its keys in another order: valid, not the usual bytes
        return wire.pack({"records": usual["records"], "size": RECORD_SIZE, "layout": 1})
    if how == "extra key":
        return wire.pack({**usual, "later": 1})
    if how == "layout 2":
        return wire.pack({**usual, "layout": 2})
    if how == "trailing":
        return wire.pack(usual) + b"\x00"
    if how == "cut":
        return wire.pack(usual)[:-1]
    if how == "half record":
        return wire.pack({**usual, "records": usual["records"] + b"\x00" * 20})
    if how == "not a map":
        return wire.pack([1, 47, usual["records"]])
    return b"\xc1"  # not msgpack


BODIES = ["usual"] * 18 + ["wide", "reordered", "extra key", "layout 2", "trailing", "cut", "half record",
                          "not a map", "garbage"]
HEADERS = ["usual"] * 16 + ["extra key", "other node", "not msgpack", "seq 0", "stale epoch", "next gen"]


def header_frame(agent: Agent, topic: str, seq: int, how: str) -> bytes:
    if how == "not msgpack":
        return b"\xc1"
    if how == "stale epoch":  # a message from before a restart, or of one not yet known
        return wire.encode_header(agent.header(topic, seq, epoch=agent.epoch ^ 0xFF))
    if how == "next gen":  # records of a topo not held: kept, without device ids
        return wire.encode_header(agent.header(topic, seq, gen=agent.gen + 1))
    m = agent.header(topic, seq).to_map()
    if how == "extra key":
        m["later"] = 1
    elif how == "other node":
        m["node"] = "node-z"
    elif how == "seq 0":
        m["seq"] = 0
    return wire.pack(m)


def summary(agent: Agent, seq_step: int, header: str, body: str, count: int, idle: float) -> list[bytes]:
    topic = f"cua1/sum/{agent.node}/"
    seq = agent.next_seq(topic, seq_step)
    n = max(0, agent.devices + count)
    frames = [topic.encode(), header_frame(agent, topic, seq, header), sum_body(body, n, idle)]
    if header == "usual" and body == "usual":
        agent.latest[topic] = frames
    return frames


class Watcher:
    """An observer that writes down every call as plain values (reading each summary's body),
    and checks that a summary, as it is applied, names the devices of the topo the view holds
    when it is of their gen."""

    def __init__(self, view: Any) -> None:
        self.view = view
        self.calls: list[Any] = []

    def applied(self, msg: Received, decoded: Any) -> None:
        body = None
        if msg.topic.kind == "sum":
            body = msg.body
            nv = self.view.nodes.get(msg.topic.node)
            assert decoded.devices == (tuple(nv.devices) if nv is not None and nv.gen == decoded.gen else None)
        self.calls.append(("applied", msg.topic_str, msg.header, list(msg.frames), body, plain(decoded)))

    def forgot(self, node: str) -> None:
        self.calls.append(("forgot", node))


def plain(body: Any) -> Any:
    if isinstance(body, NodeSummary):
        return ("summary", body.node, body.ts, body.seq, body.gen, body.raw, body.devices, len(body),
                body.records.tobytes())
    if isinstance(body, wire.Topo):
        return ("topo", [d.id for d in body.devices])
    return body


def picture(client: Client, watcher: Optional[Watcher]) -> Any:
    """Everything the client shows, as plain values; takes its updates."""
    session = client.sessions[0]
    view = client.view
    updates = client.process()
    return (
        dataclasses.asdict(client.stats), dict(client.seqs), dict(client.epochs),
        {n: (nv.epoch, nv.gen, list(nv.devices)) for n, nv in view.nodes.items()},
        {n: plain(s) for n, s in view.summaries.items()},
        view.summaries.idle_units(include_stale=True).tobytes(),
        [(u.kind, u.node, u.device, u.header, plain(u.body)) for u in updates],
        [(m.topic_str, m.header) for m in session.buffer], sorted(session.resyncing), session.feed_seen,
        None if watcher is None else watcher.calls,
    )


def snapshot(agents: dict[str, Agent], client: Client) -> None:
    """Every node's topo and latest usual summary, as a relay serves them, joined from."""
    frames = [f for a in agents.values() for f in a.latest.values()]
    seqs = {t: s for a in agents.values() for t, s in a.seqs.items()}
    epochs = {a.node: a.epoch for a in agents.values()}
    client.sessions[0].join_from(wire.decode_snapshot_reply(wire.snapshot_reply(1, frames, seqs, epochs=epochs)))


_sum_steps = st.tuples(st.just("sum"), st.sampled_from(NODES),
                       st.sampled_from([1, 1, 1, 1, 2, 3, 0, -1, -3]),  # next, a jump, a repeat, older
                       st.sampled_from(HEADERS), st.sampled_from(BODIES),
                       st.sampled_from([0, 0, 0, 0, 1, -1]),  # records for every device, or not
                       st.floats(0, 100, width=32))
_steps = st.lists(st.one_of(
    _sum_steps, _sum_steps, _sum_steps, _sum_steps, _sum_steps, _sum_steps,
    st.tuples(st.just("topo"), st.sampled_from(NODES), st.sampled_from(["same", "more", "fewer", "renamed", "next gen", "one lost"])),
    st.tuples(st.just("restart"), st.sampled_from(NODES)),
    st.tuples(st.just("unknown kind"), st.sampled_from(NODES)),
    st.tuples(st.just("snapshot"),),
), min_size=10, max_size=60)


@settings(max_examples=200, deadline=None)
@given(steps=_steps, observed=st.booleans(), quiet=st.booleans())
def test_the_fast_path_shows_what_the_general_path_shows(steps: list[Any], observed: bool, quiet: bool) -> None:
    """``quiet``: the clients joined with no feed message seen yet (their first snapshot came
    after JOIN_WAIT_S of a quiet feed), so the first message they get is news of the feed."""
    ctx: zmq.Context[Any] = zmq.Context()
    clients: list[Client] = []
    watchers: list[Optional[Watcher]] = []
    try:
        agents = {n: Agent(n, 100 + i) for i, n in enumerate(NODES)}
        for a in agents.values():
            a.topo()
        for fast in (True, False):
            c = Client([f"inproc://unused-{len(clients)},inproc://unused-sync-{len(clients)}"], context=ctx,
                       snapshot_timeout_s=3600.0, stale_after_s=3600.0)
            c.sessions[0].sum_fast_path = fast
            w = Watcher(c.view) if observed else None
            if w is not None:
                c.observe(w)
            snapshot({n: a for n, a in agents.items() if n != "node-c"}, c)
            c.sessions[0].feed_seen = not quiet
            clients.append(c)
            watchers.append(w)
        # node-c's topo went out before the clients joined: they learn of it from its summaries.
        assert picture(clients[0], watchers[0]) == picture(clients[1], watchers[1])
        for step in steps:
            kind, rest = step[0], step[1:]
            frames: Optional[list[bytes]] = None
            if kind == "sum":
                node, seq_step, header, body, count, idle = rest
                frames = summary(agents[node], seq_step, header, body, count, idle)
            elif kind == "topo":
                agent = agents[rest[0]]
                if rest[1] == "more":
                    agent.devices += 1
                elif rest[1] == "fewer":
                    agent.devices = max(1, agent.devices - 1)
                elif rest[1] == "next gen":
                    agent.gen += 1
                elif rest[1] == "renamed":
                    agent.serial += 1
                elif rest[1] == "one lost":  # a topo gap: the clients resync the node, its epoch held
                    agent.next_seq(f"cua1/topo/{agent.node}/")
                frames = agent.topo()
            elif kind == "restart":
                old = agents[rest[0]]
                agent = agents[rest[0]] = Agent(old.node, old.epoch + 1000)
                agent.gen, agent.devices, agent.serial = old.gen, old.devices, old.serial
                frames = agent.topo()  # a restarted agent publishes its topo first (§3.1)
            elif kind == "unknown kind":
                frames = [f"cua1/later/{rest[0]}/".encode(), wire.encode_header(agents[rest[0]].header("", 1)),
                          wire.pack({})]
            for c in clients:
                if frames is not None:
                    c.sessions[0].receive(list(frames))
                else:
                    snapshot(agents, c)
            assert picture(clients[0], watchers[0]) == picture(clients[1], watchers[1]), step
    finally:
        for c in clients:
            c.close()
        ctx.term()


@pytest.mark.parametrize("fast", [True, False])
def test_each_summary_names_the_devices_of_the_topo_held(fast: bool) -> None:
    """A node's summaries reuse the device ids while the topo held is the same; a topo of the
    same gen with more devices, or another device, is read afresh."""
    ctx: zmq.Context[Any] = zmq.Context()
    agent = Agent("node-a", 5)
    agent.topo()
    c = Client(["inproc://unused-names,inproc://unused-names-sync"], context=ctx)
    try:
        c.sessions[0].sum_fast_path = fast
        snapshot({"node-a": agent}, c)
        seen = []
        for change in ["", "", "more", "", "renamed", "", "", "fewer", "same", ""]:
            if change:
                agent.devices += {"more": 1, "fewer": -1}.get(change, 0)
                agent.serial += change == "renamed"
                c.sessions[0].receive(agent.topo())
            c.sessions[0].receive(summary(agent, 1, "usual", "usual", 0, 1.0))
            s = c.view.summaries["node-a"]
            assert s.devices == tuple(c.view.nodes["node-a"].devices), change
            seen.append(s.devices)
        assert c.stats.decode_errors == 0 and c.stats.applied == 10 + 1 + 4
        assert seen[4] == ("GPU-1-0-1", "GPU-1-1-0", "GPU-1-2-0") and seen[7] == ("GPU-1-0-1", "GPU-1-1-0")
    finally:
        c.close()
        ctx.term()


# ---------------------------------------------------------------------- the body check
def _general(frame: bytes) -> Any:
    try:
        m = wire.unpack(frame, "body")
        return m, summary_records(m)
    except wire.ProtocolError:
        return None


@settings(max_examples=500, deadline=None)
@given(how=st.sampled_from(BODIES), n=st.sampled_from([0, 1, 5, 6, 8, 1394, 1395]), cut=st.integers(0, 60),
       flip=st.one_of(st.none(), st.tuples(st.integers(0, 40), st.integers(0, 255))))
def test_a_body_the_usual_path_takes_the_general_decode_takes_alike(how: str, n: int, cut: int,
                                                                   flip: Optional[tuple[int, int]]) -> None:
    """Bodies of every form (bin 8, 16 and 32; a byte of the head changed; cut short), of which
    the usual check takes only the exact map encode_summary_body writes, with the same records."""
    frame = sum_body(how, n, 1.0)
    if flip is not None and flip[0] < len(frame):
        frame = frame[:flip[0]] + bytes([flip[1]]) + frame[flip[0] + 1:]
    if cut:
        frame = frame[:-cut]
    raw = usual_summary_records(frame)
    general = _general(frame)
    if raw is not None:
        assert general is not None
        m, (records, size) = general
        assert m == {"layout": 1, "size": RECORD_SIZE, "records": raw} and list(m) == ["layout", "size", "records"]
        assert (records, size) == (raw, RECORD_SIZE)
    elif how == "usual" and flip is None and not cut and n:
        pytest.fail("the usual body was not taken")


@pytest.mark.parametrize("n", [1, 5, 6, 1394, 1395])
def test_each_bin_size_of_the_usual_body_is_taken(n: int) -> None:
    frame = sum_body("usual", n, 1.0)
    assert usual_summary_records(frame) == msgpack.unpackb(frame)["records"]
    assert usual_summary_records(bytearray(frame)) is None  # not bytes: the general path decides
