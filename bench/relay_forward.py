"""Relay forwarding: messages per second a `cuagent relay` passes from one upstream to one
subscriber, and its CPU at a fixed load, for this tree's relay against an older tree's (e.g.
the zmq.proxy forwarding before issue 8) and against a bare zmq.proxy XSUB→XPUB, in one run.

The upstream is a blaster that speaks the protocol well enough for the relay's client to
follow it (it answers the snapshot with a topo, then publishes `state` messages of one
132-SM H100 with consecutive seqs), so the relay decodes every message as it does in service.

    python bench/relay_forward.py [--old-tree /path/to/old/python] [--seconds 5] [--load 8000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import zmq

ROOT = Path(__file__).resolve().parents[1]

BLASTER = """
import sys, time
import numpy as np, zmq
sys.path.insert(0, sys.argv[4])
from cuagent import protocol as p
from feed_codec import make_state
from feed_ingest import AGENT, device
feed, sync, rate = sys.argv[1], sys.argv[2], float(sys.argv[3])
ctx = zmq.Context()
pub, router = ctx.socket(zmq.PUB), ctx.socket(zmq.ROUTER)
pub.setsockopt(zmq.SNDHWM, 0)
pub.bind(feed); router.bind(sync)
node, epoch = "blast", 7
topo_topic, topic = "cua1/topo/blast/", "cua1/state/blast/mock-0/"
topo = [topo_topic.encode(), p.encode_header(p.Header(node, epoch, 1, 1, 1)), p.pack(p.encode_topo_body([device(0)], AGENT))]
body = p.pack(p.encode_state_body(make_state(np.random.default_rng(1))))
hb_topic = "cua1/hb/blast/"
seq, hb_seq, sent, t0, next_hb = 0, 0, 0, time.monotonic(), 0.0
while True:
    if time.monotonic() >= next_hb:  # the relay's client marks a node stale after 3 s without one
        hb_seq += 1
        next_hb = time.monotonic() + 0.5
        body_hb = p.pack(p.encode_hb_body({topic: seq, hb_topic: hb_seq}, 1000.0, 0, 1.0))
        pub.send_multipart([hb_topic.encode(), p.encode_header(p.Header(node, epoch, hb_seq, 1, 1)), body_hb])
    while router.poll(0):
        ident, *_, req = router.recv_multipart()
        m = p.unpack(req)
        if m.get("op") == "ping":
            reply = p.pack({"ok": True, "v": 1, "node": node, "epoch": epoch, "gen": 1})
        else:
            reply = p.snapshot_reply(epoch, [topo], {topo_topic: 1, topic: seq, hb_topic: hb_seq})
        router.send_multipart([ident, reply])
    for _ in range(100):
        seq += 1
        pub.send_multipart([topic.encode(), p.encode_header(p.Header(node, epoch, seq, 1, 1)), body])
    sent += 100
    if rate > 0:  # paced: sleep until the next 100 are due
        ahead = t0 + sent / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
"""
BARE_PROXY = """
import sys, zmq
ctx = zmq.Context()
xsub, xpub = ctx.socket(zmq.XSUB), ctx.socket(zmq.XPUB)
xsub.setsockopt(zmq.RCVHWM, 100000)
xsub.connect(sys.argv[1]); xsub.send(b"\\x01cua1/")
xpub.bind(sys.argv[2])
zmq.proxy(xsub, xpub)
"""


def run(kind: str, tree: str, seconds: float, load: float, tmp: str) -> tuple[float, float]:
    """Delivered msg/s at the subscriber, and the relay's CPU (fraction of a core)."""
    up_feed, up_sync = f"ipc://{tmp}/up.feed", f"ipc://{tmp}/up.sync"
    down_feed, down_sync = f"ipc://{tmp}/down.feed", f"ipc://{tmp}/down.sync"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([tree, str(ROOT / "bench")]))
    blaster = subprocess.Popen([sys.executable, "-c", BLASTER, up_feed, up_sync, str(load), tree], env=env)
    if kind == "bare zmq.proxy":
        relay = subprocess.Popen([sys.executable, "-c", BARE_PROXY, up_feed, down_feed], env=env)
    else:
        relay = subprocess.Popen([sys.executable, "-m", "cuagent.cli", "relay", "--name", "r", "--connect",
                                  f"{up_feed},{up_sync}", "--feed", down_feed, "--sync", down_sync,
                                  "--log-level", "warning"], env=env)
    sub: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"cua1/")
    sub.connect(down_feed)
    try:
        time.sleep(3.0)  # imports, join
        while sub.poll(0):
            sub.recv_multipart()
        ps = psutil.Process(relay.pid)
        c0, t0, n = ps.cpu_times(), time.monotonic(), 0
        while time.monotonic() - t0 < seconds:
            if sub.poll(100):
                sub.recv_multipart()
                n += 1
        dt = time.monotonic() - t0
        c1 = ps.cpu_times()
        if relay.poll() is not None or blaster.poll() is not None:
            raise SystemExit(f"{kind}: a process exited early")
        return n / dt, ((c1.user - c0.user) + (c1.system - c0.system)) / dt
    finally:
        sub.close(0)
        for p in (relay, blaster):
            p.kill()
            p.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old-tree", help="python/ directory of an older cuagent (with its _core built)")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--load", type=float, default=8000.0, help="msg/s offered in the paced run (100 nodes x 80)")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    cases = [("bare zmq.proxy", str(ROOT / "python")), ("this relay", str(ROOT / "python"))]
    if args.old_tree:
        cases.append(("old relay", args.old_tree))
    import tempfile

    print(f"libzmq {zmq.zmq_version()}, {os.cpu_count()} CPUs; 3-frame state messages of ~3.4 KB, ipc")
    for r in range(args.rounds):
        for kind, tree in cases:
            with tempfile.TemporaryDirectory() as tmp:
                top, _ = run(kind, tree, args.seconds, 0, tmp)
            with tempfile.TemporaryDirectory() as tmp:
                got, cpu = run(kind, tree, args.seconds, args.load, tmp)
            print(f"round {r + 1} {kind:15s} unpaced: {top:8,.0f} msg/s delivered;  at {args.load:,.0f} msg/s offered: "
                  f"{got:8,.0f} delivered, relay CPU {cpu:6.1%} of a core")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
