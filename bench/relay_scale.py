"""Relay at scale (issue 14 item 2): one relay in front of 2,000 synthetic 8-GPU nodes (16,000
state topics), offered as many messages a second as this machine can generate, in one run for:
the relay before (main's Python forwarding plus a decoding client, with --old-tree), this
relay's native forwarder, its Python loop (--forwarder python), and a bare zmq.proxy (libzmq
alone: no table, no subscription guard) as the floor.

Messages are those of a real NVML agent: the bench first runs `cuagent run --driver nvml` on
the tests' fake libnvidia-ml (8 GPUs) and takes its topo and a state body (~400 bytes: no
per-SM levels), then a blaster (tests/synthetic_nodes.py, pre-encoded headers) publishes them
for every node, each with its own epoch and seqs, plus an hb per node every 10 rounds and a
topo every 100, and answers the relay's snapshots. A libzmq proxy in this process counts what
the relay delivers (STATISTICS of zmq_proxy_steerable).

Per relay: offered and delivered msg/s, relay CPU (psutil) and CPU per 100k msg/s delivered,
and the time to answer a full snapshot (`cua1/`, every topo and state) while under load.

    python bench/relay_scale.py [--old-tree /path/to/old/python] [--nodes 2000] [--seconds 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional, TypedDict

import msgpack
import psutil
import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from machine import Steal  # noqa: E402

BLASTER = """
import sys, time, pickle
sys.path.insert(0, sys.argv[5])
from synthetic_nodes import SyntheticNodes
feed, sync, nodes, count_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
topo, state = pickle.load(open(sys.argv[6], "rb"))
load = float(sys.argv[7])
up = SyntheticNodes(feed, sync, nodes, topo, state, prefix="gpu", fast=True, sndhwm=100_000)
up.start_all()
ts = time.time_ns() // 100_000_000 * 100_000_000
t0, r, next_report = time.monotonic(), 0, 0.0
while True:
    ts += 100_000_000
    for i, node in enumerate(up.nodes):
        for device in node.devices:
            up.state(node, device, ts)
        if i % 250 == 0:
            up.serve()
        if (r + i) % 10 == 0:
            up.hb(node)
        if (r + i) % 100 == 0:
            up.topo(node)
    r += 1
    now = time.monotonic()
    if now >= next_report:
        with open(count_file + ".tmp", "w") as f:
            f.write(str(up.sent))
        import os; os.replace(count_file + ".tmp", count_file)
        next_report = now + 0.25
    if load > 0:
        ahead = t0 + up.sent / load - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
"""
BARE_PROXY = """
import sys, zmq
ctx = zmq.Context()
xsub, xpub = ctx.socket(zmq.XSUB), ctx.socket(zmq.XPUB)
xsub.setsockopt(zmq.RCVHWM, 100000)
xpub.setsockopt(zmq.SNDHWM, 100000)
xsub.connect(sys.argv[1]); xsub.send(b"\\x01cua1/")
xpub.bind(sys.argv[2])
zmq.proxy(xsub, xpub)
"""


def capture_nvml_frames(tmp: Path) -> tuple[dict[str, Any], dict[str, Any], list[int]]:
    """The topo and a state body of `cuagent run --driver nvml` on the fake libnvidia-ml (8 GPUs),
    and the sizes of one state message's frames."""
    import nvml_fake

    fake = nvml_fake.FakeNvml(nvml_fake.build("full", tmp), tmp)
    env = fake.env(fake.script("devices 8\n"))
    agent = subprocess.Popen([sys.executable, "-m", "cuagent.cli", "run", "--driver", "nvml", "--nvml-library",
                              str(fake.library), "--node", "gpu-node-0001", "--feed", f"ipc://{tmp}/nvml.feed",
                              "--sync", f"ipc://{tmp}/nvml.sync", "--log-level", "warning"], env=env)
    sub: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"cua1/")
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(f"ipc://{tmp}/nvml.feed")
    topo: Optional[list[bytes]] = None
    state: Optional[list[bytes]] = None
    deadline = time.monotonic() + 60
    try:
        # A state once GPM has two samples (its rates need a previous one): the 10th window.
        while (topo is None or state is None) and time.monotonic() < deadline:
            if not sub.poll(500):
                continue
            frames = sub.recv_multipart()
            if frames[0].startswith(b"cua1/topo/"):
                topo = frames
            elif frames[0].startswith(b"cua1/state/") and msgpack.unpackb(frames[1])["seq"] >= 10:
                state = frames
    finally:
        sub.close(0)
        agent.terminate()
        agent.wait(10)
    if topo is None or state is None:
        raise SystemExit("no topo/state from the NVML agent on the fake library")
    return msgpack.unpackb(topo[2]), msgpack.unpackb(state[2]), [len(f) for f in state]


class Sink:
    """A libzmq proxy from the relay's feed to a PUB nobody reads: it counts in C."""

    def __init__(self, feed: str) -> None:
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self.sub = ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.RCVHWM, 100_000)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"cua1/")
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.connect(feed)
        self.null = ctx.socket(zmq.PUB)
        self.null.setsockopt(zmq.LINGER, 0)
        addr = f"inproc://sink-null-{id(self):x}"
        self.null.bind(addr)
        self.control = ctx.socket(zmq.REP)
        self.control_addr = f"inproc://sink-control-{id(self):x}"
        self.control.bind(self.control_addr)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ask = ctx.socket(zmq.REQ)
        self.ask.setsockopt(zmq.LINGER, 0)
        self.ask.connect(self.control_addr)

    def _run(self) -> None:
        try:
            zmq.proxy_steerable(self.sub, self.null, None, self.control)
        except zmq.ZMQError:
            pass

    def messages(self) -> int:
        self.ask.send(b"STATISTICS")
        frames = self.ask.recv_multipart()
        frames_received: int = struct.unpack("<Q", frames[0])[0]  # libzmq's count, a uint64
        return frames_received // 3  # every message has three

    def close(self) -> None:
        self.ask.send(b"TERMINATE")
        self.ask.recv_multipart()
        self.thread.join(5)
        for sock in (self.sub, self.null, self.control, self.ask):
            sock.close(0)


def main_thread_cpu(ps: psutil.Process) -> float:
    """CPU seconds of the process's main thread (the relay's sync thread)."""
    return next((t.user_time + t.system_time for t in ps.threads() if t.id == ps.pid), 0.0)


def snapshot_times(sync: str, rounds: int = 3) -> tuple[list[float], int]:
    """Seconds to answer a full snapshot, each time (none: no answer in 20 s); state topics
    served in the last."""
    dealer: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(sync)
    times: list[float] = []
    states = 0
    try:
        for _ in range(rounds):
            t0 = time.perf_counter()
            dealer.send(msgpack.packb({"op": "snapshot", "prefix": "cua1/"}))
            if not dealer.poll(20_000):
                return [], 0
            reply = dealer.recv()
            times.append(time.perf_counter() - t0)
            snap = msgpack.unpackb(reply)
            states = sum(1 for m in snap.get("messages", []) if m[0].startswith("cua1/state/"))
    finally:
        dealer.close(0)
    return times, states


def read_count(path: Path) -> int:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return 0


class RelayRun(TypedDict):
    """One relay's run: rates in msg/s, CPU in fractions of a core, snapshot times in s."""
    offered: float
    delivered: float
    cpu: float
    cpu_per_100k: float
    snapshot_s: list[float]  # each full snapshot's answer time (none: not answered, or no sync socket)
    snapshot_cpu_s: float
    states: int  # state topics in the last snapshot
    rss_mb: float


def run(kind: str, tree: str, nodes: int, seconds: float, load: float, bodies: Path, tmp: str) -> RelayRun:
    up_feed, up_sync = f"ipc://{tmp}/up.feed", f"ipc://{tmp}/up.sync"
    feed, sync = f"ipc://{tmp}/relay.feed", f"ipc://{tmp}/relay.sync"
    count = Path(tmp) / "sent"
    # This tree: the installed package (python/ holds no compiled _core); an older one by path.
    env = dict(os.environ, PYTHONPATH=tree) if tree else dict(os.environ)
    blaster = subprocess.Popen([sys.executable, "-c", BLASTER, up_feed, up_sync, str(nodes), str(count),
                                str(ROOT / "tests"), str(bodies), str(load)], env=env)
    if kind == "bare zmq.proxy":
        relay = subprocess.Popen([sys.executable, "-c", BARE_PROXY, up_feed, feed], env=env)
    else:
        extra = ["--forwarder", "python"] if kind == "python loop" else []
        relay = subprocess.Popen([sys.executable, "-m", "cuagent.cli", "relay", "--name", "bench-relay", "--connect",
                                  f"{up_feed},{up_sync}", "--feed", feed, "--sync", sync, "--sndhwm", "100000",
                                  "--stale-after-s", "600", "--log-level", "warning", *extra], env=env)
    sink = Sink(feed)
    try:
        time.sleep(6.0)  # imports, the blaster's first rounds, the relay's join
        ps = psutil.Process(relay.pid)
        c0, m0, s0, t0 = ps.cpu_times(), sink.messages(), read_count(count), time.monotonic()
        time.sleep(seconds)
        c1, m1, s1, t1 = ps.cpu_times(), sink.messages(), read_count(count), time.monotonic()
        rss = ps.memory_info().rss
        sync_cpu0 = main_thread_cpu(ps)
        snap, states = ([], 0) if kind == "bare zmq.proxy" else snapshot_times(sync)
        # The sync thread's CPU per snapshot (its housekeeping meanwhile is a few ms).
        snap_cpu = (main_thread_cpu(ps) - sync_cpu0) / len(snap) if snap else float("nan")
        for name, proc in (("relay", relay), ("blaster", blaster)):
            if proc.poll() is not None:
                raise SystemExit(f"{kind}: the {name} exited early ({proc.returncode})")
        dt = t1 - t0
        cpu = ((c1.user - c0.user) + (c1.system - c0.system)) / dt
        delivered = (m1 - m0) / dt
        return RelayRun(offered=(s1 - s0) / dt, delivered=delivered, cpu=cpu,
                        cpu_per_100k=cpu / delivered * 100_000 if delivered else float("nan"),
                        snapshot_s=snap, snapshot_cpu_s=snap_cpu, states=states, rss_mb=rss / 1e6)
    finally:
        sink.close()
        for p in (relay, blaster):
            p.kill()
            p.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old-tree", help="python/ directory of the relay before (with its _core built)")
    ap.add_argument("--nodes", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--load", type=float, default=0.0, help="msg/s offered (0: as many as the blaster can)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--only", action="append", help="run only these relays (repeat): old, native, python loop, bare")
    args = ap.parse_args()
    cases = [("bare zmq.proxy", ""), ("native", ""), ("python loop", "")]
    if args.old_tree:
        cases.append(("old", args.old_tree))
    if args.only:
        cases = [c for c in cases if c[0] in args.only or (c[0] == "bare zmq.proxy" and "bare" in args.only)]
    import pickle

    with tempfile.TemporaryDirectory() as tmp:
        topo, state, sizes = capture_nvml_frames(Path(tmp))
        bodies = Path(tmp) / "bodies.pkl"
        bodies.write_bytes(pickle.dumps((topo, state)))
        print(f"libzmq {zmq.zmq_version()}, {os.cpu_count()} CPUs; {args.nodes} nodes x {len(topo['devices'])} GPUs; "
              f"NVML state message {sizes} bytes (topic, header, body); ipc; load "
              f"{'unpaced' if args.load <= 0 else f'{args.load:,.0f} msg/s'}")
        with Steal() as steal:
            for r in range(args.rounds):
                for kind, path in cases:
                    with tempfile.TemporaryDirectory() as run_tmp:
                        res = run(kind, path, args.nodes, args.seconds, args.load, bodies, run_tmp)
                    snap = (f"snapshot {statistics.median(res['snapshot_s']):.2f} s "
                            f"(min {min(res['snapshot_s']):.2f}; sync thread CPU {res['snapshot_cpu_s']:.2f} s) for "
                            f"{res['states']:,} states" if res["snapshot_s"]
                            else "no snapshot" if kind == "bare zmq.proxy" else "no snapshot answered within 20 s")
                    print(f"round {r + 1} {kind:15s} offered {res['offered']:9,.0f} msg/s, delivered "
                          f"{res['delivered']:9,.0f} msg/s, relay CPU {res['cpu']:6.1%} of a core = "
                          f"{res['cpu_per_100k']:6.1%} per 100k msg/s; {snap}; RSS {res['rss_mb']:.0f} MB")
                    sys.stdout.flush()
        print(steal.summary())


if __name__ == "__main__":
    main()
