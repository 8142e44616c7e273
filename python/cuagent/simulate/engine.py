"""The discrete-event cluster simulation: one pod stream, one policy, one slowdown model.

Events are arrivals, batch pods finishing their work and latency-sensitive pods reaching the
end of their lifetime. Between two events placements are fixed, so each running pod's speed
in every minute of the interval follows from the demand profiles and the slowdown model;
the interval is integrated at once (one array per pod × minute). Demands change on the
minute grid of the traces.

- A batch pod carries its observed run time as work: it finishes when it has done that much
  at the speeds it got. Slowdown = run time ÷ run time alone.
- A latency-sensitive pod (a service) lives its observed lifetime whatever its speed.
  Slowdown = its time-mean of 1 ÷ speed (how much longer its work took while it ran).
- A pod that cannot be placed waits; whenever a pod leaves, the waiting pods are tried again
  in arrival order (each one that fits starts: no head-of-line blocking).

Conservation is asserted as it runs: no GPU gives out more than its memory share, SMs or MIG
slices (:class:`~.cluster.Cluster`), and every pod that starts finishes.
"""

from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from . import slowdown
from .cluster import Cluster
from .demand import Profiles
from .feed import Feed
from .policies import Ask, Fluid, Placement, Policy, ask_of
from .traces import Pods

MINUTE = 60.0
#: Rows × minutes integrated in one piece (bounds memory on long quiet stretches).
CHUNK_CELLS = 1 << 19


@dataclass
class Limits:
    """Stop a run early once it cannot meet the target: more than ``share`` of the pods
    waited longer than ``wait_s``, or were slowed by more than ``slowdown``."""

    wait_s: float
    slowdown: float
    share: float = 0.05


@dataclass
class Result:
    policy: str
    model: str
    gpus: int
    pods: int
    units: int
    complete: bool  # every pod started and finished (False: stopped early or stuck)
    stop_reason: str
    wait: np.ndarray  # per pod, s (NaN: never started)
    slowdown: np.ndarray  # per pod (NaN: did not finish)
    ls: np.ndarray
    whole: np.ndarray  # pod took whole GPUs
    profile: list[str]  # MIG profile per pod (P3), "" otherwise
    placements: list[Optional[Placement]] = field(default_factory=list)  # per pod: where it ran
    start: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per pod, s (NaN: never started)
    finish: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per pod, s (NaN: did not finish)
    occupied_gpu_s: float = 0.0  # GPU-seconds with at least one pod
    served_sm_s: float = 0.0  # SM-seconds of demand served
    shared_gpu_s: float = 0.0  # GPU-seconds hosting a shared pod
    memory_binds_reserved_s: float = 0.0  # of those, seconds reserved memory share > SM demand share
    memory_binds_used_s: float = 0.0  # ... memory held share > SM demand share
    peak_sm_gpus: float = 0.0  # max over time of total SM demand ÷ 132
    peak_memory_gpus: float = 0.0  # max over time of total memory share
    peak_occupied: int = 0
    feed: dict[str, Any] = field(default_factory=dict)
    scorer_calls: int = 0
    wall_s: float = 0.0

    @property
    def idle_sm_s(self) -> float:
        return self.occupied_gpu_s * self.units - self.served_sm_s


class Simulation:
    def __init__(self, pods: Pods, profiles: Profiles, policy: Policy, cluster: Cluster, model: slowdown.Model,
                 factors: Optional[np.ndarray] = None, feed: Optional[Feed] = None,
                 limits: Optional[Limits] = None) -> None:
        if model.kind == "measured" and factors is None:
            raise ValueError("the measured slowdown model needs Gavel's pair throughputs")
        self.pods, self.prof, self.policy, self.cl, self.model = pods, profiles, policy, cluster, model
        self.factors = factors
        self.feed = feed
        self.limits = limits
        n = len(pods)
        self.n = n
        self.asks = [ask_of(pods.gpus[p], pods.milli[p], profiles.estimate[p], profiles.mem_request[p]) for p in range(n)]
        self.fluid = isinstance(policy, Fluid)
        self.start = np.full(n, np.nan)
        self.finish = np.full(n, np.nan)
        self.work = pods.duration.astype(np.float64).copy()  # batch: seconds of work left
        self.inv_speed_s = np.zeros(n)  # latency-sensitive: ∫ 1/speed dt
        self.minute0 = np.zeros(n, np.int64)
        self.placement: list[Optional[Placement]] = [None] * n
        self.running: set[int] = set()
        self.run_mask = np.zeros(n, bool)
        self.p_gpu = np.full(n, -1, np.int64)
        self.p_part = np.zeros(n, bool)
        self.p_alloc = np.zeros(n)
        self.p_iso = np.zeros(n, bool)
        self.multi: dict[int, tuple[int, ...]] = {}
        self._lut = np.zeros(cluster.gpus, np.int64)
        self.ls_ends: list[tuple[float, int]] = []
        self.queue: list[int] = []
        self.mem_reserved = np.zeros(cluster.gpus)  # memory share given out per GPU
        self.shared_pods = np.zeros(cluster.gpus, np.int64)  # shared (fractional) pods per GPU
        self.memory_share = 0.0  # memory shares of the running pods, in GPUs
        self._dirty = True
        self.late_wait = 0
        self.late_slow = 0
        self.res = Result(policy.name, model.key, cluster.gpus, n, cluster.units, False, "", np.full(n, np.nan), np.full(n, np.nan),
                          pods.ls.copy(), pods.milli >= 1000, [""] * n)
        if feed is not None:
            feed.mem_source = self._memory_now

    # ------------------------------------------------------------------ rows
    def _rows(self) -> None:
        """Arrays with one row per (running pod, GPU it is on); the pod's first GPU first."""
        base = np.flatnonzero(self.run_mask)
        if self.multi:
            extra = [(p, g) for p, gs in sorted(self.multi.items()) for g in gs]
            ep = np.array([e[0] for e in extra], np.int64)
            self.r_pod = np.concatenate([base, ep])
            self.r_gpu = np.concatenate([self.p_gpu[base], np.array([e[1] for e in extra], np.int64)])
            self.r_prim = np.concatenate([np.ones(base.size, bool), np.zeros(ep.size, bool)])
        else:
            self.r_pod, self.r_gpu, self.r_prim = base, self.p_gpu[base], np.ones(base.size, bool)
        pod = self.r_pod
        self.r_part, self.r_alloc, self.r_iso = self.p_part[pod], self.p_alloc[pod], self.p_iso[pod]
        self.r_ls = self.pods.ls[pod]
        on = self.r_gpu >= 0
        present = np.zeros(self.cl.gpus, bool)
        present[self.r_gpu[on]] = True
        self.gids = np.flatnonzero(present)
        self._lut[self.gids] = np.arange(self.gids.size)
        self.r_inv = np.where(on, self._lut[np.where(on, self.r_gpu, 0)], -1)
        self.r_on = on
        per_gpu = np.bincount(self.r_inv[on], minlength=self.gids.size) if self.gids.size else np.zeros(0, np.int64)
        capped = self.r_part & (self.r_alloc < self.cl.units)
        # Every pod alone on its GPU with all of it: every speed is 1.
        self.trivial = self.fluid or (int(per_gpu.max(initial=0)) <= 1 and not capped.any())
        self.pen = None
        if self.model.kind == "measured" and not self.trivial:
            self.pen = slowdown.penalties(self.factors, self.prof.job[pod], self.r_gpu, self.r_iso, pod)
        self.g_mem = self.mem_reserved[self.gids]
        self.g_shared = self.shared_pods[self.gids] > 0
        self.occupied = int(self.gids.size)
        self.res.peak_occupied = max(self.res.peak_occupied, self.occupied)
        self._dirty = False

    def _memory_now(self, now: float) -> np.ndarray:
        """Memory held per GPU at ``now`` (bytes)."""
        if self._dirty:
            self._rows()
        out = np.zeros(self.cl.gpus)
        on = self.r_on
        if on.any():
            minute = int(now // MINUTE) - self.minute0[self.r_pod[on]]
            np.add.at(out, self.r_gpu[on], self.prof.memory(self.r_pod[on], minute))
        return out

    # ------------------------------------------------------------------ integration
    def _advance(self, t0: float, t1: float) -> tuple[float, list[int]]:
        """Integrate from ``t0`` towards ``t1``; returns (time reached, batch pods finished then)."""
        if self._dirty:
            self._rows()
        rows = self.r_pod.size
        if rows == 0 or t1 <= t0:
            return t1, []
        m_first = int(t0 // MINUTE)
        cells = max(1, CHUNK_CELLS // rows)
        batch_left = self.work[self.r_pod[self.r_prim & ~self.r_ls]]
        if batch_left.size:
            # Look no further ahead than the first batch pod would need at half speed (slower
            # pods just take another step): no speeds are computed for minutes never reached.
            t1 = min(t1, t0 + max(MINUTE, 2.0 * float(batch_left.min())))
        if math.isinf(t1):
            t1 = (m_first + cells) * MINUTE
        count = max(1, int(math.ceil(t1 / MINUTE)) - m_first)
        if count > cells:
            count = cells
            t1 = min(t1, (m_first + count) * MINUTE)
        mins = m_first + np.arange(count)
        seg_start = np.maximum(mins * MINUTE, t0)
        seg_end = np.minimum((mins + 1) * MINUTE, t1)
        k = mins[None, :] - self.minute0[self.r_pod][:, None]
        demand = self.prof.demand(self.r_pod, k)
        n_g = int(self.gids.size)
        batch = np.flatnonzero(self.r_prim & ~self.r_ls)
        ls_rows = np.flatnonzero(self.r_prim & self.r_ls)
        need = self.work[self.r_pod[batch]]
        t_end = t1
        finished: list[int] = []
        speed: Optional[np.ndarray] = None
        cap: Optional[np.ndarray] = None
        if self.trivial:
            if batch.size:
                t_fin = t0 + need
                first = float(t_fin.min())
                if first <= t1:
                    t_end = first
                    finished = self.r_pod[batch[t_fin <= t_end + 1e-6]].tolist()
            used = np.clip(np.minimum(seg_end, t_end) - seg_start, 0.0, None)
            span = t_end - t0
            self.work[self.r_pod[batch]] -= span
            self.inv_speed_s[self.r_pod[ls_rows]] += span
            served = float(demand.sum(axis=0) @ used)
        else:
            speed, cap = slowdown.speeds(self.model, demand, self.cl.units, self.r_inv, n_g, self.r_part,
                                         self.r_alloc, self.r_iso, self.pen)
            length = seg_end - seg_start
            if batch.size:
                prog = speed[batch] * length
                cum = np.cumsum(prog, axis=1)
                done = np.flatnonzero(cum[:, -1] >= need - 1e-9)
                if done.size:
                    kk = np.argmax(cum[done] >= (need[done] - 1e-9)[:, None], axis=1)
                    before = cum[done, kk] - prog[done, kk]
                    t_fin = seg_start[kk] + (need[done] - before) / speed[batch[done], kk]
                    t_end = float(min(t1, t_fin.min()))
                    finished = self.r_pod[batch[done[t_fin <= t_end + 1e-6]]].tolist()
            used = np.clip(np.minimum(seg_end, t_end) - seg_start, 0.0, None)
            span = t_end - t0
            if batch.size:
                self.work[self.r_pod[batch]] -= speed[batch] @ used
            if ls_rows.size:
                self.inv_speed_s[self.r_pod[ls_rows]] += (used / speed[ls_rows]) @ np.ones(count)
            served = float(((demand * speed) @ used).sum())
        self.work[finished] = 0.0
        res = self.res
        res.served_sm_s += served
        res.occupied_gpu_s += self.occupied * span
        res.peak_sm_gpus = max(res.peak_sm_gpus, float(demand.sum(axis=0)[used > 0].max(initial=0.0)) / self.cl.units)
        if n_g and (self.g_shared.any() or self.feed is not None):
            on = self.r_on
            flat = (self.r_inv[on][:, None] * count + np.arange(count)).ravel()
            g_demand = np.bincount(flat, weights=demand[on].ravel(), minlength=n_g * count).reshape(n_g, count)
            g_sm = np.minimum(1.0, g_demand / self.cl.units)
            shared = self.g_shared
            if shared.any():
                res.shared_gpu_s += float(shared.sum()) * span
                res.memory_binds_reserved_s += float(((self.g_mem[shared, None] > g_sm[shared]) @ used).sum())
                on_shared = on & self.g_shared[np.where(on, self.r_inv, 0)]
                flat_s = (self.r_inv[on_shared][:, None] * count + np.arange(count)).ravel()
                mem = self.prof.memory(self.r_pod[on_shared], k[on_shared]) / self.cl.memory_bytes
                held = np.bincount(flat_s, weights=mem.ravel(), minlength=n_g * count).reshape(n_g, count)
                res.memory_binds_used_s += float(((held[shared] > g_sm[shared]) @ used).sum())
            if self.feed is not None:
                if speed is None or cap is None:
                    stall = np.zeros((n_g, count))
                else:
                    served_g = np.bincount(flat, weights=(demand * speed)[on].ravel(), minlength=n_g * count)
                    capped_g = np.bincount(flat, weights=(demand * cap)[on].ravel(), minlength=n_g * count)
                    with np.errstate(invalid="ignore", divide="ignore"):
                        stall = np.where(capped_g > 0, 1.0 - served_g / capped_g, 0.0).reshape(n_g, count)
                self.feed.integrate(self.gids, g_sm @ used, (g_sm * stall) @ used)
                # A GPU whose activity moved within the interval changed then (for the feed's
                # convergence rule): at the start of its last differing minute.
                if count > 1:
                    diff = np.diff(g_sm, axis=1) != 0
                    moved = np.flatnonzero(diff.any(axis=1))
                    if moved.size:
                        last = count - 1 - np.argmax(diff[moved][:, ::-1], axis=1)
                        g = self.gids[moved]
                        self.feed.changed[g] = np.maximum(self.feed.changed[g], seg_start[last])
        return t_end, finished

    # ------------------------------------------------------------------ events
    def _try_place(self, p: int, now: float) -> bool:
        ask: Ask = self.asks[p]
        pl = self.policy.place(self.cl, ask, now)
        if pl is None:
            return False
        self.placement[p] = pl
        self.running.add(p)
        self.run_mask[p] = True
        self.p_gpu[p] = pl.gpus[0] if pl.gpus else -1
        self.p_part[p], self.p_alloc[p], self.p_iso[p] = pl.partitioned, pl.alloc, pl.isolated
        if len(pl.gpus) > 1:
            self.multi[p] = pl.gpus[1:]
        self.start[p] = now
        self.minute0[p] = int(now // MINUTE)
        wait = now - self.pods.arrival[p]
        self.res.wait[p] = wait
        self.res.profile[p] = pl.profile
        if self.limits is not None and wait > self.limits.wait_s:
            self.late_wait += 1
        share = pl.milli / 1000.0 if not pl.isolated else bin(pl.mig_mask).count("1") / 8.0
        self.memory_share += ask.gpus * ask.milli / 1000.0
        self.res.peak_memory_gpus = max(self.res.peak_memory_gpus, self.memory_share)
        for g in pl.gpus:
            self.mem_reserved[g] += share
            if not ask.whole:
                self.shared_pods[g] += 1
        if self.feed is not None and pl.gpus:
            self.feed.touch(np.array(pl.gpus), now)
        if self.pods.ls[p]:
            heapq.heappush(self.ls_ends, (now + float(self.pods.duration[p]), p))
        self._dirty = True
        return True

    def _depart(self, p: int, now: float) -> None:
        pl = self.placement[p]
        assert pl is not None and p in self.running
        self.policy.release(self.cl, pl)
        share = pl.milli / 1000.0 if not pl.isolated else bin(pl.mig_mask).count("1") / 8.0
        self.memory_share -= self.asks[p].gpus * self.asks[p].milli / 1000.0
        for g in pl.gpus:
            self.mem_reserved[g] -= share
            if not self.asks[p].whole:
                self.shared_pods[g] -= 1
        if self.feed is not None and pl.gpus:
            self.feed.touch(np.array(pl.gpus), now)
        self.running.discard(p)
        self.run_mask[p] = False
        self.multi.pop(p, None)
        self.finish[p] = now
        run = now - self.start[p]
        if self.pods.ls[p]:
            s = self.inv_speed_s[p] / run if run > 0 else 1.0
        else:
            s = run / float(self.pods.duration[p])
        s = max(1.0, s)  # rounding in the integration can leave 1 - 1e-12
        self.res.slowdown[p] = s
        if self.limits is not None and s > self.limits.slowdown:
            self.late_slow += 1
        self._dirty = True

    def _over_limits(self, now: float) -> str:
        lim = self.limits
        if lim is None:
            return ""
        allowed = lim.share * self.n
        waiting_late = 0
        for q in self.queue:
            if now - self.pods.arrival[q] > lim.wait_s:
                waiting_late += 1
            else:
                break
        if self.late_wait + waiting_late > allowed:
            return f"more than {lim.share:.0%} of pods waited over {lim.wait_s:g} s"
        if self.late_slow > allowed:
            return f"more than {lim.share:.0%} of pods slowed over {lim.slowdown:g}x"
        return ""

    def run(self) -> Result:
        t_wall = time.perf_counter()
        arrival = self.pods.arrival
        nxt = 0
        t = 0.0
        res = self.res
        while True:
            next_arrival = float(arrival[nxt]) if nxt < self.n else math.inf
            next_end = self.ls_ends[0][0] if self.ls_ends else math.inf
            target = min(next_arrival, next_end)
            if not self.running and math.isinf(target):
                break  # nothing runs, nothing will arrive: done (or stuck with a queue)
            t, finished = self._advance(t, target) if self.running else (target, [])
            departed = False
            for p in finished:
                self._depart(p, t)
                departed = True
            while self.ls_ends and self.ls_ends[0][0] <= t + 1e-9:
                _, p = heapq.heappop(self.ls_ends)
                self._depart(p, t)
                departed = True
            if departed and self.queue:
                still = []
                for q in self.queue:
                    if not self._try_place(q, t):
                        still.append(q)
                self.queue = still
            while nxt < self.n and arrival[nxt] <= t + 1e-9:
                p = nxt
                nxt += 1
                if not self._try_place(p, t):
                    self.queue.append(p)
            reason = self._over_limits(t)
            if reason:
                res.stop_reason = reason
                break
        res.placements, res.start, res.finish = list(self.placement), self.start.copy(), self.finish.copy()
        if not res.stop_reason:
            if self.queue:
                res.stop_reason = f"{len(self.queue)} pod(s) can never be placed on {self.cl.gpus} GPUs"
            else:
                assert not self.running
                assert np.isfinite(self.finish).all(), "every pod that starts finishes"
                res.complete = True
        if self.feed is not None:
            res.feed = self.feed.stats()
            res.scorer_calls = self.feed.rank_calls
        res.wall_s = time.perf_counter() - t_wall
        return res
