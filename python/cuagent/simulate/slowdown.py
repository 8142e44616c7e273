"""How fast a pod runs beside others: two models, reported as bounds.

**Analytic** (optimistic, fluid): a pod progresses at ``min(1, SMs it gets ÷ SMs it wants)``.
Pods time-slicing a GPU get its SMs in proportion to their demand (so the ratio is
``132 ÷ the GPU's total demand``); a pod in a partition (MIG instance, SM share) gets the
partition's SMs. A memory-bandwidth term, swept because no public trace measures it, slows a
pod that shares the GPU's memory system (not MIG) by ``1 / (1 + β × the others' SM activity)``
(activity = demand ÷ 132).

**Measured** (pessimistic): Gavel's pair throughputs (V100; each pod has a Gavel job type). A
co-runner ``j`` that is active (demand > 0) in a minute adds ``1/f_ij − 1`` to pod ``i``'s time
per unit of work, where ``f_ij`` is ``i``'s measured throughput beside ``j`` over alone — the
pair's own slowdown for one co-runner, time-sharing among several. A pair Gavel did not
measure takes the median of the row job's measured pairs. MIG instances are isolated (no
co-runner term); a partition's SM cap applies as in the analytic model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .traces import PairThroughputs


@dataclass(frozen=True)
class Model:
    kind: str  # "analytic" | "measured"
    bandwidth: float = 0.0  # β, analytic only

    def __post_init__(self) -> None:
        if self.kind not in ("analytic", "measured"):
            raise ValueError(f"slowdown model {self.kind!r}: expected analytic or measured")
        if not (np.isfinite(self.bandwidth) and self.bandwidth >= 0):
            raise ValueError(f"memory-bandwidth term must be a number >= 0, got {self.bandwidth!r}")

    @property
    def label(self) -> str:
        return "measured (Gavel pairs)" if self.kind == "measured" else f"analytic, bandwidth β={self.bandwidth:g}"

    @property
    def key(self) -> str:
        return "measured" if self.kind == "measured" else f"analytic-b{self.bandwidth:g}"


def pair_factors(pairs: PairThroughputs) -> np.ndarray:
    """[jobs, jobs] throughput beside over alone, unmeasured pairs filled (see module doc)."""
    f = pairs.factors()
    overall = float(np.nanmedian(f)) if np.isfinite(f).any() else 1.0
    out = f.copy()
    for i in range(f.shape[0]):
        row = f[i][np.isfinite(f[i])]
        out[i][~np.isfinite(f[i])] = float(np.median(row)) if row.size else overall
    return np.clip(out, 1e-3, None)


Pairs = tuple[np.ndarray, np.ndarray, np.ndarray]


def penalties(factors: Optional[np.ndarray], job: np.ndarray, gpu: np.ndarray, isolated: np.ndarray,
              pod: np.ndarray) -> Pairs:
    """(i, j, added time per unit of work for row i from an active row j) over the row pairs
    that share a GPU's memory system (measured model)."""
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    if factors is None or job.shape[0] < 2:
        return empty
    cand = np.flatnonzero((gpu >= 0) & ~isolated)
    if cand.size < 2:
        return empty
    order = cand[np.argsort(gpu[cand], kind="stable")]
    g = gpu[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    sizes = np.diff(np.r_[starts, g.size])
    group = np.repeat(np.arange(starts.size), sizes)  # each sorted row's group
    size = sizes[group]
    # Every ordered pair within a group: row k pairs with each row of its group.
    i_pos = np.repeat(np.arange(g.size), size)
    offset = np.arange(i_pos.size) - np.repeat(np.cumsum(size) - size, size)
    j_pos = starts[group][i_pos] + offset
    i, j = order[i_pos], order[j_pos]
    keep = pod[i] != pod[j]
    i, j = i[keep], j[keep]
    return i, j, np.clip(1.0 / factors[job[i], job[j]] - 1.0, 0.0, None)


def speeds(model: Model, demand: np.ndarray, units: int, gpu_inv: np.ndarray, n_gpus: int, partitioned: np.ndarray,
           alloc: np.ndarray, isolated: np.ndarray, pairs: Optional[Pairs]) -> tuple[np.ndarray, np.ndarray]:
    """(speed, SM-cap speed) per row and minute: ``demand`` is [rows, minutes] in SMs,
    ``gpu_inv`` each row's GPU (0..n_gpus-1; -1: not on a GPU, always speed 1)."""
    rows, minutes = demand.shape
    on_gpu = gpu_inv >= 0
    flat = (np.where(on_gpu, gpu_inv, 0)[:, None] * minutes + np.arange(minutes)).ravel()
    busy = demand > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        shared = on_gpu & ~partitioned
        total = np.bincount(flat, weights=(demand * shared[:, None]).ravel(), minlength=n_gpus * minutes)
        total = total.reshape(max(n_gpus, 1), minutes)[np.where(on_gpu, gpu_inv, 0)]
        ratio = np.where(partitioned[:, None], alloc[:, None] / demand, units / total)
        cap = np.where(busy & on_gpu[:, None], np.minimum(1.0, ratio), 1.0)
    if model.kind == "analytic":
        if model.bandwidth <= 0:
            return cap, cap
        u = demand / units * (on_gpu & ~isolated)[:, None]
        gpu_u = np.bincount(flat, weights=u.ravel(), minlength=n_gpus * minutes).reshape(max(n_gpus, 1), minutes)
        others = np.clip(gpu_u[np.where(on_gpu, gpu_inv, 0)] - u, 0.0, None)
        bw = np.where((on_gpu & ~isolated)[:, None], 1.0 / (1.0 + model.bandwidth * others), 1.0)
        return cap * bw, cap
    assert pairs is not None
    i, j, pen = pairs
    extra = np.bincount((i[:, None] * minutes + np.arange(minutes)).ravel(), weights=(pen[:, None] * busy[j]).ravel(),
                        minlength=rows * minutes).reshape(rows, minutes)
    # A pod running no kernel in a minute (demand 0) is not slowed in it.
    interference = np.where(busy, 1.0 / (1.0 + extra), 1.0)
    sm_cap = np.where(partitioned[:, None], cap, 1.0)
    return sm_cap * interference, sm_cap
