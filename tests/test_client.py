"""cuagent.client against real agents: late join, gaps under a slow subscriber, restarts,
scheduler helpers, and the asyncio face."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import msgpack
import numpy as np
import pytest

from cuagent import protocol, wire
from cuagent.client import Client, parse_endpoint
from cuagent.feed.view import NodeView
from feed_support import WAIT_S, Recorder, drain_quiet, request, start_agent, wait_until
from test_protocol import AGENT, h100_device, h100_state


class OrderLog:
    """Records every applied (topic, epoch, seq) to prove nothing is applied twice or out of order."""

    def __init__(self, client: Client) -> None:
        self.seen = defaultdict(list)
        client.on_update(self)

    def __call__(self, u) -> None:
        if u.header is not None and u.kind in protocol.KINDS:
            topic = protocol.build_topic(u.kind, u.node, u.device if u.kind in ("state", "event") else None)
            self.seen[(topic, u.header.epoch)].append(u.header.seq)

    def assert_monotonic(self) -> None:
        assert self.seen
        for key, seqs in self.seen.items():
            assert all(b > a for a, b in zip(seqs, seqs[1:])), (key, seqs)


def _assert_view_equals_frames(client: Client, frames: list[list[bytes]]) -> None:
    """The client's latest state per device equals the last state frame the publisher sent."""
    last = {}
    for f in frames:
        if f[0].startswith(b"cua1/state/"):
            last[f[0].decode()] = f
    assert last
    for topic, f in last.items():
        t = protocol.parse_topic(topic)
        dv = client.view.device(t.node, t.device)
        header = protocol.decode_header(f[1])
        want = protocol.decode_state_body(msgpack.unpackb(f[2]), dv.topology)
        assert dv.seq == header.seq and dv.ts == header.ts
        for level, entries in want.levels.items():
            for name, value in entries.items():
                got = dv.state.levels[level][name]
                if name == "state":
                    np.testing.assert_array_equal(got, value)
                else:
                    np.testing.assert_array_equal(got.mean, value.mean)
                    np.testing.assert_array_equal(got.max, value.max)
        assert dv.state.device == want.device and dv.state.partition == want.partition
        assert dv.state.idle_units == want.idle_units


def test_late_joiner_converges_exactly(tmp_path):
    agent = start_agent(tmp_path, "node-a", "h100-sxm:fragmented,h100-sxm:inference")
    rec = Recorder(agent.feed)  # ground truth: everything published from here on
    early = Client([agent.endpoint])
    early_log = OrderLog(early)
    try:
        assert early.wait_ready(WAIT_S)
        wait_until(lambda: rec.drain(50) >= 0 and len(rec.frames) > 20, step=lambda: early.poll(0.05), what="traffic")
        late = Client([agent.endpoint])
        late_log = OrderLog(late)
        assert late.wait_ready(WAIT_S)
        for _ in range(10):
            late.poll(0.02)
            early.poll(0.0)
        # Stop the publisher (a clean stop flushes what it sent to every subscriber), drain
        # everything in flight, then compare with the last messages it sent.
        assert agent.stop() == 0
        drain_quiet(lambda: len(late.poll(0.02)) + len(early.poll(0.0)) + rec.drain())
        for client in (early, late):
            _assert_view_equals_frames(client, rec.frames)
            # A state gap can be honest: a window the agent missed (CPU starvation on a loaded machine)
            # skips its seq (PROTOCOL.md §4). What must not happen: topo gaps (they force a resync),
            # restarts or undecodable messages.
            assert (client.stats.resyncs, client.stats.restarts, client.stats.decode_errors) == (0, 0, 0), client.stats
        early_log.assert_monotonic()
        late_log.assert_monotonic()
        assert late.stats.applied > 0
        assert len(late.view.nodes["node-a"].devices) == 2
        late.close()
    finally:
        early.close()
        rec.close()
        assert agent.stop() == 0


def test_slow_subscriber_counts_gaps_and_resyncs(tmp_path):
    # A tiny send queue on the agent and receive queue on the client, and a topo every 50 ms,
    # so that a client that stops reading loses topo messages too.
    agent = start_agent(tmp_path, "node-g", "h100-sxm:training,h100-sxm:training", "--sndhwm", "4",
                        "--topo-interval-s", "0.05", interval_ms=20)
    client = Client([agent.endpoint], rcvhwm=4)
    order = OrderLog(client)
    try:
        assert client.wait_ready(WAIT_S)
        # Stop reading while the agent keeps publishing: PUB drops at the HWM, never blocks.
        deadline = time.monotonic() + WAIT_S
        while client.stats.gaps == 0 and time.monotonic() < deadline:
            time.sleep(1.5)
            for _ in range(20):
                client.poll(0.02)
        assert client.stats.gaps > 0 and client.stats.gap_events > 0
        wait_until(lambda: client.stats.resyncs > 0, step=lambda: client.poll(0.05), what="a resync")
        # ... and the view is whole again afterwards.
        wait_until(lambda: all(d.state is not None for d in client.view.devices()) and len(client.view.nodes["node-g"].devices) == 2,
                   step=lambda: client.poll(0.05), what="the view to recover")
        order.assert_monotonic()
        # The agent itself was unaffected: its sampler lost nothing (engine stats in hb).
        wait_until(lambda: client.view.nodes["node-g"].heartbeat is not None, step=lambda: client.poll(0.05), what="a heartbeat")
        hb = client.view.nodes["node-g"].heartbeat
        assert hb.dropped == 0
        assert hb.rate_hz > 0
    finally:
        client.close()
        assert agent.stop() == 0, agent.log()


def test_restart_gives_new_epoch_and_client_resyncs(tmp_path):
    agent = start_agent(tmp_path, "node-r", "h100-sxm:idle")
    client = Client([agent.endpoint])
    order = OrderLog(client)
    try:
        assert client.wait_ready(WAIT_S)
        wait_until(lambda: "node-r" in client.view.nodes, step=lambda: client.poll(0.05), what="node-r")
        first_epoch = client.view.nodes["node-r"].epoch
        assert agent.stop() == 0
        agent = start_agent(tmp_path, "node-r", "a100-sxm:idle")  # same endpoints, another device
        new_epoch = msgpack.unpackb(request(agent.sync, {"op": "ping"}))["epoch"]
        assert new_epoch != first_epoch
        wait_until(lambda: "node-r" in client.view.nodes and client.view.nodes["node-r"].epoch == new_epoch
                   and any(d.state is not None for d in client.view.devices()),
                   step=lambda: client.poll(0.05), what="the new epoch")
        assert client.stats.restarts >= 1
        # Everything from the old process is gone: only the new device, seqs restarted.
        (dv,) = client.view.nodes["node-r"].devices.values()
        assert dv.topology.units == 108
        assert all(seq < 1000 for seq in client.seqs.values())
        order.assert_monotonic()
    finally:
        client.close()
        assert agent.stop() == 0


def test_scheduler_helpers_and_asyncio(tmp_path):
    agent = start_agent(tmp_path, "node-h", "h100-sxm:fragmented,h100-sxm:thrashing,mi300x:idle")
    try:
        async def follow():
            client = Client([agent.endpoint])
            seen = []
            async for update in client.aupdates(duration=30):
                seen.append(update.kind)
                if sum(k == "state" for k in seen) >= 6 and sum(d.state is not None for d in client.view.devices()) == 3:
                    break
            return client, seen

        client, seen = asyncio.run(follow())
        try:
            assert "state" in seen
            ranked = client.view.rank_devices()
            idle = [d.idle_units for d in ranked]
            assert idle == sorted(idle, reverse=True) and len(ranked) == 3
            assert ranked[0].topology.unit == "cu"  # the idle MI300X has the most idle units
            by_id = {d.id: d for d in ranked}
            frag, thrash = by_id["mock-0"], by_id["mock-1"]
            # fragmented: some GPCs wholly idle, and each of them really is all idle.
            groups = frag.idle_groups()
            states = frag.unit_states()
            for g in groups:
                assert np.all(states[frag.topology.layout["gpc"] == g] == protocol.IDLE)
            thrashing = thrash.thrashing_units()
            assert thrashing.size > 0 and np.all(thrash.unit_states()[thrashing] == protocol.THRASHING)
            parts = client.view.rank_partitions()
            assert [r[2] for r in parts] == sorted((r[2] for r in parts), reverse=True)
        finally:
            client.close()
    finally:
        assert agent.stop() == 0


def test_parse_endpoint():
    assert parse_endpoint("tcp://h:7710") == ("tcp://h:7710", "tcp://h:7711")
    assert parse_endpoint("ipc:///a,ipc:///b") == ("ipc:///a", "ipc:///b")
    with pytest.raises(ValueError, match="FEED,SYNC"):
        parse_endpoint("ipc:///a")


class FakeUpstream:
    """A hand-driven PUB + ROUTER speaking the feed (a relay's shape: several nodes)."""

    def __init__(self, tmp_path) -> None:
        import zmq

        ctx = zmq.Context.instance()
        self.feed, self.sync = f"ipc://{tmp_path}/fake.feed", f"ipc://{tmp_path}/fake.sync"
        self.pub, self.router = ctx.socket(zmq.PUB), ctx.socket(zmq.ROUTER)
        for sock, ep in ((self.pub, self.feed), (self.router, self.sync)):
            sock.setsockopt(zmq.LINGER, 0)
            sock.bind(ep)
        self.seqs: dict[str, int] = {}
        self.latest: dict[str, list[bytes]] = {}
        self.extra: dict = {}  # extra keys of every snapshot reply (a relay's, §7)
        self.requests = 0  # snapshot requests answered

    def send(self, kind, node, body, device=None, epoch=5, gen=1) -> None:
        topic = protocol.build_topic(kind, node, device)
        self.seqs[topic] = self.seqs.get(topic, 0) + 1
        frames = protocol.encode_frames(topic, protocol.Header(node, epoch, self.seqs[topic], time.time_ns(), gen), body)
        if kind in ("topo", "state", "sum"):  # what a snapshot holds (§4)
            self.latest[topic] = frames
        self.pub.send_multipart(frames)

    def serve(self) -> None:
        import zmq

        while self.router.poll(0):
            ident, raw = self.router.recv_multipart()
            prefix = msgpack.unpackb(raw).get("prefix", "cua1/")
            msgs = [f for t, f in self.latest.items() if t.startswith(prefix)]
            seqs = {t: s for t, s in self.seqs.items() if t.startswith(prefix)}
            self.router.send_multipart([ident, protocol.snapshot_reply(5, msgs, seqs, **self.extra)], zmq.NOBLOCK)
            self.requests += 1

    def refuse(self) -> list[bytes]:
        """Answer every snapshot request queued with a refusal (§5): the identities refused."""
        refused = []
        while self.router.poll(0):
            ident, _ = self.router.recv_multipart()
            self.router.send_multipart([ident, wire.error_reply("busy")])
            refused.append(ident)
        return refused

    def stepper(self, client: Client):
        """A wait_until step: answer the client's snapshot requests, let it take what came."""

        def step() -> None:
            self.serve()
            client.poll(0.02)
        return step

    def close(self) -> None:
        self.pub.close(0)
        self.router.close(0)


def test_a_heartbeat_speaks_only_for_its_own_node(tmp_path):
    # hb.seqs lists the seqs of the hb's own node (§3.3). One node's heartbeat naming another
    # node's topic (or something that is no topic) must not move the client's seqs: else the
    # other node's messages would be dropped as already seen, here and behind every relay.
    from test_protocol import AGENT, h100_device, h100_state

    dev = h100_device()
    up = FakeUpstream(tmp_path)
    client = Client([f"{up.feed},{up.sync}"])
    try:
        for node in ("node-a", "node-b"):
            up.send("topo", node, protocol.encode_topo_body([dev], AGENT))

        step = up.stepper(client)
        wait_until(lambda: client.ready, step=step, what="join")
        hb_topic = protocol.build_topic("hb", "node-a")
        state_b = protocol.build_topic("state", "node-b", "mock-0")
        up.send("hb", "node-a", protocol.encode_hb_body({hb_topic: 1, state_b: 1000, "cua1/": 7, "junk": 3}, 1.0, 0, 1.0))
        wait_until(lambda: client.view.nodes["node-a"].heartbeat is not None, step=step, what="the heartbeat")
        up.send("state", "node-b", protocol.encode_state_body(h100_state(), dev.counters), device="mock-0")
        wait_until(lambda: client.view.device("node-b", "mock-0").state is not None, step=step,
                   what="node-b's state applied", timeout=3)
        assert set(client.seqs) <= set(up.seqs), client.seqs
        assert client.stats.gaps == 0, client.stats
    finally:
        client.close()
        up.close()


def test_a_state_of_another_gen_than_the_topo_held_is_not_applied(tmp_path):
    """§4: a window of an older gen has the old topology's shape (a relay may still serve one
    beside the new topo); one of a newer gen means its topo was missed: the node is resynced."""
    from test_protocol import AGENT, h100_device, h100_state

    dev = h100_device()
    up = FakeUpstream(tmp_path)
    client = Client([f"{up.feed},{up.sync}"])
    applied = []
    client.on_update(lambda u: applied.append(u.header.gen) if u.kind == "state" else None)
    try:
        up.send("topo", "node-a", protocol.encode_topo_body([dev], AGENT), gen=2)
        step = up.stepper(client)
        wait_until(lambda: client.ready, step=step, what="join")
        body = protocol.encode_state_body(h100_state(), dev.counters)
        up.send("state", "node-a", body, device=dev.id, gen=1)  # the old gen's: dropped
        up.send("state", "node-a", body, device=dev.id, gen=2)
        wait_until(lambda: applied, step=step, what="a state applied")
        assert applied == [2], applied
        resyncs = client.stats.resyncs
        up.send("state", "node-a", body, device=dev.id, gen=3)  # its topo never came
        wait_until(lambda: client.stats.resyncs > resyncs, step=step, what="a resync of the node")
        assert applied == [2], applied
    finally:
        client.close()
        up.close()


def test_a_new_nodes_snapshot_brings_its_latest_state_though_nothing_follows(tmp_path):
    # A node first heard after the join is asked for one prefix per kind; the topo's reply
    # must come first: a state applied before its topo is dropped, its seq taken as applied,
    # and the device shows no state until the node sends another (here: never).
    from test_protocol import AGENT, h100_device, h100_state

    dev = h100_device()
    up = FakeUpstream(tmp_path)
    client = Client([f"{up.feed},{up.sync}"])
    try:
        up.send("topo", "node-a", protocol.encode_topo_body([dev], AGENT))
        step = up.stepper(client)
        wait_until(lambda: client.ready, step=step, what="join")
        up.send("topo", "node-b", protocol.encode_topo_body([dev], AGENT))
        up.send("state", "node-b", protocol.encode_state_body(h100_state(), dev.counters), device=dev.id)
        session = client.sessions[0]
        wait_until(lambda: "node-b" in client.epochs and not session.resyncing and not session.pending
                   and session.inflight is None, step=step, what="node-b joined")
        assert client.view.device("node-b", dev.id).seq == 1
    finally:
        client.close()
        up.close()


def test_replies_to_one_nodes_requests_are_applied_together():
    # One request per prefix (§4): applied one by one, a state reply before its topo's would
    # be dropped. Merged: every message once (the later reply's), the highest seqs, the
    # relay's per-node maps united.
    from cuagent.feed.snapshot_replies import merged_replies
    from cuagent.wire import Snapshot

    first = Snapshot(5, [[b"cua1/state/n1/d0/", b"h1", b"b1"]], {"cua1/state/n1/d0/": 3}, {"epochs": {"n1": 7}, "kinds": ["state"]})
    second = Snapshot(5, [[b"cua1/topo/n1/", b"h2", b"b2"], [b"cua1/state/n1/d0/", b"h3", b"b3"]],
                      {"cua1/topo/n1/": 1, "cua1/state/n1/d0/": 4}, {"epochs": {"r": 9}, "kinds": ["topo"]})
    merged = merged_replies([first, second])
    assert sorted(merged.messages) == [[b"cua1/state/n1/d0/", b"h3", b"b3"], [b"cua1/topo/n1/", b"h2", b"b2"]]
    assert merged.seqs == {"cua1/state/n1/d0/": 4, "cua1/topo/n1/": 1}
    assert merged.extra == {"epochs": {"n1": 7, "r": 9}, "kinds": ["topo"]}
    assert merged_replies([first]) is first


def test_a_client_following_only_heartbeats_applies_them(tmp_path):
    # A snapshot carries no hb or event messages, only their seqs: the node's epoch must come
    # from the reply itself (an agent's "epoch"; a relay's per-node "epochs"), else such a
    # follower re-snapshots for ever and applies nothing.
    from feed_support import start_relay

    agent = start_agent(tmp_path, "node-a", "h100-sxm:idle")
    relay = start_relay(tmp_path, "relay-h", agent.endpoint)
    clients = [Client([agent.endpoint], prefixes=["cua1/hb/"]), Client([relay.endpoint], prefixes=["cua1/hb/node-a/"])]
    try:
        hbs = {id(c): 0 for c in clients}
        for c in clients:
            c.on_update(lambda u, c=c: hbs.__setitem__(id(c), hbs[id(c)] + (u.kind == "hb")))
        wait_until(lambda: all(n >= 2 for n in hbs.values()), step=lambda: [c.poll(0.05) for c in clients] and None,
                   what=f"heartbeats applied {hbs}")
        for c in clients:
            assert c.stats.decode_errors == 0 and c.epochs["node-a"] == agent.wait_ping()["epoch"], c.stats
    finally:
        for c in clients:
            c.close()
        assert relay.stop() == 0
        assert agent.stop() == 0


def test_a_relays_reply_ages_its_nodes_and_introduces_the_relay(tmp_path):
    # A relay says how long it has not heard each node (silent_s): a node already silent
    # past the stale interval is stale at once, not live for another 3 s. It lists its own
    # epoch before its first event, so that event is applied rather than taken for the first
    # message of a new node (whose snapshot would cover it, and drop it).
    from test_protocol import AGENT, h100_device, h100_state

    dev = h100_device()
    up = FakeUpstream(tmp_path)
    up.extra = {"epochs": {"node-a": 5, "node-b": 5, "relay-f": 9}, "silent_s": {"node-a": 10.0, "node-b": 0.0}}
    client = Client([f"{up.feed},{up.sync}"])
    events = []
    client.on_update(lambda u: events.append(u) if u.kind == "event" else None)
    try:
        for node in ("node-a", "node-b"):
            up.send("topo", node, protocol.encode_topo_body([dev], AGENT))
            up.send("state", node, protocol.encode_state_body(h100_state(), dev.counters), device="mock-0")

        step = up.stepper(client)
        wait_until(lambda: client.ready, step=step, what="join")
        assert client.view.nodes["node-a"].stale and not client.view.nodes["node-b"].stale
        assert [d.node for d in client.view.rank_devices()] == ["node-b"]
        up.send("event", "relay-f", protocol.encode_event_body("node_stale", "silent", node="node-a"), epoch=9)
        wait_until(lambda: events, step=step, what="the relay's first event", timeout=5)
        (u,) = events
        assert u.node == "relay-f" and u.body.type == "node_stale" and u.body.extra == {"node": "node-a"}
    finally:
        client.close()
        up.close()


class _CountedNode(NodeView):
    """A node view that counts how often its last heartbeat time is read."""

    reads = 0

    def __getattribute__(self, name):
        if name == "last_heard":
            _CountedNode.reads += 1
        return super().__getattribute__(name)


def test_staleness_is_not_looked_for_in_every_node_at_every_poll():
    """A client following thousands of nodes looked at each of them twice per poll to find the
    stale ones (12,500 nodes: ~1 ms a poll): now only at the earliest deadline its last look
    found, and at least every half second. Every node still goes stale when its time comes."""
    client = Client(["ipc:///nonexistent/cuagent-stale.feed,ipc:///nonexistent/cuagent-stale.sync"],
                    stale_after_s=3.0)
    try:
        t0 = time.monotonic()
        for i in range(1000):
            client.view.nodes[f"n{i}"] = _CountedNode(f"n{i}", 1, last_heard=t0 + i * 0.001)
        _CountedNode.reads = 0
        for step in range(50):  # polls within 0.4 s: one look at every node
            client._check_stale(t0 + step * 0.008)
            client.next_deadline()
        assert _CountedNode.reads <= 1000, _CountedNode.reads
        assert not any(n.stale for n in client.view.nodes.values())
        client._check_stale(t0 + 3.0 + 0.5)  # the first 500 nodes' deadlines have passed
        assert sum(n.stale for n in client.view.nodes.values()) == 500
        client._check_stale(t0 + 5.0)
        assert all(n.stale for n in client.view.nodes.values())
    finally:
        client.close()


def test_node_gone_from_one_relay_leaves_a_node_heard_through_another():
    # A client following two relays: one has lost its path to a node and forgets it
    # (node_gone), the other still carries it. The view keeps a node it hears; it drops one
    # that is stale here too.
    from cuagent.feed.feed_state import FeedState

    state = FeedState(["cua1/"], 5.0, True)
    for name in ("live", "silent"):
        state.view.nodes[name] = NodeView(name, 1)
        state.epochs[name] = 1
        state.seqs[f"cua1/topo/{name}/"] = 3
        state.node_topics[name] = {f"cua1/topo/{name}/"}  # as a topic's first seq records it
    state.view.nodes["silent"].stale = True
    state.forget_node("live")
    state.forget_node("silent")
    assert set(state.view.nodes) == {"live"} and set(state.epochs) == {"live"}
    assert set(state.seqs) == {"cua1/topo/live/"}
    assert state.gone_pending == {"live"}  # dropped if it goes stale here too, unless heard again


class _NodeBehindARelay:
    """A client joined through a FakeUpstream shaped as a relay (relay-r, whose own epoch its
    replies list, §7) of node-a; then node-b's topo and a state come through the feed, while
    the relay's table holds the state but not the topo (it is still joining the node): nothing
    to decode the state with."""

    def __init__(self, tmp_path) -> None:
        from test_protocol import AGENT, h100_device, h100_state

        self.up = FakeUpstream(tmp_path)
        self.up.extra = {"epochs": {"relay-r": 5}}
        self.client = Client([f"{self.up.feed},{self.up.sync}"])
        self.session = self.client.sessions[0]
        self.step = self.up.stepper(self.client)
        body = protocol.encode_topo_body([h100_device()], AGENT)
        self.up.send("topo", "node-a", body)
        wait_until(lambda: self.client.ready, step=self.step, what="join")
        self.joined_after = self.up.requests
        self.up.send("topo", "node-b", body)
        self.up.send("state", "node-b", protocol.encode_state_body(h100_state(), h100_device().counters), device="mock-0")
        self.node_b_topo = self.up.latest.pop(protocol.build_topic("topo", "node-b"))

    def asked_since_join(self) -> int:
        """Times the client asked for node-b: a request per prefix of the node's (one per kind)."""
        per_ask = len(self.session.state.node_prefixes("node-b"))
        asked, partial = divmod(self.up.requests - self.joined_after, per_ask)
        return asked + (partial > 0)

    def queued_of(self, node: str) -> int:
        return sum(m.topic.node == node for m in self.session.buffer)

    def close(self) -> None:
        self.client.close()
        self.up.close()


@pytest.fixture
def behind_a_relay(tmp_path, monkeypatch):
    """Makes a _NodeBehindARelay whose client waits ``retry_s`` before asking again about a
    node its source knew nothing of (doubling); closes it after the test."""
    from cuagent.feed import snapshot_faults

    rigs: list[_NodeBehindARelay] = []

    def make(retry_s: float) -> _NodeBehindARelay:
        monkeypatch.setattr(snapshot_faults, "RESYNC_RETRY_S", retry_s)
        rigs.append(_NodeBehindARelay(tmp_path))
        return rigs[-1]

    yield make
    for rig in rigs:
        rig.close()


def test_a_relay_that_knows_nothing_yet_of_a_node_is_asked_again_later_not_at_once(behind_a_relay):
    # A relay forwards a returning node's messages before its own join of the node is done:
    # its reply knows nothing of the node. Asked at once again, a client would send a request
    # per round trip; it waits (here an hour), the node's messages queued meanwhile.
    rig = behind_a_relay(3600.0)
    wait_until(lambda: "node-b" in rig.session.unknown, step=rig.step, what="an empty reply about node-b")
    for _ in range(25):
        rig.step()
    assert rig.asked_since_join() == 1
    assert rig.session.unknown["node-b"][0] == 1 and rig.queued_of("node-b") == 2  # its topo and state
    assert "node-b" not in rig.client.view.nodes and "node-a" in rig.client.view.nodes


def test_a_node_the_relay_joins_meanwhile_is_applied_with_what_was_queued(behind_a_relay):
    rig = behind_a_relay(0.001)

    def step() -> None:
        if rig.session.unknown.get("node-b", (0,))[0] == 2:  # two empty replies: the relay has it now
            rig.up.latest[protocol.build_topic("topo", "node-b")] = rig.node_b_topo
        rig.step()

    wait_until(lambda: "node-b" in rig.client.view.nodes and not rig.session.resyncing, step=step,
               what="node-b joined")
    assert rig.asked_since_join() == 3 and not rig.session.unknown
    # The state the feed brought, decoded against the topo; the hb's seqs show no loss.
    assert rig.client.view.device("node-b", "mock-0").seq == 1
    rig.up.send("hb", "node-b", protocol.encode_hb_body(dict(rig.up.seqs), 1.0, 0, 1.0))
    wait_until(lambda: rig.client.view.nodes["node-b"].heartbeat is not None, step=step, what="node-b's hb")
    assert rig.client.stats.gaps == 0 and rig.client.stats.resyncs == 0, rig.client.stats


def test_a_node_the_relay_never_knows_is_given_up_and_starts_over_when_heard(behind_a_relay):
    from cuagent.feed.session import RESYNC_TRIES

    rig = behind_a_relay(0.001)
    wait_until(lambda: rig.asked_since_join() == RESYNC_TRIES and not rig.session.resyncing,
               step=rig.step, what="node-b given up")
    assert not rig.session.unknown and rig.queued_of("node-b") == 0 and "node-b" not in rig.client.view.nodes
    rig.up.latest[protocol.build_topic("topo", "node-b")] = rig.node_b_topo
    rig.up.send("hb", "node-b", protocol.encode_hb_body({}, 1.0, 0, 1.0))  # heard again
    wait_until(lambda: "node-b" in rig.client.view.nodes, step=rig.step, what="node-b joined")


def test_a_node_gone_while_its_snapshot_was_asked_for_stays_gone(behind_a_relay):
    # The relay answered the request for node-b before it forgot the node, and announced
    # node_gone after: the client read the event first. The reply must not bring node-b back
    # (it would sit in the view, stale, for good: no node_gone comes again).
    rig = behind_a_relay(0.001)
    topo_b = protocol.build_topic("topo", "node-b")
    rig.up.latest[topo_b] = rig.node_b_topo
    wait_until(lambda: rig.session.inflight is not None and rig.session.inflight[0] == topo_b,
               step=rig.step, what="node-b's topo asked for")
    rig.up.send("event", "relay-r", protocol.encode_event_body("node_gone", "silent", node="node-b"))
    events: list = []
    wait_until(lambda: events, step=lambda: events.extend(u for u in rig.client.poll(0.02) if u.kind == "event"),
               what="node_gone")
    rig.up.serve()  # the reply, with node-b in it, read after the event
    del rig.up.latest[topo_b], rig.up.seqs[topo_b]  # the relay has forgotten it since
    wait_until(lambda: not rig.session.resyncing and rig.session.inflight is None, step=rig.step,
               what="node-b's snapshots answered")
    assert "node-b" not in rig.client.view.nodes and "node-b" not in rig.client.epochs


def test_a_source_that_refuses_snapshots_is_asked_again_later_not_at_once(tmp_path, monkeypatch):
    # A refusal ({"ok": false}, §5) or an undecodable reply: asked again at once, the source
    # would be asked once per round trip for as long as it refuses. The wait doubles (here
    # an hour from the first).
    from cuagent.feed import snapshot_faults

    monkeypatch.setattr(snapshot_faults, "RESYNC_RETRY_S", 3600.0)
    monkeypatch.setattr(snapshot_faults, "REFUSED_RETRY_MAX_S", 3600.0)
    up = FakeUpstream(tmp_path)
    client = Client([f"{up.feed},{up.sync}"])
    refused = []

    def step() -> None:
        refused.extend(up.refuse())
        client.poll(0.02)

    try:
        up.send("topo", "node-a", protocol.encode_topo_body([h100_device()], AGENT))
        wait_until(lambda: client.stats.decode_errors == 1, step=step, what="a refused snapshot")
        for _ in range(25):
            step()
        assert len(refused) == 1 and not client.ready and client.stats.decode_errors == 1
    finally:
        client.close()
        up.close()


def _restart(up: FakeUpstream, node: str, epoch: int) -> None:
    """``node`` restarts behind ``up`` (a relay): its topics start again, in ``epoch``."""
    for topic in [t for t in up.seqs if wire.node_of(t) == node]:
        del up.seqs[topic]
        up.latest.pop(topic, None)
    up.extra["epochs"][node] = epoch


def test_a_node_that_restarts_between_its_snapshot_replies_is_asked_again(behind_a_relay):
    # Replies about one node are applied together; the node restarted between two of them,
    # so they hold seqs of two epochs. Merged, its old hb seq would stand under the new epoch
    # and every new heartbeat up to it would be dropped as seen.
    rig = behind_a_relay(0.001)
    up, session, hb_b = rig.up, rig.session, protocol.build_topic("hb", "node-b")
    up.latest[protocol.build_topic("topo", "node-b")] = rig.node_b_topo
    up.extra["epochs"]["node-b"] = 5
    up.seqs[hb_b] = 5000
    wait_until(lambda: session.inflight is not None and session.inflight[0] == "cua1/state/node-b/",
               step=rig.step, what="node-b's event and hb replies in")
    _restart(up, "node-b", 9)
    up.send("topo", "node-b", protocol.encode_topo_body([h100_device()], AGENT), epoch=9)
    wait_until(lambda: rig.client.epochs.get("node-b") == 9 and not session.resyncing, step=rig.step,
               what="node-b joined in its new epoch")
    assert rig.client.seqs.get(hb_b, 0) < 5000
    up.send("hb", "node-b", protocol.encode_hb_body({}, 1.0, 0, 1.0), epoch=9)
    wait_until(lambda: rig.client.view.nodes["node-b"].heartbeat is not None, step=rig.step, what="its new hb")


def test_a_node_that_restarts_while_its_relay_joins_it_is_not_restarted_back(behind_a_relay):
    # Its old epoch's messages, queued while the relay knew nothing of it, come before its
    # new epoch's: replayed after the snapshot of the new epoch, they are old, not a restart.
    rig = behind_a_relay(0.001)
    up, session = rig.up, rig.session
    wait_until(lambda: "node-b" in session.unknown, step=rig.step, what="node-b unknown to the relay")
    _restart(up, "node-b", 9)
    up.send("topo", "node-b", protocol.encode_topo_body([h100_device()], AGENT), epoch=9)
    up.send("state", "node-b", protocol.encode_state_body(h100_state(), h100_device().counters), device="mock-0",
            epoch=9)
    wait_until(lambda: rig.client.epochs.get("node-b") == 9 and not session.resyncing, step=rig.step,
               what="node-b joined in its new epoch")
    for _ in range(10):
        rig.step()
    stats = rig.client.stats
    assert rig.client.epochs["node-b"] == 9 and stats.restarts == 0 and stats.old_epoch == 2, stats
    assert rig.client.view.device("node-b", "mock-0").seq == 1


def test_a_node_gone_while_a_join_is_answered_stays_gone(tmp_path):
    # A join of two prefixes: the topo reply holds node-b; the relay forgets node-b and says
    # so (node_gone, queued while joining) before the event reply, whose seqs cover that event.
    # Replayed, the event is a duplicate: the client takes node_gone when it queues it.
    up = FakeUpstream(tmp_path)
    up.extra = {"epochs": {"relay-r": 5, "node-b": 5}}
    client = Client([f"{up.feed},{up.sync}"], prefixes=["cua1/topo/", "cua1/event/"])
    try:
        session = client.sessions[0]
        up.send("topo", "node-b", protocol.encode_topo_body([h100_device()], AGENT))
        wait_until(lambda: session.inflight is not None and session.inflight[0] == "cua1/event/",
                   step=up.stepper(client), what="the topo reply in")
        _restart(up, "node-b", 0)
        del up.extra["epochs"]["node-b"]
        up.send("event", "relay-r", protocol.encode_event_body("node_gone", "silent", node="node-b"))
        wait_until(lambda: any(m.topic.kind == "event" for m in session.buffer), step=lambda: client.poll(0.02),
                   what="node_gone queued")
        wait_until(lambda: client.ready, step=up.stepper(client), what="join")
        assert "node-b" not in client.view.nodes and "node-b" not in client.epochs
    finally:
        client.close()
        up.close()


@pytest.mark.parametrize("carried", [None, ["topo", "hb", "sum", "event"]], ids=["all-kinds", "kinds-relay"])
def test_a_heartbeat_shows_a_quiet_topics_first_messages_lost_unless_its_kind_is_not_carried(tmp_path, carried):
    # A device's first event lost on the way: the heartbeat is the only place that shows it,
    # though the client never held a seq of that topic. From a relay that carries some kinds
    # only (its snapshot says which, §3.3, §7), a topic of another kind is no loss.
    from test_protocol import AGENT, h100_device

    up = FakeUpstream(tmp_path)
    if carried is not None:
        up.extra = {"kinds": carried}
    client = Client([f"{up.feed},{up.sync}"])
    try:
        up.send("topo", "node-a", protocol.encode_topo_body([h100_device()], AGENT))

        step = up.stepper(client)
        wait_until(lambda: client.ready, step=step, what="join")
        hb_topic = protocol.build_topic("hb", "node-a")
        event = protocol.build_topic("event", "node-a", "mock-0")
        state = protocol.build_topic("state", "node-a", "mock-0")
        up.send("hb", "node-a", protocol.encode_hb_body({hb_topic: 1, event: 2, state: 40}, 1.0, 0, 1.0))
        wait_until(lambda: client.view.nodes["node-a"].heartbeat is not None, step=step, what="the heartbeat")
        # The event topic's two messages are lost either way; the states only where carried.
        assert client.stats.gaps == (42 if carried is None else 2), client.stats
    finally:
        client.close()
        up.close()
