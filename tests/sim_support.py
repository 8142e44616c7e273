"""Helpers for the simulator tests: pod streams written by hand (constant or scripted SM
demand) and the paths of the trace excerpts in ``data/sim`` (see its README for sources)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from cuagent.simulate import cluster, demand, engine, policies, slowdown, traces
from cuagent.simulate.feed import Feed

DATA = Path(__file__).resolve().parent / "data" / "sim"
PODS = DATA / "openb_pod_list_excerpt.csv"
NODES = DATA / "openb_node_list_excerpt.csv"
DUTY = DATA / "genai_duty_excerpt.csv.gz"
MEMORY = DATA / "genai_memory_excerpt.csv.gz"
CDFS = DATA / "utilization_cdfs_excerpt.csv"
PAIRS = DATA / "gavel_v100_excerpt.json"

UNITS = 132
MEM = 80 * 10**9


def stream(jobs: Sequence[dict]) -> tuple[traces.Pods, demand.Profiles]:
    """Pods from dicts: ``t`` arrival, ``run`` seconds, ``milli`` (default 1000), ``gpus``
    (default 1), ``ls`` (default batch), ``sm`` SM demand (a number, or a per-minute list that
    loops), ``sizing`` (default: the largest demand), ``mem`` bytes held (default 0), ``job``
    Gavel job type (default 0)."""
    n = len(jobs)
    series = [np.atleast_1d(np.asarray(j["sm"], np.float64)) for j in jobs]
    start = np.cumsum([0] + [s.size for s in series[:-1]]).astype(np.int64)
    pods = traces.Pods([j.get("name", f"job-{i}") for i, j in enumerate(jobs)],
                       np.array([j["t"] for j in jobs], np.float64), np.array([j["run"] for j in jobs], np.float64),
                       np.array([j.get("gpus", 1) for j in jobs], np.int64),
                       np.array([j.get("milli", 1000) for j in jobs], np.int64),
                       np.array([j.get("ls", False) for j in jobs], bool), {})
    prof = demand.Profiles(
        sm=np.concatenate(series),
        mem=np.concatenate([np.full(s.size, float(j.get("mem", 0))) for s, j in zip(series, jobs)]),
        start=start, length=np.array([s.size for s in series], np.int64), phase=np.zeros(n, np.int64),
        estimate=np.array([j.get("sizing", float(s.max())) for s, j in zip(series, jobs)]),
        mem_request=pods.milli / 1000.0 * MEM, job=np.array([j.get("job", 0) for j in jobs], np.int64),
        source=["hand"] * n, sm_units=UNITS, memory_bytes=MEM)
    return pods, prof


def run(jobs: Union[Sequence[dict], tuple], policy: str, gpus: int = 2, per_node: int = 2,
        model: Optional[slowdown.Model] = None, factors: Optional[np.ndarray] = None,
        scorer_factory=None) -> tuple[engine.Result, Optional[Feed]]:
    pods, prof = stream(jobs) if not isinstance(jobs, tuple) else jobs
    cl = cluster.Cluster(gpus, per_node, UNITS, MEM)
    feed = None
    if policy in ("P2", "P2f"):
        kw = {} if scorer_factory is None else {"scorer_factory": scorer_factory}
        feed = Feed(cl, cluster.h100_topology(), 300.0, **kw)
    sim = engine.Simulation(pods, prof, policies.make(policy, feed), cl, model or slowdown.Model("analytic"),
                            factors, feed)
    return sim.run(), feed
