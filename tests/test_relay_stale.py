"""A relay does not serve a silent node as live (PROTOCOL.md §7): once it has not heard a
node's heartbeat for the stale interval it withholds the node from its snapshots, says so with
a `node_stale` event on its own feed, and serves the node again (`node_back`) once heard."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import msgpack

from cuagent.client import Client
from feed_support import WAIT_S, Recorder, _env, request, start_agent, start_relay, wait_until
from protocol_checker import FeedChecker
from test_external_client import PageClient

RELAY = "relay-s"


def _relay_events(rec: Recorder) -> list[tuple[int, dict]]:
    """(seq, body) of every event the relay published under its own name."""
    rec.drain()
    return [(msgpack.unpackb(f[1])["seq"], msgpack.unpackb(f[2])) for f in rec.frames
            if f[0] == f"cua1/event/{RELAY}/".encode()]


def _announced(rec: Recorder, kind: str, node: str) -> bool:
    return any(b["type"] == kind and b["node"] == node for _, b in _relay_events(rec))


def _served_nodes(relay) -> tuple[set[str], dict]:
    reply = request(relay.sync, {"op": "snapshot"})
    assert reply is not None
    snap = FeedChecker().snapshot_reply(reply)
    return {m[0].split("/")[2] for m in snap["messages"]}, snap


def _fresh_client(relay) -> Client:
    c = Client([relay.endpoint])
    assert c.wait_ready(WAIT_S)
    return c


def test_a_relay_withholds_a_silent_node_says_so_and_serves_it_again(tmp_path):
    dead = start_agent(tmp_path, "node-d", "h100-sxm:training")
    paused = start_agent(tmp_path, "node-p", "a100-sxm:training")
    relay = start_relay(tmp_path, RELAY, dead.endpoint, paused.endpoint)
    rec = Recorder(relay.feed)
    follower = _fresh_client(relay)  # joined while both nodes live
    events: list = []
    follower.on_update(lambda u: events.append(u.body) if u.kind == "event" and u.node == RELAY else None)
    clients = [follower]
    try:
        wait_until(lambda: len(follower.view.rank_devices()) == 2, step=lambda: follower.poll(0.05) and None,
                   what="a state of both nodes")
        assert _served_nodes(relay)[0] == {"node-d", "node-p"}

        # The only upstream of node-d dies without a word.
        killed = time.monotonic()
        dead.kill()  # SIGKILL
        wait_until(lambda: _announced(rec, "node_stale", "node-d"), what="node_stale for node-d on the relay's feed")
        print(f"node_stale for node-d on the relay's feed {time.monotonic() - killed:.2f} s after SIGKILL")
        served, snap = _served_nodes(relay)
        assert served == {"node-p"} and snap["stale"] == ["node-d"], snap
        # Its seqs stay listed (they are what was sent), its messages do not.
        assert "cua1/topo/node-d/" in snap["seqs"]
        ping = msgpack.unpackb(request(relay.sync, {"op": "ping"}))
        assert ping["stale"] == ["node-d"], ping
        # A client joining now never sees node-d live: it has no view of it at all.
        fresh = _fresh_client(relay)
        clients.append(fresh)
        wait_until(lambda: fresh.view.rank_devices(), step=lambda: fresh.poll(0.05) and None, what="node-p ranked")
        assert "node-d" not in fresh.view.nodes
        assert {d.node for d in fresh.view.rank_devices()} == {"node-p"}
        # So does the client written from the page, and it accepts the relay's event.
        page = PageClient(relay.feed, relay.sync)
        try:
            page.join()
            assert "node-d" not in page.topo and page.snapshot["stale"] == ["node-d"]
            page.follow(lambda: page.kinds().get("state", 0) >= 3, "node-p's states")
        finally:
            page.close()
        # The follower got the relay's event through the client library, and went stale itself.
        wait_until(lambda: any(e.type == "node_stale" for e in events), step=lambda: follower.poll(0.05) and None,
                   what="the follower to apply node_stale")
        assert [e.extra["node"] for e in events] == ["node-d"]
        wait_until(lambda: follower.view.nodes["node-d"].stale, step=lambda: follower.poll(0.05) and None,
                   what="the follower's own stale mark")  # its own timer, a moment after the relay's
        assert {d.node for d in follower.view.rank_devices()} == {"node-p"}

        # A node heard again is served again: node-p falls silent, then resumes.
        paused.popen.send_signal(signal.SIGSTOP)
        try:
            wait_until(lambda: _announced(rec, "node_stale", "node-p"), what="node_stale for node-p")
            served, snap = _served_nodes(relay)
            assert served == set() and snap["stale"] == ["node-d", "node-p"], snap
        finally:
            paused.popen.send_signal(signal.SIGCONT)
        wait_until(lambda: _announced(rec, "node_back", "node-p"), what="node_back for node-p")
        served, snap = _served_nodes(relay)
        assert served == {"node-p"} and snap["stale"] == ["node-d"], snap
        late = _fresh_client(relay)
        clients.append(late)
        wait_until(lambda: late.view.rank_devices(), step=lambda: late.poll(0.05) and None, what="node-p ranked again")
        assert not late.view.nodes["node-p"].stale and "node-d" not in late.view.nodes
        # The relay's own events are one gap-free stream: stale d, stale p, back p.
        seen = _relay_events(rec)
        assert [s for s, _ in seen] == list(range(1, len(seen) + 1))
        assert [(b["type"], b["node"]) for _, b in seen] == \
            [("node_stale", "node-d"), ("node_stale", "node-p"), ("node_back", "node-p")]
    finally:
        for c in clients:
            c.close()
        rec.close()
        assert relay.stop() == 0, relay.log()
        assert paused.stop() == 0, paused.log()


def test_a_bad_stale_interval_fails_clearly(tmp_path):
    for bad in ("0", "-1", "nan"):
        r = subprocess.run([sys.executable, "-m", "cuagent.cli", "relay", "--stale-after-s", bad, "--connect",
                            f"ipc://{tmp_path}/up,ipc://{tmp_path}/up-sync", "--feed", f"ipc://{tmp_path}/f",
                            "--sync", f"ipc://{tmp_path}/s"], capture_output=True, text=True, timeout=WAIT_S, env=_env())
        assert r.returncode == 2 and "--stale-after-s must be > 0 and < 1e6 s" in r.stderr, (bad, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
