"""`cuagent relay`, once and stacked twice: the same topics, seqs and epochs as a direct
subscriber, frames untouched, and snapshots that reproduce the agent's."""

from __future__ import annotations

import signal
from collections import defaultdict

import msgpack

from cuagent.client import Client
from feed_support import WAIT_S, Recorder, drain_quiet, request, start_agent, start_relay, wait_until
from protocol_checker import FeedChecker


def test_stacked_relays_forward_untouched_and_snapshot_like_the_agent(tmp_path):
    a = start_agent(tmp_path, "node-a", "h100-sxm:training")
    b = start_agent(tmp_path, "node-b", "mi300x:inference")
    # The agents are stopped before the snapshots are compared: a long stale interval keeps
    # the relays serving them meanwhile (test_relay_stale.py covers withholding silent nodes).
    patient = ("--stale-after-s", "600")
    r1 = start_relay(tmp_path, "relay-1", a.endpoint, b.endpoint, extra=patient)
    r2 = start_relay(tmp_path, "relay-2", r1.endpoint, extra=patient)
    procs = [a, b, r1, r2]
    recs = {"direct-a": Recorder(a.feed), "direct-b": Recorder(b.feed), "r1": Recorder(r1.feed), "r2": Recorder(r2.feed)}
    clients = {"r1": Client([r1.endpoint]), "r2": Client([r2.endpoint]), "direct": Client([a.endpoint, b.endpoint])}
    try:
        for c in clients.values():
            assert c.wait_ready(WAIT_S)

        def step():
            n = sum(r.drain() for r in recs.values())
            return n + sum(len(c.poll(0.0)) for c in clients.values())

        wait_until(lambda: all(sum(1 for f in r.frames if f[0].startswith(b"cua1/state/")) >= 6 for r in recs.values()),
                   step=lambda: step() and None, what="traffic through both relays")
        # Stop the agents cleanly (they flush what they sent), so the last message of every
        # topic is the same for every observer.
        for p in (a, b):
            assert p.stop() == 0, p.log()
        drain_quiet(step)
        direct = recs["direct-a"].frames + recs["direct-b"].frames
        by_topic = defaultdict(dict)
        for f in direct:
            by_topic[f[0]][msgpack.unpackb(f[1])["seq"]] = f
        for name in ("r1", "r2"):
            frames = recs[name].frames
            assert {f[0] for f in frames} == set(by_topic), name  # same topics
            last = {}
            for f in frames:
                seq = msgpack.unpackb(f[1])["seq"]
                # Frames untouched: byte-identical to what the agent sent with that seq.
                assert by_topic[f[0]].get(seq, f) == f, (name, f[0], seq)
                assert seq > last.get(f[0], 0), (name, f[0], "out of order")
                last[f[0]] = seq
            for topic, seq in last.items():
                assert seq == max(by_topic[topic]), (name, topic)  # nothing lost at the end
        # Clients through relays see the same nodes, epochs and latest windows.
        views = {n: c.view for n, c in clients.items()}
        for node in ("node-a", "node-b"):
            epochs = {n: v.nodes[node].epoch for n, v in views.items()}
            assert len(set(epochs.values())) == 1, epochs
            for dev_id, dv in views["direct"].nodes[node].devices.items():
                for n, v in views.items():
                    other = v.nodes[node].devices[dev_id]
                    assert (other.seq, other.ts, other.idle_units) == (dv.seq, dv.ts, dv.idle_units), n
        # The relays' snapshots reproduce what the agents sent last, map for map (the
        # agents are frozen, so the last frame recorded is each topic's latest).
        for node in ("node-a", "node-b"):
            prefix = f"cua1/state/{node}/"
            latest = {t.decode(): seqs[max(seqs)] for t, seqs in by_topic.items() if t.decode().startswith(prefix)}
            want = sorted([t, msgpack.unpackb(f[1]), msgpack.unpackb(f[2])] for t, f in latest.items())
            for relay in (r1, r2):
                got = msgpack.unpackb(request(relay.sync, {"op": "snapshot", "prefix": prefix}))
                assert sorted(got["messages"]) == want
                assert got["epoch"] == want[0][1]["epoch"]  # one node: that node's epoch
                assert got["seqs"] == {t: m[1]["seq"] for t, m in zip(sorted(latest), want)}
        whole = request(r2.sync, {"op": "snapshot"})
        FeedChecker().snapshot_reply(whole)
        assert {m[0] for m in msgpack.unpackb(whole)["messages"] if m[0].startswith("cua1/topo/")} == {"cua1/topo/node-a/", "cua1/topo/node-b/"}
        ping = msgpack.unpackb(request(r2.sync, {"op": "ping"}))
        assert ping["ok"] is True and ping["node"] == "relay-2" and ping["nodes"] == ["node-a", "node-b"]
        for c in clients.values():
            # A state gap can be honest: a window the agent missed (CPU starvation on a loaded machine)
            # skips its seq (PROTOCOL.md §4). What must not happen: topo gaps (they force a resync),
            # restarts or undecodable messages.
            assert (c.stats.resyncs, c.stats.restarts, c.stats.decode_errors) == (0, 0, 0), c.stats
    finally:
        for c in clients.values():
            c.close()
        for r in recs.values():
            r.close()
        for p in reversed(procs):
            assert p.stop() == 0, p.log()


def test_a_signal_stops_a_relay_whose_duration_is_far_off(tmp_path):
    # --duration arms a timer; stopped sooner by a signal, the relay must exit then, not wait
    # (as a non-daemon timer thread made it) until the duration is up.
    proc = start_relay(tmp_path, "relay-long", "ipc:///nonexistent/up,ipc:///nonexistent/up-sync",
                       extra=("--duration", "3600"))
    assert proc.stop(signal.SIGTERM, timeout=15) == 0, proc.log()
