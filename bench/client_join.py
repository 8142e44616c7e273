"""A client's cost of joining many nodes at once, per node, as the cluster grows: the join's
snapshot reply of N nodes applied (topo, a state and an hb each), and a resync of all N after
each restarted (a rolling upgrade of every agent: a snapshot request per node and kind, then
each node's replies applied and its held messages released). Per node, the cost should not
grow with N; the ratio printed is the cost per node at the largest N over the smallest.

The client's own code (feed/session.py, feed_state.py) is driven in this process, its sync
socket replaced by a list of prepared replies: the figures are the client's CPU, with no
socket or relay time in them. With ``--old-tree DIR`` (an older checkout's python/ directory, its _core
built), the same measurements run on that tree too, in its own process.

    python bench/client_join.py [--nodes 500,2000,8000] [--old-tree DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]


def measure(n: int) -> dict[str, float]:
    """Runs in the tree under test (whatever `cuagent` imports): seconds per node."""
    import msgpack
    import numpy as np
    import zmq

    from cuagent import wire
    from cuagent.client import Endpoint  # the public path: an --old-tree has it too
    from cuagent.feed.session import Session
    try:
        from cuagent.feed.feed_state import FeedState
    except ImportError:  # an --old-tree from before FeedState left session.py
        from cuagent.feed.session import FeedState  # type: ignore[attr-defined]

    sys.path.insert(0, str(ROOT / "bench"))
    from feed_codec import make_state
    from feed_ingest import AGENT, device

    logging.disable(logging.WARNING)
    dev = device(0)
    topo = wire.pack(wire.encode_topo_body([dev], AGENT))
    state = wire.pack(wire.encode_state_body(make_state(np.random.default_rng(1))))
    hb = wire.pack(wire.encode_hb_body({}, 1.0, 0, 1.0))
    names = [f"node{i:05d}" for i in range(n)]

    def frames(kind: str, node: str, epoch: int, dev_id: Optional[str] = None) -> list[bytes]:
        body = {"topo": topo, "state": state, "hb": hb}[kind]
        header = wire.encode_header(wire.Header(node, epoch, 1, time.time_ns(), 1))
        return [wire.build_topic(kind, node, dev_id).encode(), header, body]

    def node_messages(node: str, epoch: int) -> list[list[bytes]]:
        return [frames("topo", node, epoch), frames("state", node, epoch, dev.id), frames("hb", node, epoch)]

    def reply(epoch: int, nodes: list[str], prefix: str = "cua1/") -> bytes:
        msgs = [m for node in nodes for m in node_messages(node, epoch)
                if m[0].decode().startswith(prefix) and not m[0].startswith(b"cua1/hb/")]
        seqs = {m[0].decode(): 1 for node in nodes for m in node_messages(node, epoch) if m[0].decode().startswith(prefix)}
        epochs = {node: epoch for node in nodes}
        return wire.snapshot_reply(7, msgs, seqs, epochs=epochs)

    class Dealer:
        """The sync socket's stand-in: records each request's prefix, answers from `replies`."""

        def __init__(self) -> None:
            self.sent: list[str] = []
            self.replies: list[bytes] = []

        def send(self, data: bytes, flags: int = 0) -> None:
            self.sent.append(msgpack.unpackb(data)["prefix"])

        def recv(self, flags: int = 0) -> bytes:
            if not self.replies:
                raise zmq.Again()
            return self.replies.pop(0)

        def close(self, linger: int = 0) -> None:
            pass

    feed = FeedState(["cua1/"], 5.0)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    session = Session(ctx, Endpoint(f"inproc://join-{n}-feed", f"inproc://join-{n}-sync"), feed, 100_000)
    fake = Dealer()
    assert session.dealer is not None
    session.dealer.close(0)
    session.dealer = fake  # type: ignore[assignment]  # the stand-in answers the same three calls
    session._new_dealer = lambda: None  # type: ignore[method-assign]  # one stand-in for every retry
    session.feed_seen = True
    session.inflight = None
    session._send_next_request()

    full = reply(1, names)
    fake.replies.append(full)
    t0 = time.perf_counter()
    session._drain_sync()
    join_s = time.perf_counter() - t0
    assert not session.joining and len(feed.view.nodes) == n, "the join did not complete"

    # Every node restarts: its new topo arrives first (so it is resynchronised), then the
    # replies to its requests, one kind per request.
    t0 = time.perf_counter()
    for node in names:
        session.receive(frames("topo", node, 2))
    while session.inflight is not None:
        prefix = fake.sent[-1]
        fake.replies.append(reply(2, [prefix.split("/")[2]], prefix))
        session._drain_sync()
    resync_s = time.perf_counter() - t0
    assert all(feed.epochs[node] == 2 for node in names), "a node was not resynchronised"
    session.close()
    return {"join_us": join_s / n * 1e6, "resync_us": resync_s / n * 1e6}


def run_tree(python_path: Optional[str], n: int) -> dict[str, float]:
    env = dict(os.environ)
    if python_path is not None:
        env["PYTHONPATH"] = python_path
    out = subprocess.run([sys.executable, __file__, "--child", str(n)], env=env, capture_output=True, text=True,
                         timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"the measurement of {n} nodes failed:\n{out.stderr}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", default="500,2000,8000", help="cluster sizes, comma-separated (default 500,2000,8000)")
    ap.add_argument("--old-tree", help="an older checkout's python/ directory (its _core built) to measure too")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child)))
        return
    sizes = [int(v) for v in args.nodes.split(",")]
    trees: list[tuple[str, Optional[str]]] = [("this tree", None)]
    if args.old_tree:
        trees.append(("old tree", str(Path(args.old_tree).resolve())))
    print(f"{'tree':10s} {'nodes':>6s} {'join: us per node':>18s} {'resync all: us per node':>24s}")
    results: dict[str, list[dict[str, Any]]] = {}
    for label, path in trees:
        for n in sizes:
            r = run_tree(path, n)
            results.setdefault(label, []).append(r)
            print(f"{label:10s} {n:6d} {r['join_us']:18.0f} {r['resync_us']:24.0f}", flush=True)
    for label, rows in results.items():
        print(f"{label}: per-node cost at {sizes[-1]} nodes / at {sizes[0]}: join "
              f"{rows[-1]['join_us'] / rows[0]['join_us']:.1f}x, resync {rows[-1]['resync_us'] / rows[0]['resync_us']:.1f}x")
    if len(results) == 2:
        new, old = results["this tree"][-1], results["old tree"][-1]
        print(f"at {sizes[-1]} nodes, old / this tree: join {old['join_us'] / new['join_us']:.1f}x, "
              f"resync {old['resync_us'] / new['resync_us']:.1f}x")


if __name__ == "__main__":
    main()
