"""Agent CPU: fraction of one core used by `cuagent run --driver mock` with 8 H100s at 1 kHz
sampling and 10 Hz publish (psutil, after a warm-up).

Baselines in the same run, so the figure splits into its causes:
  - floor: a C loop that does nothing but sleep to 1 kHz absolute deadlines (what the
    machine charges for 1000 timer wake-ups a second; large in a VM);
  - engine alone: the same engine with nothing published (the difference is the feed);
  - the agent's main thread: the Python publisher (the feed's share, measured directly);
  - scenarios `idle` and `training`: the difference is the mock's own simulation (a
    discrete-event model: ~64k block events per simulated second per busy H100);
  - with --old-tree, an older cuagent's agent (its python/ directory, with its _core built).

    python bench/agent_cpu.py [--seconds 10] [--old-tree DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path


from machine import Steal, process_cpu, thread_cpu

ROOT = Path(__file__).resolve().parents[1]
ENGINE_ONLY = """
import sys, time
from cuagent import Engine, MockDevice
devices = [MockDevice("h100-sxm", scenario=sys.argv[1]) for _ in range(8)]
with Engine(driver="mock", devices=devices, rate_hz=1000, window_ms=100, seed=1):
    time.sleep(1e6)
"""
FLOOR_C = r"""
#include <sys/prctl.h>
#include <time.h>
int main(void) {  /* sleep to 1 kHz absolute deadlines, with the sampler's timer slack */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
    for (;;) {
        t.tv_nsec += 1000000; if (t.tv_nsec >= 1000000000) { t.tv_nsec -= 1000000000; t.tv_sec++; }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, 0);
    }
}
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--old-tree", action="append", default=[],
                    help="python/ directory of an older cuagent (with its _core built); repeatable")
    a = ap.parse_args()
    trees: list[tuple[str, dict[str, str] | None]] = [("this tree", None)]
    for k, tree in enumerate(a.old_tree):
        trees.append((f"old tree {k + 1}" if len(a.old_tree) > 1 else "old tree", dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (tree, os.environ.get("PYTHONPATH")) if p))))
    with tempfile.TemporaryDirectory() as tmp, Steal() as steal:
        floor_bin = Path(tmp) / "floor"
        (Path(tmp) / "floor.c").write_text(FLOOR_C)
        subprocess.run(["cc", "-O2", "-o", str(floor_bin), str(Path(tmp) / "floor.c")], check=True)
        floor = process_cpu([str(floor_bin)], a.seconds)
        rows = []
        for scenario in ("idle", "training"):
            devices = ",".join([f"h100-sxm:{scenario}"] * 8)
            engine = process_cpu([sys.executable, "-c", ENGINE_ONLY, scenario], a.seconds)
            for tree, env in trees:
                agent, threads = thread_cpu([sys.executable, "-m", "cuagent.cli", "run", "--driver", "mock",
                                             "--mock-devices", devices, "--node", "cpu", "--feed", f"ipc://{tmp}/f",
                                             "--sync", f"ipc://{tmp}/s", "--rate-hz", "1000",
                                             "--publish-interval-ms", "100", "--log-level", "warning"], a.seconds, env)
                rows.append((scenario, tree, agent, threads["main"][0], engine))
    print("cuagent run --driver mock, 8 x H100, 1 kHz sampling, 10 Hz publish (% of one core):")
    for k, tree in enumerate(a.old_tree):
        print(f"  old tree{f' {k + 1}' if len(a.old_tree) > 1 else ''}: {tree}")
    print(f"  floor: bare C loop of 1000 timer wake-ups/s   {floor * 100:5.2f}%")
    for scenario, tree, agent, main_thread, engine in rows:
        print(f"  {scenario:<8} {tree:<10} agent {agent * 100:5.2f}%   publisher (main thread) {main_thread * 100:5.2f}%   "
              f"engine alone {engine * 100:5.2f}%   agent minus floor {(agent - floor) * 100:5.2f}%"
              f"   ratio agent/floor {agent / floor if floor else float('nan'):4.1f}  (target agent <= 5%)")
    print(steal.summary())


if __name__ == "__main__":
    main()
