"""Agent CPU: fraction of one core used by `cuagent run --driver mock` with 8 H100s at 1 kHz
sampling and 10 Hz publish (psutil, after a warm-up). Baseline in the same run: the engine
alone with the same settings and nothing published, so the difference is the feed's cost.

    python bench/agent_cpu.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
DEVICES = ",".join(["h100-sxm:training"] * 8)
ENGINE_ONLY = f"""
import time
from cuagent import Engine, MockDevice
devices = [MockDevice(p, scenario=s) for p, s in (d.split(":") for d in {DEVICES!r}.split(","))]
with Engine(driver="mock", devices=devices, rate_hz=1000, window_ms=100, seed=1):
    time.sleep(1e6)
"""


def cpu_fraction(args: list[str], seconds: float) -> float:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "python"), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL)
    try:
        time.sleep(3.0)  # imports, engine start, first windows
        ps = psutil.Process(proc.pid)
        t0, c0 = time.monotonic(), ps.cpu_times()
        time.sleep(seconds)
        t1, c1 = time.monotonic(), ps.cpu_times()
        if proc.poll() is not None:
            raise SystemExit(f"{args} exited early with {proc.returncode}")
        return ((c1.user - c0.user) + (c1.system - c0.system)) / (t1 - t0)
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        agent = cpu_fraction([sys.executable, "-m", "cuagent.cli", "run", "--driver", "mock", "--mock-devices", DEVICES,
                              "--node", "cpu", "--feed", f"ipc://{tmp}/f", "--sync", f"ipc://{tmp}/s", "--rate-hz", "1000",
                              "--publish-interval-ms", "100", "--log-level", "warning"], a.seconds)
    engine = cpu_fraction([sys.executable, "-c", ENGINE_ONLY], a.seconds)
    print("cuagent run --driver mock, 8 x H100, 1 kHz sampling, 10 Hz publish:")
    print(f"  agent {agent * 100:5.2f}% of one core   engine alone {engine * 100:5.2f}%   feed's share {max(agent - engine, 0) * 100:5.2f}%"
          f"   ratio agent/engine {agent / engine if engine else float('nan'):4.2f}  (target agent <= 5%)")


if __name__ == "__main__":
    main()
