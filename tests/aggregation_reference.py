"""A plain numpy re-statement of the engine's window aggregation, for tests.

Written from the rules (PROTOCOL.md §3.2 and the engine's documented choices),
not from the C++: windows are [origin + k*w, origin + (k+1)*w); a window is
finished when a sample of a later window arrives; means and maxima ignore
missing (NaN) values; bit masks OR; cumulative counts keep their last value;
coarser levels average the unit means and rollups are unit-weighted means, both
absent when a unit they cover has no value in the window; states
follow the thresholds with hysteresis from no history, and an element whose
``active`` is absent in a window is published UNMEASURED (255); idle_units sums
(1 - active) over units, absent unless every unit has a value.

Sums are accumulated sample by sample in float32, as the engine does, so that
states decided right at a threshold agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

F32 = np.float32
IDLE, ACTIVE, SATURATED, THRASHING = 0, 1, 2, 3
UNMEASURED = 255


@dataclass
class Thresholds:
    idle_active: float = 0.05
    saturated_occupancy: float = 0.9
    thrashing_active: float = 0.5
    thrashing_mem_stall: float = 0.6
    hysteresis: float = 0.05


def next_state(current: int, active: float, occupancy: float, stall: float, t: Thresholds) -> int:
    active, occupancy, stall = F32(active), F32(occupancy), F32(stall)
    h = F32(t.hysteresis)
    zero = F32(0)
    if np.isnan(active):
        return current
    thr = current == THRASHING
    if active >= F32(t.thrashing_active) - (h if thr else zero) and stall >= F32(t.thrashing_mem_stall) - (
        h if thr else zero
    ):
        return THRASHING
    if occupancy >= F32(t.saturated_occupancy) - (h if current == SATURATED else zero):
        return SATURATED
    if active < F32(t.idle_active) + (h if current == IDLE else zero):
        return IDLE
    return ACTIVE


@dataclass
class Counter:
    name: str
    level: str  # "sm" (unit), "partition" or "device"
    aggregation: str = "mean"  # mean | bit_or | last
    rollup: str = ""


def window_values(samples: np.ndarray, aggregation: str):
    """Mean and max of each column over the window's samples (rows)."""
    ok = np.isfinite(samples)  # NaN and infinities are no data
    count = ok.sum(axis=0)
    if aggregation == "mean":
        total = np.where(ok, samples, F32(0)).astype(np.float64).sum(axis=0)  # double sums, like the engine
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, total / count, np.nan).astype(F32)
        mx = np.where(count > 0, np.max(np.where(ok, samples, -np.inf), axis=0), np.nan).astype(F32)
        return mean, mx
    if aggregation == "bit_or":
        out = np.zeros(samples.shape[1], dtype=np.uint64)
        for row in samples:
            good = (row >= 0) & (row < 2**32)
            out[good] |= row[good].astype(np.uint64)
        v = np.where(count > 0, out.astype(F32), np.nan).astype(F32)
        return v, v
    if aggregation == "last":
        out = np.full(samples.shape[1], np.nan, dtype=F32)
        for row in samples:
            out = np.where(np.isfinite(row), row, out)
        return out, out
    raise ValueError(aggregation)


def group_mean(unit_mean: np.ndarray, unit_max: np.ndarray, ancestor: np.ndarray, groups: int):
    gsum = np.zeros(groups, dtype=F32)
    gcount = np.zeros(groups, dtype=np.int64)
    gmax = np.full(groups, np.nan, dtype=F32)
    missing = np.zeros(groups, dtype=bool)
    for u in range(len(unit_mean)):
        e = ancestor[u]
        if np.isnan(unit_mean[u]):
            missing[e] = True
            continue
        gsum[e] = F32(gsum[e] + unit_mean[u])
        gcount[e] += 1
        if not gmax[e] >= unit_max[u]:
            gmax[e] = unit_max[u]
    with np.errstate(invalid="ignore", divide="ignore"):
        gmean = np.where((gcount > 0) & ~missing, gsum / gcount.astype(F32), np.nan).astype(F32)
    return gmean, np.where(missing, np.nan, gmax).astype(F32)


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> Optional[float]:
    num = den = 0.0
    for v, w in zip(values, weights):
        if w == 0:
            continue
        if np.isnan(v):
            return None  # a unit that weighs in has no value: the whole is not known
        num += float(w) * float(v)
        den += float(w)
    return num / den if den > 0 else None


class ReferenceAggregator:
    """Feeds the same samples as the engine and keeps every finished window."""

    def __init__(self, units: int, gpcs: int, ancestor: np.ndarray, partitions: List[Optional[np.ndarray]],
                 counters: List[Counter], window_ns: int, thresholds: Thresholds):
        self.units, self.gpcs, self.ancestor = units, gpcs, ancestor
        self.partitions, self.counters, self.window_ns, self.t = partitions, counters, window_ns, thresholds
        self.windows: List[dict] = []
        self.unit_state = np.full(units, UNMEASURED, dtype=np.uint8)
        self.gpc_state = np.full(gpcs, UNMEASURED, dtype=np.uint8)

    def elements(self, c: Counter) -> int:
        return {"sm": self.units, "partition": len(self.partitions), "device": 1}[c.level]

    def run(self, t_ns: np.ndarray, samples: np.ndarray) -> None:
        index = t_ns // self.window_ns
        start = 0
        for i in range(1, len(t_ns) + 1):
            if i == len(t_ns):
                break  # the open window is never published
            if index[i] > index[start]:
                self.finish(index[start], samples[start:i])
                start = i

    def finish(self, k: int, rows: np.ndarray) -> None:
        out: dict = {"seq": len(self.windows) + 1, "t_ns": int((k + 1) * self.window_ns),
                     "samples": len(rows), "sm": {}, "gpc": {}, "partition": [dict() for _ in self.partitions],
                     "device": {}}
        offset = 0
        for c in self.counters:
            n = self.elements(c)
            mean, mx = window_values(rows[:, offset:offset + n], c.aggregation)
            offset += n
            if np.all(np.isnan(mean)):
                continue
            if c.level == "sm":
                out["sm"][c.name] = (mean, mx)
                out["gpc"][c.name] = group_mean(mean, mx, self.ancestor, self.gpcs)
                if c.rollup:
                    v = weighted_mean(mean, np.ones(self.units))
                    if v is not None:
                        out["device"][c.rollup] = v
                    for p, ids in enumerate(self.partitions):
                        if ids is None and len(self.partitions) > 1:
                            continue
                        w = np.ones(self.units) if ids is None else np.bincount(ids, minlength=self.units)
                        v = weighted_mean(mean, w)
                        if v is not None:
                            out["partition"][p][c.rollup] = v
            elif c.level == "partition":
                for p in range(n):
                    if not np.isnan(mean[p]):
                        out["partition"][p][c.name] = float(mean[p])
            else:
                out["device"][c.name] = float(mean[0])

        def states(level: str, current: np.ndarray) -> np.ndarray:
            stats = out[level]
            nan = np.full(len(current), np.nan, dtype=F32)
            active = stats["active"][0] if "active" in stats else nan
            occ = stats["occupancy"][0] if "occupancy" in stats else nan
            stall = stats["mem_stall"][0] if "mem_stall" in stats else nan
            for e in range(len(current)):
                current[e] = next_state(int(current[e]), active[e], occ[e], stall[e], self.t)
            return np.where(np.isnan(active), UNMEASURED, current).astype(np.uint8)

        out["sm_state"] = states("sm", self.unit_state)
        out["gpc_state"] = states("gpc", self.gpc_state)
        idle = None
        if "active" in out["sm"]:
            a = out["sm"]["active"][0]
            if not np.isnan(a).any():  # every unit measured, else not known
                idle = float(np.sum(1.0 - a.astype(np.float64)))
        out["idle_units"] = idle
        self.windows.append(out)
