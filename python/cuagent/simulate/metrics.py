"""Figures of one run, the target a policy must meet, and the search for the fewest GPUs.

Percentiles are the inverted-CDF kind (the smallest value that at least that share of pods
is at or below): "p95 wait <= W" then means exactly "at most 5 % of pods waited longer".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from .engine import CLASSES, Result


def pct(x: np.ndarray, q: float) -> Optional[float]:
    x = x[np.isfinite(x)]
    if not x.size:
        return None
    return float(np.percentile(x, q, method="inverted_cdf"))


@dataclass(frozen=True)
class Target:
    """What a policy must keep, in every class of pods (:data:`~.engine.CLASSES`): p95 wait at
    most that class's ``wait_s``, p95 slowdown at most ``slowdown``."""

    wait_s: tuple[float, ...]
    slowdown: float
    pooled: bool = False  # one p95 over all pods (wait_s[0]) instead of one per class

    def failing(self, r: Result) -> tuple[bool, bool]:
        """(some class waits too long, some class is slowed too much); incomplete runs fail both."""
        if not r.complete:
            return True, True
        waits = slows = False
        for c in range(1 if self.pooled else len(CLASSES)):
            k = np.ones(r.klass.shape, bool) if self.pooled else r.klass == c
            if not k.any():
                continue
            w, s = pct(r.wait[k], 95), pct(r.slowdown[k], 95)
            waits |= w is None or w > self.wait_s[c] + 1e-9
            slows |= s is None or s > self.slowdown + 1e-9
        return waits, slows

    def met(self, r: Result) -> bool:
        return not any(self.failing(r))

    def describe(self) -> str:
        if self.pooled:
            return (f"p95 wait over all pods <= P0's ({self.wait_s[0]:g} s) and p95 slowdown over all pods "
                    f"<= {self.slowdown:g}")
        waits = ", ".join(f"{n} {w:g} s" for n, w in zip(CLASSES, self.wait_s))
        return f"p95 wait of each pod class <= P0's ({waits}) and p95 slowdown of each class <= {self.slowdown:g}"


def by_class(r: Result, x: np.ndarray, q: float = 95) -> dict[str, Optional[float]]:
    return {n: pct(x[r.klass == c], q) for c, n in enumerate(CLASSES) if (r.klass == c).any()}


def summary(r: Result) -> dict[str, Any]:
    """The raw figures of one run (JSON-ready)."""
    def dist(x: np.ndarray) -> dict[str, Optional[float]]:
        return {"p50": pct(x, 50), "p95": pct(x, 95), "p99": pct(x, 99),
                "max": float(np.nanmax(x)) if np.isfinite(x).any() else None,
                "mean": float(np.nanmean(x)) if np.isfinite(x).any() else None}

    fin = np.isfinite(r.slowdown)
    shared = ~r.whole
    out: dict[str, Any] = {
        "policy": r.policy, "model": r.model, "gpus": r.gpus, "pods": r.pods, "complete": r.complete,
        "stop_reason": r.stop_reason,
        "wait_s": dist(r.wait),
        "p95_wait_s_by_class": by_class(r, r.wait),
        "p95_slowdown_by_class": by_class(r, r.slowdown),
        "pods_waited": int(np.sum(r.wait > 0)),
        "wait_s_multi_gpu_pods": dist(r.wait[r.gpus_per_pod > 1]) if (r.gpus_per_pod > 1).any() else None,
        "wait_s_whole_gpu_pods": dist(r.wait[r.whole]),
        "wait_s_shared_pods": dist(r.wait[~r.whole]),
        "slowdown": dist(r.slowdown),
        "slowdown_latency_sensitive": dist(r.slowdown[r.ls]),
        "slowdown_batch": dist(r.slowdown[~r.ls]),
        "slowdown_shared_pods": dist(r.slowdown[shared]),
        "pods_slowed_over_5pct": int(np.sum(r.slowdown[fin] > 1.05)),
        "occupied_gpu_hours": r.occupied_gpu_s / 3600,
        "served_sm_hours": r.served_sm_s / 3600,
        "idle_sm_hours": r.idle_sm_s / 3600 if r.occupied_gpu_s else None,
        "shared_gpu_hours": r.shared_gpu_s / 3600,
        "memory_binds_share_reserved": r.memory_binds_reserved_s / r.shared_gpu_s if r.shared_gpu_s else None,
        "memory_binds_share_used": r.memory_binds_used_s / r.shared_gpu_s if r.shared_gpu_s else None,
        "peak_occupied_gpus": r.peak_occupied,
        "peak_sm_demand_gpus": r.peak_sm_gpus,
        "peak_memory_share_gpus": r.peak_memory_gpus,
        "wall_s": r.wall_s,
    }
    if r.feed:
        out["feed"] = dict(r.feed, rank_calls=r.scorer_calls)
    profiles = [p for p in r.profile if p]
    if profiles and any(p != "7g.80gb" for p in profiles):
        names, counts = np.unique(profiles, return_counts=True)
        out["mig_profiles"] = {str(n): int(c) for n, c in zip(names, counts)}
    return out


@dataclass
class Search:
    """The fewest GPUs at which a policy met the target, and every size tried."""

    policy: str
    model: str
    fewest: Optional[int]  # None: not met at any size up to the ceiling
    tried: dict[int, dict[str, Any]]  # gpus -> summary
    ceiling: int

    def best(self) -> Optional[dict[str, Any]]:
        return self.tried.get(self.fewest) if self.fewest is not None else None


def fewest_gpus(evaluate: Callable[[int], Result], target: Target, hint: int, floor: int, ceiling: int,
                progress: Callable[[str], None] = lambda _s: None) -> tuple[Optional[int], dict[int, Result]]:
    """The smallest size in [floor, ceiling] meeting ``target``, assuming more GPUs never hurt:
    try ``hint``; while it fails on waiting, widen upward (×1.25); when it fails on slowdown
    alone (more GPUs may not help: best fit packs the same way on any size), try the ceiling
    at once; then bisect down to ``floor``."""
    tried: dict[int, Result] = {}

    def ok(n: int) -> bool:
        if n not in tried:
            tried[n] = evaluate(n)
            r = tried[n]
            progress(f"{r.policy} {r.model} {n} GPUs: {'met' if target.met(r) else 'not met'}"
                     f"{'' if r.complete else ' (' + r.stop_reason + ')'} [{r.wall_s:.1f} s]")
        return target.met(tried[n])

    def slowed(n: int) -> bool:
        r = tried[n]
        if not r.complete:
            return "slowed" in r.stop_reason
        waits, slows = target.failing(r)
        return slows and not waits

    hi = max(floor, min(hint, ceiling))
    while not ok(hi):
        if hi >= ceiling:
            return None, tried
        floor = max(floor, hi + 1)
        hi = ceiling if slowed(hi) else min(ceiling, max(hi + 1, int(math.ceil(hi * 1.25))))
    lo = floor
    # Invariant: hi meets the target; everything below lo that was tried did not.
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return hi, tried
