"""Hostile sync requests (issue 8 A): a seeded stream of hand-built requests (tests/hostile_peers.py:
nesting at each limit, lengths beyond the data, big containers, ext types, invalid UTF-8,
int keys, truncations, oversize frames) against a real agent and a real relay. Counts the
requests tried, those answered, those left unanswered, the hangs (no ping answered within 5 s
after a request) and the crashes (the process exited; it is restarted and the run goes on).

    python bench/sync_fuzz.py [--requests 500] [--tree python]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import hostile_peers as h  # noqa: E402

PING = b"\x81\xa2op\xa4ping"


def request_maker(rng: random.Random) -> Callable[[], bytes]:
    shapes: list[Callable[[], bytes]] = [
        lambda: h.ISSUE_8_REQUEST,
        lambda: h.nested(rng.choice([8, 9, 100, 990, 1000, 1020, 1023, 1024, 5000, rng.randint(2, 5000)]),
                         rng.choice(["array", "map"]), rng.choice(["op", "beside"])),
        lambda: h.declared_beyond_data(rng.choice(["array", "map", "str", "bin", "ext"]), rng.randint(2, 2**32 - 1)),
        lambda: h.big_container(rng.choice(["array", "map"]), rng.randint(1, 6000)),
        lambda: h.ext_value(rng.randint(-128, 127), rng.randbytes(rng.randint(0, 20)), rng.choice(["op", "prefix"])),
        lambda: h.invalid_utf8(rng.choice(["op", "key", "prefix"]), rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80"])),
        lambda: h.non_string_keys(rng.randint(1, 3000)),
        lambda: h.big_container("map", rng.randint(1, 50))[: rng.randint(0, 40)],
        lambda: rng.randbytes(rng.randint(1, 300)),
        lambda: h.oversize(rng.randint(64 * 1024 + 1, 200_000)),
    ]
    return lambda: rng.choice(shapes)()


class Server:
    def __init__(self, kind: str, tmp: str, env: dict[str, str]) -> None:
        self.kind, self.tmp, self.env = kind, tmp, env
        self.procs: list[subprocess.Popen[bytes]] = []
        self.sync = ""
        self.start()

    def start(self) -> None:
        self.stop()
        t = self.tmp
        agent = [sys.executable, "-m", "cuagent.cli", "run", "--driver", "mock", "--mock-devices", "h100-sxm:idle",
                 "--node", "fz", "--rate-hz", "100", "--feed", f"ipc://{t}/a.feed", "--sync", f"ipc://{t}/a.sync",
                 "--log-level", "error"]
        self.procs = [subprocess.Popen(agent, env=self.env, stderr=subprocess.DEVNULL)]
        self.sync = f"ipc://{t}/a.sync"
        if self.kind == "relay":
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "cuagent.cli", "relay", "--name", "rz", "--connect", f"ipc://{t}/a.feed,ipc://{t}/a.sync",
                 "--feed", f"ipc://{t}/r.feed", "--sync", f"ipc://{t}/r.sync", "--log-level", "error"],
                env=self.env, stderr=subprocess.DEVNULL))
            self.sync = f"ipc://{t}/r.sync"
        deadline = time.monotonic() + 30
        while not self.ping(0.5):
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.kind} never answered")

    def stop(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait(10)

    def alive(self) -> bool:
        return self.procs[-1].poll() is None

    def ping(self, timeout: float) -> bool:
        sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.sync)
        sock.send(PING)
        ok = bool(sock.poll(int(timeout * 1000)))
        sock.close(0)
        return ok


def fuzz(kind: str, n: int, seed: int, env: dict[str, str]) -> dict[str, int]:
    make = request_maker(random.Random(seed))
    counts = {"tried": 0, "answered": 0, "oversize_unanswered": 0, "unanswered": 0, "hangs": 0, "crashes": 0}
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(kind, tmp, env)
        try:
            for _ in range(n):
                raw = make()
                counts["tried"] += 1
                sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
                sock.setsockopt(zmq.LINGER, 0)
                sock.connect(server.sync)
                sock.send(raw)
                small = len(raw) <= 64 * 1024
                answered = bool(sock.poll(2000 if small else 200))
                sock.close(0)
                counts["answered" if answered else "unanswered" if small else "oversize_unanswered"] += 1
                if not server.alive():
                    counts["crashes"] += 1
                    server.start()
                elif not server.ping(5.0):
                    counts["hangs"] += 1
                    server.start()
        finally:
            server.stop()
    return counts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--tree", default=str(ROOT / "python"), help="directory holding the cuagent package to run")
    args = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=args.tree)
    print(f"cuagent from {args.tree}; seed {args.seed}")
    for kind in ("agent", "relay"):
        c = fuzz(kind, args.requests, args.seed, env)
        print(f"{kind:6s}: {c['tried']} requests tried, {c['answered']} answered, {c['unanswered']} unanswered within "
              f"64 KiB, {c['oversize_unanswered']} oversize unanswered (libzmq drops the peer), {c['hangs']} hangs, "
              f"{c['crashes']} crashes")


if __name__ == "__main__":
    main()
