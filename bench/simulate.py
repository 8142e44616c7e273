"""Placement simulator: the full Alibaba 2023 pod stream (6,203 GPU pods over 149 days) through
every policy under both slowdown models, on one core. Target: <= 2 minutes (issue 13).

Baseline in the same run: P0 alone (whole GPUs, the cheapest policy: nothing shares, so no
pod needs minute-by-minute integration) — the ratio says what the sharing policies, their
slowdown models and P2's feed and scorer cost on top of replaying the stream.

    python bench/simulate.py [--traces DIR] [--gpus 70]

``--traces``: the folder of the public traces (default ``$CUAGENT_TRACES``, else
``../shared/data/traces`` beside the repository).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import Steal  # noqa: E402

from cuagent.simulate import policies, slowdown, study  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("CUAGENT_TRACES") or str(Path(__file__).resolve().parents[2] / "shared" / "data" / "traces")
    ap.add_argument("--traces", default=default)
    ap.add_argument("--gpus", type=int, default=70, help="cluster size (default 70: the stream's peak need under P0)")
    args = ap.parse_args()
    d = Path(args.traces)
    if not (d / "alibaba-gpu-2023" / "openb_pod_list_default.csv").is_file():
        sys.exit(f"bench/simulate.py: no traces under {d} (give --traces DIR or set CUAGENT_TRACES)")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, as the target says
    opts = study.Options()
    t = time.perf_counter()
    inp = study.load(str(d / "alibaba-gpu-2023/openb_pod_list_default.csv"),
                     str(d / "alibaba-genai-2026/pod_gpu_duty_cycle_anon.csv.gz"),
                     str(d / "alibaba-genai-2026/pod_gpu_memory_used_bytes_anon.csv.gz"),
                     str(d / "utilization_cdfs.csv"), str(d / "gavel/simulation_throughputs.json"),
                     str(d / "alibaba-gpu-2023/openb_node_list_gpu_node.csv"), None, opts)
    load_s = time.perf_counter() - t
    print(f"{len(inp.pods)} GPU pods, {args.gpus} H100s; traces read and demand profiles built in {load_s:.1f} s")
    models = [slowdown.Model("analytic"), slowdown.Model("measured")]
    with Steal() as steal:
        t = time.perf_counter()
        base = study.simulate(inp, "P0", models[0], args.gpus, opts)
        base_s = time.perf_counter() - t
        print(f"baseline P0 alone: {base_s:.1f} s")
        total = 0.0
        for m in models:
            for name in policies.POLICIES:
                t = time.perf_counter()
                r = study.simulate(inp, name, m, args.gpus, opts)
                dt = time.perf_counter() - t
                total += dt
                extra = f", {r.feed['windows']} feed windows, {r.scorer_calls} Scorer.rank calls" if r.feed else ""
                print(f"  {name:>5} {m.key:<12} {dt:6.1f} s  complete={r.complete}{extra}")
    runs = len(models) * len(policies.POLICIES)
    print(f"all policies × both models ({runs} simulations): {total:.1f} s = {total / base_s:.1f}× P0 alone | "
          f"target <= 120 s: {'met' if total + load_s <= 120 else 'NOT met'} (with reading the traces: {total + load_s:.1f} s)")
    print(steal.summary())


if __name__ == "__main__":
    main()
