"""Subscription-prefix floods (issue 8 B): RSS growth of the agent, of a relay and of the agent
behind that relay while a peer without CURVE sends distinct 200-byte prefixes to the feed, in
one run against the plain sockets the feed used to be (a PUB; an XSUB→XPUB zmq.proxy relay in
front of a PUB), so the figures compare on the same machine.

Each target runs in fresh processes; the flooder is a raw ZMTP peer (tests/hostile_peers.py)
that reconnects whenever it is dropped, until the whole flood was sent or --deadline passed.
A normal subscriber on the same feed counts what it receives after the flood.

    python bench/sub_flood.py [--sizes-mb 10,50] [--tree python] [--parallel N]

--parallel N floods from N connections at once (each its share): every one of them may hold
up to the per-connection bound before the total bound catches up, so growth scales with N.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional, TypedDict

import psutil
import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from hostile_peers import flood  # noqa: E402

PLAIN_PUB = """
import sys, time, zmq
ctx = zmq.Context()
feed = ctx.socket(zmq.PUB)  # the agent's feed before issue 8: PUB, LINGER 0, SNDHWM 1000, heartbeats
for opt, v in ((zmq.LINGER, 0), (zmq.SNDHWM, 1000), (zmq.HEARTBEAT_IVL, 1000), (zmq.HEARTBEAT_TIMEOUT, 3000),
               (zmq.HEARTBEAT_TTL, 3000)):
    feed.setsockopt(opt, v)
feed.bind(sys.argv[1])
while True:
    feed.send_multipart([b"cua1/hb/plain/", b"h", b"b"])
    time.sleep(0.1)
"""
PLAIN_PROXY = """
import sys, zmq
ctx = zmq.Context()
xsub, xpub = ctx.socket(zmq.XSUB), ctx.socket(zmq.XPUB)  # the relay's forwarding before issue 8
xsub.connect(sys.argv[1]); xsub.send(b"\\x01cua1/")
xpub.bind(sys.argv[2])
zmq.proxy(xsub, xpub)
"""


class Growth(TypedDict):
    """One process's RSS over a flood, in MB (after_growth_MB None: it exited)."""
    before_MB: float
    peak_growth_MB: float
    after_growth_MB: Optional[float]
    alive: bool


class CaseResult(TypedDict):
    """One case's flood (what the flooders report, what the listener got) and each process's RSS."""
    case: str
    MB: float
    flood_s: float
    sent_bytes: int
    drops: int
    connects: int
    listener_msgs_after: int
    listener_msgs_during: int
    processes: dict[str, Growth]  # by the case's name for the process, in start order


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Peak(threading.Thread):
    """Samples a process's RSS every 20 ms; ``peak`` is the largest seen."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak: int = self.proc.memory_info().rss  # bytes (psutil has no stubs)
        self._done = threading.Event()
        self.start()

    def run(self) -> None:
        while not self._done.wait(0.02):
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.NoSuchProcess:
                return

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_sync(sync: str, timeout: float = 20.0) -> None:
    """Until the server answers a ping on its sync socket."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(sync)
        sock.send(b"\x81\xa2op\xa4ping")
        ok = sock.poll(500)
        sock.close(0)
        if ok:
            return
    raise SystemExit(f"no answer on {sync}")


def listener(feed: str) -> zmq.Socket[bytes]:
    sub: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"cua1/")
    sub.connect(feed)
    return sub


def received_within(sub: zmq.Socket[bytes], seconds: float) -> int:
    n, deadline = 0, time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not sub.poll(int(left * 1000) + 1):
            return n
        sub.recv_multipart()
        n += 1


def parallel_flood(endpoint: str, total: int, n: int, deadline_s: float) -> dict[str, int]:
    results: list[dict[str, int]] = []
    threads = [threading.Thread(target=lambda i=i: results.append(flood(endpoint, total // n, seed=i + 1,
                                                                         deadline_s=deadline_s)))
               for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {k: sum(r[k] for r in results) for k in ("sent_bytes", "drops", "connects")}


def run_case(name: str, mb: float, env: dict[str, str], deadline_s: float, parallel: int = 1) -> CaseResult:
    """Start the case's processes, flood the front feed, report RSS growth per process."""
    ports = [free_port() for _ in range(4)]
    up_feed, up_sync, front_feed, front_sync = (f"tcp://127.0.0.1:{p}" for p in ports)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    agent_args = ["-m", "cuagent.cli", "run", "--driver", "mock", "--mock-devices", "h100-sxm:idle", "--node", "flood",
                  "--rate-hz", "100", "--publish-interval-ms", "100", "--log-level", "warning"]
    try:
        if name == "agent":
            procs["agent"] = spawn([*agent_args, "--feed", front_feed, "--sync", front_sync], env)
            wait_sync(front_sync)
        elif name == "plain PUB":
            procs["PUB"] = spawn(["-c", PLAIN_PUB, front_feed], env)
        elif name == "relay":
            procs["agent behind"] = spawn([*agent_args, "--feed", up_feed, "--sync", up_sync], env)
            wait_sync(up_sync)
            procs["relay"] = spawn(["-m", "cuagent.cli", "relay", "--name", "r", "--connect", f"{up_feed},{up_sync}",
                                    "--feed", front_feed, "--sync", front_sync, "--log-level", "warning"], env)
            wait_sync(front_sync)
        elif name == "plain proxy":
            procs["PUB behind"] = spawn(["-c", PLAIN_PUB, up_feed], env)
            procs["proxy"] = spawn(["-c", PLAIN_PROXY, up_feed, front_feed], env)
        time.sleep(1.5)  # imports done, first windows published
        sub = listener(front_feed)
        time.sleep(0.5)
        before = {k: psutil.Process(p.pid).memory_info().rss for k, p in procs.items()}
        peaks = {k: Peak(p.pid) for k, p in procs.items()}
        t0 = time.monotonic()
        result = parallel_flood(front_feed, int(mb * 1e6), parallel, deadline_s)
        flood_s = time.monotonic() - t0
        sub_drained = received_within(sub, 0.0)  # what queued during the flood
        time.sleep(2.0)  # let dropped connections end and memory settle
        after_msgs = received_within(sub, 2.0)
        sub.close(0)
        out = CaseResult(case=name, MB=mb, flood_s=flood_s, sent_bytes=result["sent_bytes"], drops=result["drops"],
                         connects=result["connects"], listener_msgs_after=after_msgs,
                         listener_msgs_during=sub_drained, processes={})
        for k, p in procs.items():
            alive = p.poll() is None
            peak = peaks[k].stop()
            now = psutil.Process(p.pid).memory_info().rss if alive else 0
            out["processes"][k] = Growth(before_MB=before[k] / 1e6, peak_growth_MB=(peak - before[k]) / 1e6,
                                         after_growth_MB=(now - before[k]) / 1e6 if alive else None, alive=alive)
        return out
    finally:
        for p in procs.values():
            p.kill()
            p.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes-mb", default="10,50")
    ap.add_argument("--tree", default=str(ROOT / "python"),
                    help="directory holding the cuagent package to run (default: this tree's)")
    ap.add_argument("--cases", default="agent,plain PUB,relay,plain proxy")
    ap.add_argument("--deadline", type=float, default=240.0, help="seconds at most per flood")
    ap.add_argument("--parallel", type=int, default=1, help="connections flooding at once")
    args = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=args.tree)
    print(f"cuagent from {args.tree}; libzmq {zmq.zmq_version()}; {os.cpu_count()} CPUs; "
          f"{args.parallel} flooding connection(s) at a time")
    for mb in (float(x) for x in args.sizes_mb.split(",")):
        for case in args.cases.split(","):
            r = run_case(case, mb, env, args.deadline, args.parallel)
            head = (f"{case:12s} {mb:5.0f} MB flood: sent {r['sent_bytes'] / 1e6:6.1f} MB in {r['flood_s']:5.1f} s, "
                    f"{r['connects']} connection(s), {r['drops']} dropped; listener got {r['listener_msgs_after']} "
                    f"msgs in the 2 s after")
            print(head)
            for k, v in r["processes"].items():
                after = v["after_growth_MB"]
                print(f"    {k:14s} RSS {v['before_MB']:6.0f} MB, peak +{v['peak_growth_MB']:7.1f} MB, "
                      f"after +{after if after is not None else float('nan'):7.1f} MB"
                      f"{'' if v['alive'] else '  (EXITED)'}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
