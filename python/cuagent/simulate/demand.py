"""What each pod asks of the SMs and memory over time (its demand profile).

The 2023 pod list has requests, not use; the profiles pair it with measured use:

- **Latency-sensitive pods** replay one pod of the GenAI trace (chosen at random, started at
  a random minute of its series, looped when the pod outlives it). The series gives *when*
  the pod is busy (its duty cycle: 0 is idle) and how much memory it holds. How many SMs a
  busy minute keeps active is not in it — a duty cycle is nvidia-smi's "a kernel ran", which
  reads ~99 % on GPUs whose SMs are active a third of the time — so a busy minute's SM demand
  is the DCGM ``sm_active`` of busy GPUs at the same rank: the minute's duty-cycle quantile
  among all busy GenAI minutes, read off the ``sm_active`` distribution of the Acme clusters'
  busy samples (``sm_active`` > 0).
- **Batch pods** hold one SM demand for their life, drawn from the Acme ``sm_active``
  distribution (all samples, idle ones included), and one memory level from ``fb_used``.

SM demand is in SMs of an H100 (``sm_active`` × 132): the SM-equivalents a pod keeps busy
when it has the GPU to itself. Memory used never exceeds the pod's request (a hard limit).
Every pod also gets a Gavel job type (uniformly at random) for the measured slowdown model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from .traces import PairThroughputs, Pods, TraceError

#: Source clusters of the SM-activity and memory distributions (AcmeTrace, A100, DCGM).
DEFAULT_CDF_CLUSTERS = ("acme-seren", "acme-kalos")


@dataclass
class Profiles:
    """Per-pod demand, as index arrays into shared flat series (minute resolution).

    The demand of pod ``p`` in its minute ``k`` (counted from the minute it started) is
    ``sm[start[p] + (phase[p] + k) % length[p]]``; memory likewise from ``mem`` (bytes,
    before the pod's request caps it)."""

    sm: np.ndarray  # float64 SMs
    mem: np.ndarray  # float64 bytes
    start: np.ndarray  # int64 per pod
    length: np.ndarray  # int64 per pod
    phase: np.ndarray  # int64 per pod
    estimate: np.ndarray  # float64 SMs per pod: the sizing a scheduler is told (a percentile)
    mem_request: np.ndarray  # float64 bytes per GPU (the pod's share of the GPU's memory)
    job: np.ndarray  # int64 per pod: Gavel job type
    source: list[str]  # per pod: the GenAI pod replayed, or "cdf"
    sm_units: int
    memory_bytes: int
    _prefix: Optional[np.ndarray] = field(default=None, repr=False, compare=False)

    def demand(self, pods: np.ndarray, minute: np.ndarray) -> np.ndarray:
        """SM demand of ``pods`` (P,) in their minutes ``minute`` (P, M) or (P,)."""
        p = pods if minute.ndim == 1 else pods[:, None]
        return self.sm[self.start[p] + (self.phase[p] + minute) % self.length[p]]

    def cumulative(self, pods: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Sum of each pod's demand over its minutes ``[0, k)`` (series loop included)."""
        if self._prefix is None:
            self._prefix = np.concatenate([[0.0], np.cumsum(self.sm)])
        pre = self._prefix
        a, n, ph = self.start[pods], self.length[pods], self.phase[pods]
        total = pre[a + n] - pre[a]

        def upto(u: np.ndarray) -> np.ndarray:
            return (u // n) * total + pre[a + u % n] - pre[a]
        return upto(ph + k) - upto(ph)

    def integral(self, pods: np.ndarray, minute0: np.ndarray, t0: float, t1: float) -> np.ndarray:
        """SM-seconds of demand of each pod over ``[t0, t1]`` (demand changes on the minute
        grid; ``minute0``: the minute each pod started in)."""
        ma, mb = int(t0 // 60), int(t1 // 60)
        ka, kb = ma - minute0, mb - minute0
        first = self.demand(pods, ka)
        if ma == mb:
            return first * (t1 - t0)
        full = 60.0 * (self.cumulative(pods, kb) - self.cumulative(pods, ka + 1))
        return first * (60.0 * (ma + 1) - t0) + full + self.demand(pods, kb) * (t1 - 60.0 * mb)

    def memory(self, pods: np.ndarray, minute: np.ndarray) -> np.ndarray:
        p = pods if minute.ndim == 1 else pods[:, None]
        return np.minimum(self.mem[self.start[p] + (self.phase[p] + minute) % self.length[p]], self.mem_request[p])


def _samples(cdfs: dict, clusters: Sequence[str], metric: str) -> np.ndarray:
    """The quantile points of ``metric`` over ``clusters``, pooled as equally weighted samples
    (each CDF's points are evenly spaced in probability)."""
    out = []
    for c in clusters:
        if (c, metric) not in cdfs:
            known = sorted({k[0] for k in cdfs if k[1] == metric})
            raise TraceError(f"utilisation CDFs: no {metric} for cluster {c!r}; clusters with {metric}: {known}")
        values, shares = cdfs[(c, metric)]
        # Resample at 1000 evenly spaced shares so clusters weigh the same however many points they have.
        out.append(np.interp(np.linspace(0, 1, 1000), shares, values))
    return np.sort(np.concatenate(out))


def _busy_quantile_map(duty: dict[str, np.ndarray], busy_sm: np.ndarray) -> dict[str, np.ndarray]:
    """Each series mapped to SM share: 0 stays 0; a busy value goes to the ``busy_sm`` value
    at its (mid-)rank among all busy values of all series."""
    pooled = np.sort(np.concatenate([s[s > 0] for s in duty.values()]))
    if not pooled.size:
        raise TraceError("GenAI duty cycle: no busy sample (every value is 0)")
    out = {}
    for k, s in duty.items():
        lo = np.searchsorted(pooled, s, side="left")
        hi = np.searchsorted(pooled, s, side="right")
        q = (lo + hi) / 2.0 / pooled.size
        mapped = np.interp(q, np.linspace(0, 1, busy_sm.size), busy_sm)
        out[k] = np.where(s > 0, mapped, 0.0)
    return out


def build(pods: Pods, seed: int, duty: dict[str, np.ndarray], memory: dict[str, np.ndarray], cdfs: dict,
          pairs: Optional[PairThroughputs], sm_units: int, memory_bytes: int,
          clusters: Sequence[str] = DEFAULT_CDF_CLUSTERS, percentile: float = 95.0) -> Profiles:
    """Profiles for ``pods``; the same ``seed`` gives the same profiles."""
    keys = sorted(k for k in duty if k in memory and duty[k].size >= 2)
    if not keys:
        raise TraceError("GenAI series: no pod has both a duty-cycle and a memory series")
    sm_all = _samples(cdfs, clusters, "sm_active")
    busy = sm_all[sm_all > 0]
    if not busy.size:
        raise TraceError("utilisation CDFs: sm_active is never above 0")
    fb = _samples(cdfs, clusters, "fb_used")
    mapped = _busy_quantile_map({k: duty[k] for k in keys}, busy)
    # One independent stream per purpose: adding a draw for one purpose shifts no other.
    s_pick, s_phase, s_sm, s_mem, s_job = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5))
    n = len(pods)
    sm_parts, mem_parts = [], []
    series_start: dict[str, int] = {}
    offset = 0
    for k in keys:
        series_start[k] = offset
        m = memory[k]
        length = min(mapped[k].size, m.size)
        sm_parts.append(mapped[k][:length] * sm_units)
        mem_parts.append(m[:length].astype(np.float64))
        offset += length
    start = np.zeros(n, np.int64)
    length_a = np.ones(n, np.int64)
    phase = np.zeros(n, np.int64)
    estimate = np.zeros(n)
    source = ["cdf"] * n
    pick = s_pick.integers(len(keys), size=n)
    phase_u = s_phase.random(n)
    sm_draw = np.interp(s_sm.random(n), np.linspace(0, 1, sm_all.size), sm_all) * sm_units
    mem_draw = np.interp(s_mem.random(n), np.linspace(0, 1, fb.size), fb) * memory_bytes
    series_estimate = {k: float(np.percentile(sm_parts[i], percentile)) for i, k in enumerate(keys)}
    consts_sm: list[float] = []
    consts_mem: list[float] = []
    for p in range(n):
        if pods.ls[p]:
            k = keys[pick[p]]
            start[p] = series_start[k]
            length_a[p] = sm_parts[keys.index(k)].size
            phase[p] = int(phase_u[p] * length_a[p])
            estimate[p] = series_estimate[k]
            source[p] = k
        else:
            start[p] = offset + len(consts_sm)
            consts_sm.append(sm_draw[p])
            consts_mem.append(mem_draw[p])
            estimate[p] = sm_draw[p]
    sm = np.concatenate(sm_parts + [np.asarray(consts_sm, np.float64)])
    mem = np.concatenate(mem_parts + [np.asarray(consts_mem, np.float64)])
    jobs = len(pairs.jobs) if pairs is not None else 1
    job = s_job.integers(jobs, size=n).astype(np.int64)
    mem_request = pods.milli.astype(np.float64) / 1000.0 * memory_bytes
    return Profiles(sm, mem, start, length_a, phase, estimate, mem_request, job, source, sm_units, memory_bytes)
