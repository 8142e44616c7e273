"""End-to-end latency: end of a sampled window (header ts) -> the client holds the decoded
state, p50/p99, for `cuagent run --driver mock` with 8 H100s publishing at 100 Hz on loopback.
Baseline in the same run: the same agent with a plain fixed publish timer (not aligned to the
sampler's window ends), which is what a naive agent does.

    python bench/feed_latency.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
from cuagent.client import Client  # noqa: E402
from machine import Steal  # noqa: E402


def measure(align: bool, seconds: float, tmp: str) -> np.ndarray:
    feed, sync = f"ipc://{tmp}/lat-{align}.feed", f"ipc://{tmp}/lat-{align}.sync"
    env = dict(os.environ)
    args = [sys.executable, "-m", "cuagent.cli", "run", "--driver", "mock", "--mock-devices", ",".join(["h100-sxm:training"] * 8),
            "--node", "lat", "--feed", feed, "--sync", sync, "--rate-hz", "1000", "--publish-interval-ms", "10",
            "--log-level", "warning"]
    if not align:
        args += ["--publish-timer"]
    proc = subprocess.Popen(args, env=env)
    lat: list[int] = []
    try:
        client = Client([f"{feed},{sync}"])
        client.on_update(lambda u: lat.append(time.time_ns() - u.header.ts) if u.kind == "state" and client.ready else None)
        if not client.wait_ready(30):
            raise SystemExit("agent did not come up")
        lat.clear()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            client.poll(0.05)
        client.close()
    finally:
        proc.terminate()
        proc.wait(10)
    return np.array(lat[100:], dtype=np.float64) / 1e6  # ms, first 1 s dropped as warm-up


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Steal() as steal:
        ours = measure(True, a.seconds, tmp)
        base = measure(False, a.seconds, tmp)
    p = lambda x, q: float(np.percentile(x, q))  # noqa: E731
    print(f"window end -> decoded at client, 8 mock H100, 100 Hz publish, {len(ours)} + {len(base)} messages:")
    print(f"  p50  cuagent {p(ours, 50):6.2f} ms   fixed-timer baseline {p(base, 50):6.2f} ms   ratio {p(base, 50) / p(ours, 50):5.1f}x")
    print(f"  p99  cuagent {p(ours, 99):6.2f} ms   fixed-timer baseline {p(base, 99):6.2f} ms   ratio {p(base, 99) / p(ours, 99):5.1f}x  (target p99 <= 2 ms)")
    print(steal.summary())


if __name__ == "__main__":
    main()
