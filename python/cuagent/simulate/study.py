"""The whole measurement: load the traces, run every policy on the same stream, find each
policy's fewest GPUs under both slowdown bounds, and gather the figures (JSON-ready).

1. **Reference**: P0 on the trace's own fleet size (the node list's GPUs, as H100s). Its p95
   queueing delay (plus a tolerance) is the wait every policy must keep; its slowdown is 1,
   so the slowdown target is 1 plus a tolerance.
2. **Fewest GPUs** per policy and bound (analytic with β = 0, optimistic; measured,
   pessimistic): the smallest cluster of H100 nodes meeting both targets.
3. **At one size for all** (P0's fewest): every policy and model, for figures that need the
   same cluster — idle SM-hours reclaimed, slowdown distributions, which limit binds.
4. **Bandwidth sweep**: each sharing policy at its own fewest size under each β.

P0, P3 (MIG isolates) and the fluid bound slow nothing down in either model, so they run once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..scheduling import Scorer
from . import cluster as cluster_mod
from . import demand, metrics, policies, slowdown, traces
from .engine import CLASSES, Limits, Result, Simulation
from .feed import Feed

MODEL_FREE = ("P0", "P3", "fluid")


@dataclass
class Inputs:
    pods: traces.Pods
    profiles: demand.Profiles
    factors: Optional[np.ndarray]
    pair_jobs: int
    topology: Any
    reference_gpus: int
    sources: dict[str, str]


@dataclass
class Options:
    seed: int = 1
    gpus_per_node: int = 8
    policies: Sequence[str] = policies.POLICIES
    bandwidths: Sequence[float] = (0.0, 0.25, 0.5)
    slowdown_tolerance: float = 0.05
    wait_tolerance_s: float = 0.0
    horizon_s: float = 300.0
    sizing_percentile: float = 95.0
    cdf_clusters: Sequence[str] = demand.DEFAULT_CDF_CLUSTERS
    gpus: Optional[int] = None  # evaluate at this size only (no search)
    pooled_target: bool = False  # one p95 over all pods instead of one per pod class
    scorer_factory: Callable[..., Scorer] = field(default=Scorer)


def load(pods_path: str, duty_path: str, memory_path: str, cdfs_path: str, pairs_path: Optional[str],
         nodes_path: Optional[str], reference_gpus: Optional[int], opts: Options, limit: Optional[int] = None) -> Inputs:
    topo = cluster_mod.h100_topology()
    pods = traces.read_pods(pods_path, limit)
    duty = traces.read_series(duty_path, value="value")
    memory = traces.read_series(memory_path, value="value")
    cdfs = traces.read_cdfs(cdfs_path)
    pairs = traces.read_pair_throughputs(pairs_path) if pairs_path else None
    if reference_gpus is None:
        if nodes_path is None:
            raise ValueError("give the fleet size: a node list (--nodes) or --reference-gpus")
        reference_gpus = traces.read_node_gpus(nodes_path)
    if reference_gpus < int(pods.gpus.max()):
        raise ValueError(f"reference fleet of {reference_gpus} GPUs is smaller than the largest pod "
                         f"({int(pods.gpus.max())} GPUs)")
    prof = demand.build(pods, opts.seed, duty, memory, cdfs, pairs, topo.units, topo.memory_bytes,
                        opts.cdf_clusters, opts.sizing_percentile)
    factors = slowdown.pair_factors(pairs) if pairs is not None else None
    sources = {"pods": str(pods_path), "duty_cycle": str(duty_path), "memory": str(memory_path),
               "cdfs": str(cdfs_path), "pairs": str(pairs_path or ""), "nodes": str(nodes_path or "")}
    return Inputs(pods, prof, factors, len(pairs.jobs) if pairs else 0, topo, reference_gpus,
                  {k: Path(v).name if v else "" for k, v in sources.items()})


def simulate(inp: Inputs, policy: str, model: slowdown.Model, gpus: int, opts: Options,
             limits: Optional[Limits] = None, track_peak: bool = False) -> Result:
    """One run of ``policy`` on ``gpus`` H100s."""
    topo = inp.topology
    cl = cluster_mod.Cluster(gpus, opts.gpus_per_node, topo.units, topo.memory_bytes)
    feed = Feed(cl, topo, opts.horizon_s, opts.scorer_factory) if policy in ("P2", "P2f") else None
    pol = policies.make(policy, feed)
    return Simulation(inp.pods, inp.profiles, pol, cl, model, inp.factors, feed, limits, track_peak).run()


def models(inp: Inputs, opts: Options) -> list[slowdown.Model]:
    out = [slowdown.Model("analytic", 0.0)]
    if inp.factors is not None:
        out.append(slowdown.Model("measured"))
    return out


def assumptions(inp: Inputs, opts: Options, target: metrics.Target) -> list[str]:
    p = inp.pods
    return [
        f"Pods: {len(p)} GPU pods that ran ({', '.join(f'{v} {k}' for k, v in p.skipped.items() if v)} left out); "
        f"{int(p.ls.sum())} latency-sensitive (QoS LS/Guaranteed: fixed lifetime), {int((~p.ls).sum())} batch "
        "(fixed work = observed run time).",
        f"Cluster: H100 SXM (132 SMs, measured GPC layout, 80 GB) in nodes of {opts.gpus_per_node}; every trace "
        "pod runs on an H100 whatever GPU it asked for (gpu_spec ignored); host CPU and memory not modelled.",
        "Requests: gpu_milli is the share of the GPU's memory a pod reserves (a hard limit); a pod of 1000 "
        "(and every multi-GPU pod) takes whole GPUs.",
        "SM demand: latency-sensitive pods replay a GenAI pod's duty cycle for when they are busy and take the "
        "Acme sm_active of busy GPUs at the same rank for how many SMs; batch pods draw one sm_active level "
        f"(clusters {', '.join(opts.cdf_clusters)}). Never nvidia-smi utilisation.",
        f"Sizing a scheduler is told (MIG profile, SM share, scorer's units): the pod's p{opts.sizing_percentile:g} "
        "SM demand, as measured on an earlier run.",
        "Time: demands change on the traces' one-minute grid; interference inside a minute is not seen.",
        f"P2's feed: one window per candidate GPU at each decision, scorer horizon {opts.horizon_s:g} s, "
        "activity spread over every SM (time slicing).",
        "MIG: instances are created and destroyed at no cost as pods come and go; MIG isolates memory bandwidth.",
        f"Target: {target.describe()} — P0 on {inp.reference_gpus} GPUs, plus {opts.wait_tolerance_s:g} s"
        + ("" if opts.pooled_target else "; per class, as a p95 over all pods lets a policy starve the few "
           "multi-GPU pods") + ". More GPUs are assumed never to hurt.",
        f"Seed {opts.seed}: same seed, same inputs -> same figures.",
    ]


#: Percentiles at which slowdown distributions are kept: every 1 % to 90, then every 0.1 %.
SLOWDOWN_PERCENTILES = [float(q) for q in range(90)] + [q / 10 for q in range(900, 1001)]


def _slowdown_cdf(r: Result) -> list[Optional[float]]:
    x = r.slowdown[np.isfinite(r.slowdown)]
    if not x.size:
        return []
    return [float(v) for v in np.percentile(x, SLOWDOWN_PERCENTILES, method="inverted_cdf")]


def run(inp: Inputs, opts: Options, progress: Callable[[str], None] = lambda _s: None) -> dict[str, Any]:
    """Everything the report, the plots and the JSON show."""
    for name in opts.policies:
        if name not in policies.POLICIES:
            raise ValueError(f"policy {name!r}: expected one of {', '.join(policies.POLICIES)}")
    if opts.horizon_s <= 0:
        raise ValueError(f"scorer horizon must be > 0 s, got {opts.horizon_s}")
    base = slowdown.Model("analytic", 0.0)
    progress(f"reference: P0 on {inp.reference_gpus} GPUs")
    ref = simulate(inp, "P0", base, inp.reference_gpus, opts, track_peak=True)
    if not ref.complete:
        raise ValueError(f"P0 cannot run the stream on the reference fleet of {inp.reference_gpus} GPUs: "
                         f"{ref.stop_reason}")
    if opts.pooled_target:
        waits = ((metrics.pct(ref.wait, 95) or 0.0) + opts.wait_tolerance_s,) * len(CLASSES)
    else:
        ref_wait = metrics.by_class(ref, ref.wait)
        waits = tuple((ref_wait.get(c) or 0.0) + opts.wait_tolerance_s for c in CLASSES)
    target = metrics.Target(waits, 1.0 + opts.slowdown_tolerance, opts.pooled_target)
    limits = Limits(target.wait_s, target.slowdown, 0.05, opts.pooled_target)
    mods = models(inp, opts)
    floor = int(inp.pods.gpus.max())
    cache: dict[tuple[str, str, int, bool], Result] = {}

    def evaluate(policy: str, model: slowdown.Model, gpus: int, limited: bool = True) -> Result:
        key_model = base.key if policy in MODEL_FREE else model.key
        key = (policy, key_model, gpus, limited)
        full = (policy, key_model, gpus, False)
        if full in cache:
            return cache[full]
        if key not in cache:
            r = simulate(inp, policy, base if policy in MODEL_FREE else model, gpus, opts, limits if limited else None)
            cache[key] = r
            if r.complete:
                cache[full] = r
        return cache[key]

    out: dict[str, Any] = {
        "assumptions": assumptions(inp, opts, target),
        "inputs": {"pods": len(inp.pods), "skipped": inp.pods.skipped, "latency_sensitive": int(inp.pods.ls.sum()),
                   "shared_pods": int((inp.pods.milli < 1000).sum()), "multi_gpu_pods": int((inp.pods.gpus > 1).sum()),
                   "genai_series": len(set(s for s in inp.profiles.source if s != "cdf")),
                   "gavel_job_types": inp.pair_jobs, "sources": inp.sources, "seed": opts.seed,
                   "reference_gpus": inp.reference_gpus, "gpus_per_node": opts.gpus_per_node,
                   "sm_units": inp.topology.units, "memory_bytes": inp.topology.memory_bytes},
        "target": {"p95_wait_s": dict(zip(CLASSES, target.wait_s)), "p95_slowdown": target.slowdown,
                   "text": target.describe()},
        "models": {m.key: m.label for m in mods},
        "reference": metrics.summary(ref),
        "fewest_gpus": {},
        "searches": {},
    }
    order = [p for p in policies.POLICIES if p in opts.policies]
    fewest: dict[str, dict[str, Optional[int]]] = {}
    if opts.gpus is None:
        hint_p0 = max(floor, ref.peak_occupied)
        for m in mods:
            fewest[m.key] = {}
            out["searches"][m.key] = {}
            for name in order:
                if name in MODEL_FREE and m.key != base.key:
                    fewest[m.key][name] = fewest[base.key].get(name)
                    continue
                hint = hint_p0 if name == "P0" else (fewest[base.key].get("P0") or hint_p0)
                def at_size(g: int, name: str = name, m: slowdown.Model = m) -> Result:
                    return evaluate(name, m, g)
                n, tried = metrics.fewest_gpus(at_size, target, int(hint), floor, inp.reference_gpus, progress)
                fewest[m.key][name] = n
                if n is not None:
                    out.setdefault("at_fewest", {}).setdefault(m.key, {})[name] = metrics.summary(tried[n])
                out["searches"][m.key][name] = {str(g): {"met": target.met(r), "complete": r.complete,
                                                         "p95_wait_s": metrics.pct(r.wait, 95),
                                                         "p95_wait_s_by_class": metrics.by_class(r, r.wait),
                                                         "p95_slowdown": metrics.pct(r.slowdown, 95),
                                                         "stop_reason": r.stop_reason}
                                                for g, r in sorted(tried.items())}
        out["fewest_gpus"] = fewest
        common = fewest[base.key].get("P0") or inp.reference_gpus
    else:
        common = opts.gpus
    out["common_gpus"] = common
    # Every policy and model on one cluster size, run to the end (no early stop).
    at: dict[str, dict[str, Any]] = {}
    cdfs: dict[str, dict[str, list[Optional[float]]]] = {}
    for m in mods:
        at[m.key], cdfs[m.key] = {}, {}
        for name in order:
            progress(f"{name} {m.key} on {common} GPUs (all policies, one size)")
            r = evaluate(name, m, common, limited=False)
            at[m.key][name] = metrics.summary(r)
            cdfs[m.key][name] = _slowdown_cdf(r)
    out["at_common_size"] = at
    out["slowdown_cdf_at_common_size"] = cdfs
    out["slowdown_cdf_percentiles"] = SLOWDOWN_PERCENTILES
    p0 = at[base.key].get("P0")
    if p0 is not None and p0["idle_sm_hours"] is not None:
        out["idle_sm_hours_reclaimed"] = {
            name: (p0["idle_sm_hours"] - s["idle_sm_hours"]) if s["idle_sm_hours"] is not None else None
            for name, s in at[base.key].items()}
    # Each sharing policy at its own fewest (analytic) size under every β and the measured model.
    sweep: dict[str, dict[str, Any]] = {}
    for name in order:
        if name in MODEL_FREE:
            continue
        size = (fewest.get(base.key, {}).get(name) if opts.gpus is None else opts.gpus) or common
        sweep[name] = {"gpus": size}
        for beta in opts.bandwidths:
            m = slowdown.Model("analytic", float(beta))
            progress(f"{name} β={beta:g} on {size} GPUs")
            r = evaluate(name, m, size, limited=False)
            sweep[name][m.key] = {"p95_slowdown": metrics.pct(r.slowdown, 95), "p99_slowdown": metrics.pct(r.slowdown, 99),
                                  "p95_wait_s": metrics.pct(r.wait, 95), "mean_slowdown": metrics.summary(r)["slowdown"]["mean"]}
        if inp.factors is not None:
            r = evaluate(name, slowdown.Model("measured"), size, limited=False)
            sweep[name]["measured"] = {"p95_slowdown": metrics.pct(r.slowdown, 95),
                                       "p99_slowdown": metrics.pct(r.slowdown, 99),
                                       "p95_wait_s": metrics.pct(r.wait, 95),
                                       "mean_slowdown": metrics.summary(r)["slowdown"]["mean"]}
    out["bandwidth_sweep"] = sweep
    runs = {id(r): r for r in cache.values()}  # a complete run is cached under two keys
    out["simulations"] = len(runs) + 1  # and the reference
    out["simulated_seconds"] = float(sum(r.wall_s for r in runs.values()) + ref.wall_s)
    return out


def check_finite(x: Any) -> Any:
    """JSON has no NaN or infinity: those become null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): check_finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [check_finite(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return check_finite(x.item())
    return x
