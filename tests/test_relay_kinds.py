"""`cuagent relay --kinds`: a relay that carries only some kinds (PROTOCOL.md §7).

A summaries tier (``--kinds topo,hb,sum,event``) in front of a real agent: subscribed
upstream to those kinds only, it never takes in a state message, so its feed, table and
snapshots hold none; clients following summaries, or everything, through it count no gap
for the state seqs that the forwarded heartbeats still list, and do not resync for them.
"""

from __future__ import annotations

import msgpack
import pytest

from cuagent.client import Client
from feed_support import WAIT_S, Recorder, request, start_agent, start_relay, wait_until

SUMMARIES_TIER = "topo,hb,sum,event"
SUMMARY_FOLLOWER = ("cua1/sum/", "cua1/topo/", "cua1/hb/", "cua1/event/")


@pytest.fixture(scope="module")
def tier(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kinds")
    agent = start_agent(tmp, "node-k", "h100-sxm:fragmented,a100-sxm:training")
    relay = start_relay(tmp, "relay-k", agent.endpoint, extra=("--kinds", SUMMARIES_TIER))
    try:
        yield agent, relay
    finally:
        assert relay.stop() == 0, relay.log()
        assert agent.stop() == 0, agent.log()


def _kind(topic: bytes) -> str:
    return topic.split(b"/")[1].decode()


def test_a_summaries_tier_takes_in_no_state(tier):
    agent, relay = tier
    rec = Recorder(relay.feed)
    direct = Recorder(agent.feed, b"cua1/state/")
    try:
        # The agent publishes states all along (20 Hz per device); through the relay only
        # the kinds it carries arrive.
        wait_until(lambda: (rec.drain(100), direct.drain(0)) and
                   sum(_kind(f[0]) == "hb" for f in rec.frames) >= 3 and
                   sum(_kind(f[0]) == "sum" for f in rec.frames) >= 3,
                   what="3 heartbeats and 3 summaries through the relay")
        assert len(direct.frames) > 0
        kinds = {_kind(f[0]) for f in rec.frames}
        assert "state" not in kinds and kinds >= {"hb", "sum"}, kinds
    finally:
        rec.close()
        direct.close()
    ping = msgpack.unpackb(request(relay.sync, {"op": "ping"}))
    assert ping["ok"] is True and ping["kinds"] == ["topo", "hb", "event", "sum"], ping
    assert ping["nodes"] == ["node-k"], ping
    # Its snapshot holds none either, not even their seqs; it does hold the node's topo and sum.
    snap = msgpack.unpackb(request(relay.sync, {"op": "snapshot", "prefix": "cua1/"}))
    assert snap["ok"] is True, snap
    topics = [m[0] for m in snap["messages"]]
    assert not [t for t in [*topics, *snap["seqs"]] if t.startswith("cua1/state/")], snap["seqs"]
    assert {"cua1/topo/node-k/", "cua1/sum/node-k/"} <= set(topics), topics
    assert "cua1/hb/node-k/" in snap["seqs"]
    state = msgpack.unpackb(request(relay.sync, {"op": "snapshot", "prefix": "cua1/state/"}))
    assert state["ok"] is True and state["messages"] == [] and state["seqs"] == {}, state


@pytest.mark.parametrize("prefixes", [SUMMARY_FOLLOWER, ("cua1/",)], ids=["summaries", "everything"])
def test_a_client_through_a_summaries_tier_counts_no_gap(tier, prefixes):
    # The agent's heartbeats, forwarded as sent, list the seqs of its state topics, which the
    # relay never carries: a client holds no seq of them, so they are no loss (§3.3).
    _, relay = tier
    client = Client([relay.endpoint], prefixes=prefixes)
    try:
        assert client.wait_ready(WAIT_S)
        seen: dict[str, int] = {}
        client.on_update(lambda u: seen.__setitem__(u.kind, seen.get(u.kind, 0) + 1))
        wait_until(lambda: seen.get("hb", 0) >= 4 and seen.get("sum", 0) >= 4,
                   step=lambda: client.poll(0.05) and None, what=f"4 heartbeats and 4 summaries ({seen})")
        st = client.stats
        assert (st.gaps, st.gap_events, st.resyncs, st.restarts, st.decode_errors) == (0, 0, 0, 0, 0), st
        assert "state" not in seen, seen
        nv = client.view.nodes["node-k"]
        assert len(nv.devices) == 2 and all(dv.state is None for dv in nv.devices.values())
        assert client.view.summaries["node-k"].devices == tuple(nv.devices)
        assert not [t for t in client.seqs if t.startswith("cua1/state/")]
    finally:
        client.close()


def test_its_own_events_pass_when_it_carries_no_event_kind(tmp_path):
    # node_stale/node_back enter the relay's forwarder through its own inproc PUB, which its
    # XSUB follows by the same (filtered) subscriptions: its event topic is always among them.
    agent = start_agent(tmp_path, "node-q")
    relay = start_relay(tmp_path, "relay-q", agent.endpoint, extra=("--kinds", "topo,hb,sum", "--stale-after-s", "1"))
    rec = Recorder(relay.feed)
    try:
        wait_until(lambda: rec.drain(100) >= 0 and any(_kind(f[0]) == "hb" for f in rec.frames),
                   what="a heartbeat through the relay")
        assert agent.stop() == 0, agent.log()
        wait_until(lambda: rec.drain(100) >= 0 and any(f[0] == b"cua1/event/relay-q/" for f in rec.frames),
                   what="the relay's node_stale event")
        events = [msgpack.unpackb(f[2]) for f in rec.frames if f[0] == b"cua1/event/relay-q/"]
        assert events[0]["type"] == "node_stale" and events[0]["node"] == "node-q", events
        assert {_kind(f[0]) for f in rec.frames} <= {"topo", "hb", "sum", "event"}
        assert not [f for f in rec.frames if f[0].startswith(b"cua1/event/node-q")]
    finally:
        rec.close()
        assert relay.stop() == 0, relay.log()
        agent.stop()


def test_a_kinds_relay_joins_its_upstreams_topos_first():
    # A node a join's reply brings is served at once: brought by the hb or sum reply before its
    # topo, it would be served without one (a client could not place its summary records).
    import zmq

    from cuagent import _core
    from cuagent.feed.endpoint import as_endpoint
    from cuagent.node.relay_joins import UpstreamJoins

    ctx = zmq.Context()
    joins = UpstreamJoins(ctx, [as_endpoint("ipc:///nonexistent/k.feed,ipc:///nonexistent/k.sync")],
                          _core.RelayTable(), "relay-k", None, kinds=("topo", "hb", "event", "sum"))
    try:
        assert joins.whole_prefixes[0] == "cua1/topo/"
        assert sorted(joins.whole_prefixes) == sorted(f"cua1/{k}/" for k in ("topo", "hb", "event", "sum"))
    finally:
        joins.close()
        ctx.term()
