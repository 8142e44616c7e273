"""``cuagent simulate``: the placement study on trace files given as arguments.

    cuagent simulate --pods openb_pod_list_default.csv --nodes openb_node_list_gpu_node.csv \\
        --duty pod_gpu_duty_cycle_anon.csv.gz --memory pod_gpu_memory_used_bytes_anon.csv.gz \\
        --cdfs utilization_cdfs.csv --pairs simulation_throughputs.json --out results/

Prints the assumptions and the table; with ``--out`` also writes ``results.json`` (every
figure), ``table.md`` and the plots (PNG + SVG, needs the ``sim`` extra: matplotlib).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..options import Option
from . import policies
from .demand import DEFAULT_CDF_CLUSTERS

if TYPE_CHECKING:
    from . import study


def _floats(text: str, what: str, low: float = 0.0) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a comma-separated list of numbers") from None
    if not vals or any(not math.isfinite(v) or v < low for v in vals):
        raise ValueError(f"{what}: {text!r}: each value must be a number >= {low:g}")
    return vals


# The numeric settings, each with its range (shown by --help, checked at parse time).
LIMIT = Option("limit", int, None, "read only the first N pod rows", min=1, max=10**9, metavar="N")
REFERENCE_GPUS = Option("reference_gpus", int, None, "reference fleet size instead of --nodes", min=1, max=10**7,
                        metavar="N")
SEED = Option("seed", int, 1, "seed of the demand draws", min=0, max=2**64 - 1)
GPUS_PER_NODE = Option("gpus_per_node", int, 8, "GPUs per simulated node", min=1, max=1024)
GPUS = Option("gpus", int, None, "run every policy on N GPUs instead of searching", min=1, max=10**7, metavar="N")
SLOWDOWN_TOLERANCE = Option("slowdown_tolerance", float, 0.05, "target p95 slowdown is 1 + this", min=0.0,
                            max=100.0)
WAIT_TOLERANCE_S = Option("wait_tolerance_s", float, 0.0, "target p95 wait is P0's on the reference fleet + this",
                          min=0.0, max=10**7, unit="s")
HORIZON_S = Option("horizon_s", float, 300.0, "P2 scorer horizon", min=0.0, min_open=True, max=10**7, unit="s")
SIZING_PERCENTILE = Option("sizing_percentile", float, 95.0, "the SM demand percentile a scheduler sizes by",
                           min=0.0, min_open=True, max=100.0)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("simulate", help="placement policies on real cluster traces: GPUs needed, slowdowns",
                       description="Discrete-event simulation of a cluster of H100s driven by a pod trace: "
                       "whole GPUs (P0), packing by request (P1), packing with the cuagent scorer as prioritize "
                       "(P2) and as filter (P2f), MIG right-sizing (P3), SM shares (P4) and the fluid bound, under "
                       "an analytic and a measured slowdown model. Trace files are arguments; nothing is read "
                       "from elsewhere.")
    t = p.add_argument_group("traces")
    t.add_argument("--pods", required=True, metavar="CSV", help="Alibaba openb_pod_list CSV (the pod stream)")
    t.add_argument("--nodes", metavar="CSV", help="node list whose GPU count is the reference fleet")
    REFERENCE_GPUS.add_to(t)
    t.add_argument("--duty", required=True, metavar="CSV[.gz]", help="GenAI per-pod GPU duty cycle series")
    t.add_argument("--memory", required=True, metavar="CSV[.gz]", help="GenAI per-pod GPU memory used series")
    t.add_argument("--cdfs", required=True, metavar="CSV", help="utilisation CDFs (cluster,metric,value_pct,cdf_pct)")
    t.add_argument("--pairs", metavar="JSON", help="Gavel simulation_throughputs.json (measured slowdown model)")
    LIMIT.add_to(t)
    m = p.add_argument_group("model")
    m.add_argument("--policies", default=",".join(policies.POLICIES), help="comma-separated (default all)")
    SEED.add_to(m, default=SEED.default)
    GPUS_PER_NODE.add_to(m, default=GPUS_PER_NODE.default)
    GPUS.add_to(m)
    m.add_argument("--bandwidth", default="0,0.25,0.5", metavar="B,...",
                   help="memory-bandwidth terms β of the analytic model to sweep (default 0,0.25,0.5)")
    SLOWDOWN_TOLERANCE.add_to(m, default=SLOWDOWN_TOLERANCE.default)
    WAIT_TOLERANCE_S.add_to(m, default=WAIT_TOLERANCE_S.default)
    m.add_argument("--pooled-target", action="store_true",
                   help="one p95 over all pods (lets a policy starve the few multi-GPU pods) instead of one per "
                   "pod class (shared, whole, multi-GPU)")
    HORIZON_S.add_to(m, default=HORIZON_S.default)
    SIZING_PERCENTILE.add_to(m, default=SIZING_PERCENTILE.default)
    m.add_argument("--cdf-clusters", default=",".join(DEFAULT_CDF_CLUSTERS),
                   help="clusters of the CDFs whose sm_active and fb_used give SM demand and memory")
    o = p.add_argument_group("output")
    o.add_argument("--out", metavar="DIR", help="write results.json, table.md and plots here")
    o.add_argument("--no-plots", action="store_true", help="with --out: no plots (no matplotlib needed)")
    o.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run_cli)
    return p


def options(args: argparse.Namespace) -> "study.Options":
    from . import study

    names = tuple(n.strip() for n in args.policies.split(",") if n.strip())
    bad = [n for n in names if n not in policies.POLICIES]
    if not names or bad:
        raise ValueError(f"--policies: {args.policies!r}: each must be one of {', '.join(policies.POLICIES)}")
    clusters = tuple(c.strip() for c in args.cdf_clusters.split(",") if c.strip())
    if not clusters:
        raise ValueError("--cdf-clusters: give at least one cluster")
    return study.Options(seed=args.seed, gpus_per_node=args.gpus_per_node, policies=names,
                         bandwidths=_floats(args.bandwidth, "--bandwidth"),
                         slowdown_tolerance=args.slowdown_tolerance, wait_tolerance_s=args.wait_tolerance_s,
                         horizon_s=args.horizon_s, sizing_percentile=args.sizing_percentile,
                         cdf_clusters=clusters, gpus=args.gpus, pooled_target=args.pooled_target)


def run_cli(args: argparse.Namespace) -> int:
    from . import report, study

    opts = options(args)
    t0 = time.perf_counter()

    def progress(line: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - t0:6.1f} s] {line}", file=sys.stderr, flush=True)

    inp = study.load(args.pods, args.duty, args.memory, args.cdfs, args.pairs, args.nodes, args.reference_gpus, opts,
                     args.limit)
    res = study.check_finite(study.run(inp, opts, progress))
    print(report.text(res))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
        (out / "table.md").write_text(report.table(res) + "\n")
        if not args.no_plots:
            from . import plots

            plots.draw(res, out)
        progress(f"wrote {out}")
    return 0
