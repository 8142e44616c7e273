"""A relay forgets a node it has heard nothing of for the forget interval (PROTOCOL.md §7): the
node leaves its table (snapshots, ping), a `node_gone` event says so, a client following the
relay drops the node, and a node heard after that is joined again as a new one, whether it
comes back as a new process (a new epoch) or the same one (its epoch, its seqs going on)."""

from __future__ import annotations

import signal
import subprocess
import sys

import msgpack

from cuagent.client import Client
from feed_support import WAIT_S, Recorder, _env, request, start_agent, start_relay, wait_until
from protocol_checker import FeedChecker

RELAY = "relay-f"


def _relay_events(rec: Recorder) -> list[tuple[str, str]]:
    rec.drain()
    return [(b["type"], b["node"]) for b in (msgpack.unpackb(f[2]) for f in rec.frames
                                             if f[0] == f"cua1/event/{RELAY}/".encode())]


def _snapshot(relay) -> dict:
    reply = request(relay.sync, {"op": "snapshot"})
    assert reply is not None
    return FeedChecker().snapshot_reply(reply)


def _ping(relay) -> dict:
    reply = request(relay.sync, {"op": "ping"})
    assert reply is not None
    return msgpack.unpackb(reply)


def _mentions(snap: dict, node: str) -> list[str]:
    """Where a snapshot reply still names ``node``."""
    out = [f"seqs {t}" for t in snap["seqs"] if t.split("/")[2] == node]
    out += [f"message {m[0]}" for m in snap["messages"] if m[0].split("/")[2] == node]
    out += [key for key in ("epochs", "silent_s") if node in snap.get(key, {})]
    return out + (["stale"] if node in snap.get("stale", []) else [])


def _served_epoch(relay, node: str) -> int:
    """The epoch of the node's topo the relay serves (0: none served)."""
    for m in _snapshot(relay)["messages"]:
        if m[0] == f"cua1/topo/{node}/":
            return int(m[1]["epoch"])
    return 0


def test_a_relay_forgets_a_node_it_no_longer_hears_and_joins_it_again_when_it_is_back(tmp_path):
    dead = start_agent(tmp_path, "node-d", "h100-sxm:training")
    paused = start_agent(tmp_path, "node-p", "a100-sxm:training")
    relay = start_relay(tmp_path, RELAY, dead.endpoint, paused.endpoint,
                        extra=("--stale-after-s", "1.5", "--forget-after-s", "3"))
    rec = Recorder(relay.feed)
    follower = Client([relay.endpoint])
    procs = [paused]
    step = lambda: follower.poll(0.05) and None  # noqa: E731
    try:
        assert follower.wait_ready(WAIT_S)
        wait_until(lambda: {d.node for d in follower.view.rank_devices()} == {"node-d", "node-p"}, step=step,
                   what="a state of both nodes at the follower")
        paused_epoch = _served_epoch(relay, "node-p")
        assert paused_epoch and _served_epoch(relay, "node-d")

        # node-d dies without a word: stale first, then forgotten.
        dead.kill()
        wait_until(lambda: ("node_gone", "node-d") in _relay_events(rec), what="node_gone for node-d")
        events = _relay_events(rec)
        assert events.index(("node_stale", "node-d")) < events.index(("node_gone", "node-d")), events
        snap = _snapshot(relay)
        assert _mentions(snap, "node-d") == [], snap
        assert _mentions(snap, "node-p"), snap  # the other node stays
        ping = _ping(relay)
        assert "node-d" not in ping["nodes"] and "node-d" not in ping["stale"] and "node-p" in ping["nodes"], ping
        # The follower drops it too (its view, seqs and epoch).
        wait_until(lambda: "node-d" not in follower.view.nodes, step=step, what="the follower to drop node-d")
        assert {d.node for d in follower.view.rank_devices()} == {"node-p"}

        # It comes back, a new process on the same endpoints (a new epoch): a new node, joined.
        back = start_agent(tmp_path, "node-d", "h100-sxm:training")
        procs.append(back)
        wait_until(lambda: "node-d" in _ping(relay)["nodes"], what="node-d followed again")
        wait_until(lambda: _served_epoch(relay, "node-d") != 0, what="node-d's topo served again")
        wait_until(lambda: {d.node for d in follower.view.rank_devices()} == {"node-d", "node-p"}, step=step,
                   what="node-d back at the follower")

        # node-p falls silent as long (the same process, stopped), then goes on in its epoch: the
        # relay, having forgotten it, joins it again (its seqs do not start from 1).
        paused.popen.send_signal(signal.SIGSTOP)
        try:
            wait_until(lambda: ("node_gone", "node-p") in _relay_events(rec), what="node_gone for node-p")
            assert "node-p" not in _ping(relay)["nodes"] and _mentions(_snapshot(relay), "node-p") == []
        finally:
            paused.popen.send_signal(signal.SIGCONT)
        wait_until(lambda: _served_epoch(relay, "node-p") == paused_epoch, what="node-p joined again, same epoch")
        assert "node-p" in _ping(relay)["nodes"]
        wait_until(lambda: {d.node for d in follower.view.rank_devices()} == {"node-d", "node-p"}, step=step,
                   what="node-p back at the follower")
        assert follower.view.nodes["node-p"].epoch == paused_epoch
        gone = [e for e in _relay_events(rec) if e[0] == "node_gone"]
        assert gone == [("node_gone", "node-d"), ("node_gone", "node-p")], gone
    finally:
        follower.close()
        rec.close()
        assert relay.stop() == 0, relay.log()
        for p in procs:
            assert p.stop() == 0, p.log()


def test_a_bad_forget_interval_fails_clearly(tmp_path):
    for bad, stale in (("0", "3"), ("-1", "3"), ("nan", "3"), ("2", "3"), ("3", "3"), ("1e6", "3")):
        r = subprocess.run([sys.executable, "-m", "cuagent.cli", "relay", "--stale-after-s", stale,
                            "--forget-after-s", bad, "--connect", f"ipc://{tmp_path}/up,ipc://{tmp_path}/up-sync",
                            "--feed", f"ipc://{tmp_path}/f", "--sync", f"ipc://{tmp_path}/s"],
                           capture_output=True, text=True, timeout=WAIT_S, env=_env())
        assert r.returncode == 2 and "--forget-after-s must be > --stale-after-s (3 s) and < 1e6 s" in r.stderr, \
            (bad, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_forgotten_node_leaves_nothing_in_the_relays_joins():
    # Its join wait, the upstreams that listed it, requests not yet sent: gone; a reply in
    # flight for it is not merged (it would bring the node back, joined, from before).
    import zmq

    from cuagent import _core
    from cuagent.feed.endpoint import as_endpoint
    from cuagent.node.relay_joins import UpstreamJoins

    ctx = zmq.Context()
    joins = UpstreamJoins(ctx, [as_endpoint("ipc:///nonexistent/a.feed,ipc:///nonexistent/a.sync")],
                          _core.RelayTable(), "relay-t", None)
    try:
        u = joins.upstreams[0]
        joins.joining["x"] = (7, {0: 2})
        joins.node_upstreams.update({"x": {0}, "y": {0}})
        u.pending.extend([("cua1/topo/x/", "x"), ("cua1/topo/y/", "y")])
        u.inflight = ("cua1/state/x/", "x", 0.0)
        joins.forget("x")
        assert "x" not in joins.joining and "x" not in joins.node_upstreams and "y" in joins.node_upstreams
        assert list(u.pending) == [("cua1/topo/y/", "y")]
        assert joins.unwanted_replies == {(0, "x")}
    finally:
        joins.close()
        ctx.term()


def test_a_client_drops_a_node_its_relay_never_says_is_gone(tmp_path):
    """The relay restarts while a node is down: the new relay never hears the node, so no
    node_gone comes. The client drops the node once it has been silent for the forget
    interval the relay's snapshot replies give (its own clock), and keeps the live one."""
    live = start_agent(tmp_path, "node-l", "h100-sxm:training")
    dead = start_agent(tmp_path, "node-d", "a100-sxm:training")
    extra = ("--stale-after-s", "1", "--forget-after-s", "3")
    relay = start_relay(tmp_path, RELAY, live.endpoint, dead.endpoint, extra=extra)
    assert _ping(relay)["forget_after_s"] == 3.0 and _snapshot(relay)["forget_after_s"] == 3.0
    follower = Client([relay.endpoint], stale_after_s=1.0)
    kinds: list[tuple[str, str]] = []
    follower.on_update(lambda u: kinds.append((u.kind, u.node)))
    step = lambda: follower.poll(0.05) and None  # noqa: E731
    try:
        assert follower.wait_ready(WAIT_S)
        wait_until(lambda: {d.node for d in follower.view.rank_devices()} == {"node-d", "node-l"}, step=step,
                   what="a state of both nodes at the follower")
        relay.kill()
        dead.kill()
        relay = start_relay(tmp_path, RELAY, live.endpoint, dead.endpoint, extra=extra)
        wait_until(lambda: "node-d" not in follower.view.nodes, step=step, what="the follower to drop node-d")
        assert ("gone", "node-d") in kinds and ("stale", "node-d") in kinds
        assert kinds.index(("stale", "node-d")) < kinds.index(("gone", "node-d"))
        wait_until(lambda: {d.node for d in follower.view.rank_devices()} == {"node-l"}, step=step,
                   what="node-l current at the follower")
        assert ("gone", "node-l") not in kinds
    finally:
        follower.close()
        assert relay.stop() == 0, relay.log()
        assert live.stop() == 0, live.log()
