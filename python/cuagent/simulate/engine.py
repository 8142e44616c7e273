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


#: Pod classes every target holds for separately: shared (a fraction of a GPU), whole (one
#: GPU), multi (several GPUs on one node). A percentile over all pods would let a policy starve
#: the few multi-GPU pods (about 1 % of the 2023 stream) and still meet it.
CLASSES = ("shared", "whole", "multi")


def pod_classes(gpus: np.ndarray, milli: np.ndarray) -> np.ndarray:
    return np.where(gpus > 1, 2, np.where(milli >= 1000, 1, 0)).astype(np.int64)


@dataclass
class Limits:
    """Stop a run early once it cannot meet the target: in some class, more than ``share`` of
    the pods waited longer than that class's ``wait_s``, or were slowed by more than
    ``slowdown``."""

    wait_s: tuple[float, ...]  # per class (CLASSES)
    slowdown: float
    share: float = 0.05
    pooled: bool = False  # one class: all pods (wait_s[0])


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
    gpus_per_pod: np.ndarray
    klass: np.ndarray  # per pod: index into CLASSES
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
                 limits: Optional[Limits] = None, track_peak: bool = False) -> None:
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
        # Whether pods share GPUs at all (not P0): the memory-binding figure is theirs.
        self.sharing = policy.name not in ("P0", "fluid")
        # Follow the whole cluster's SM demand minute by minute (its peak): costs a full pass.
        self.track_peak = track_peak
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
        self.blocked: set[int] = set()  # waiting pods the feed turned away (retried on a timer)
        self.mem_reserved = np.zeros(cluster.gpus)  # memory share given out per GPU
        self.shared_pods = np.zeros(cluster.gpus, np.int64)  # shared (fractional) pods per GPU
        self.memory_share = 0.0  # memory shares of the running pods, in GPUs
        self._dirty = True
        self.klass = pod_classes(pods.gpus, pods.milli)
        if limits is not None and limits.pooled:
            self.klass = np.zeros(n, np.int64)
        self.class_n = np.bincount(self.klass, minlength=len(CLASSES))
        self.late_wait = np.zeros(len(CLASSES), np.int64)
        self.late_slow = np.zeros(len(CLASSES), np.int64)
        self.res = Result(policy.name, model.key, cluster.gpus, n, cluster.units, False, "", np.full(n, np.nan), np.full(n, np.nan),
                          pods.ls.copy(), pods.milli >= 1000, pods.gpus.copy(), pod_classes(pods.gpus, pods.milli),
                          [""] * n)
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
        self.g_mem = self.mem_reserved[self.gids]
        self.g_shared = self.shared_pods[self.gids] > 0
        # Rows whose speed can drop below 1 (sharing a GPU, or capped by a partition), and
        # rows on GPUs hosting a shared pod (the memory-binding figure and the feed read them
        # minute by minute), are integrated minute by minute; a pod alone on its GPU with all
        # of it runs at speed 1 and only its demand integral is needed (prefix sums).
        if self.fluid or self.track_peak:
            minute_rows = np.ones(pod.size, bool)
        else:
            ri = np.where(on, self.r_inv, 0)
            minute_rows = on & ((per_gpu[ri] > 1) | capped | (self.sharing & self.g_shared[ri]))
        self.m_rows = np.flatnonzero(minute_rows)
        self.t_rows = np.flatnonzero(~minute_rows)
        m_gpu = self.r_gpu[self.m_rows]
        if self.fluid:  # one pooled device, no GPU of its own
            self.m_gids, self.m_inv = np.zeros(0, np.int64), np.zeros(self.m_rows.size, np.int64)
        else:
            self.m_gids, m_inv = np.unique(m_gpu, return_inverse=True)
            self.m_inv = m_inv.reshape(-1)
        self.pen = None
        if self.model.kind == "measured" and self.m_rows.size:
            self.pen = slowdown.penalties(self.factors, self.prof.job[pod[self.m_rows]], m_gpu,
                                          self.r_iso[self.m_rows], pod[self.m_rows])
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
        if self.r_pod.size == 0 or t1 <= t0:
            return t1, []
        pods = self.r_pod
        batch_all = self.r_prim & ~self.r_ls
        if batch_all.any():
            # Look no further ahead than the first batch pod would need at half speed (slower
            # pods just take another step): no speeds are computed for minutes never reached.
            t1 = min(t1, t0 + max(MINUTE, 2.0 * float(self.work[pods[batch_all]].min())))
        rows = self.m_rows
        m_first = int(t0 // MINUTE)
        if rows.size:
            cells = max(1, CHUNK_CELLS // rows.size)
            if math.isinf(t1) or int(math.ceil(t1 / MINUTE)) - m_first > cells:
                t1 = min(t1, (m_first + cells) * MINUTE)
        assert math.isfinite(t1)
        t_end = t1
        finished: list[int] = []
        # Pods at speed 1: a batch pod finishes when its work runs out.
        tb = self.t_rows[batch_all[self.t_rows]]
        if tb.size:
            t_fin = t0 + self.work[pods[tb]]
            if float(t_fin.min()) <= t_end:
                t_end = float(t_fin.min())
        res = self.res
        count = 0
        if rows.size:
            count = max(1, int(math.ceil(t1 / MINUTE)) - m_first)
            mins = m_first + np.arange(count)
            seg_start = np.maximum(mins * MINUTE, t0)
            seg_end = np.minimum((mins + 1) * MINUTE, t1)
            k = mins[None, :] - self.minute0[pods[rows]][:, None]
            demand = self.prof.demand(pods[rows], k)
            if self.fluid:
                # One pooled device: every pod shares the cluster's SMs, nothing interferes.
                pool = self.cl.units * self.cl.gpus
                speed, cap = slowdown.speeds(slowdown.Model("analytic"), demand, pool, np.zeros(rows.size, np.int64), 1,
                                             np.zeros(rows.size, bool), np.full(rows.size, float(pool)),
                                             np.zeros(rows.size, bool), None)
            else:
                speed, cap = slowdown.speeds(self.model, demand, self.cl.units, self.m_inv, int(self.m_gids.size),
                                             self.r_part[rows], self.r_alloc[rows], self.r_iso[rows], self.pen)
            mb = np.flatnonzero(batch_all[rows])
            if mb.size:
                prog = speed[mb] * (seg_end - seg_start)
                cum = np.cumsum(prog, axis=1)
                need = self.work[pods[rows[mb]]]
                done = np.flatnonzero(cum[:, -1] >= need - 1e-9)
                if done.size:
                    kk = np.argmax(cum[done] >= (need[done] - 1e-9)[:, None], axis=1)
                    before = cum[done, kk] - prog[done, kk]
                    t_fin_m = seg_start[kk] + (need[done] - before) / speed[mb[done], kk]
                    t_end = min(t_end, float(t_fin_m.min()))
                    finished += pods[rows[mb[done[t_fin_m <= t_end + 1e-6]]]].tolist()
        if tb.size:
            finished += pods[tb[t0 + self.work[pods[tb]] <= t_end + 1e-6]].tolist()
        span = t_end - t0
        # Speed 1 rows.
        t_rows = self.t_rows
        if t_rows.size:
            self.work[pods[tb]] -= span
            self.inv_speed_s[pods[t_rows[self.r_prim[t_rows] & self.r_ls[t_rows]]]] += span
            integral = self.prof.integral(pods[t_rows], self.minute0[pods[t_rows]], t0, t_end)
            res.served_sm_s += float(integral.sum())
            if self.feed is not None:
                on = self.r_gpu[t_rows] >= 0
                self.feed.integrate(self.r_gpu[t_rows][on], integral[on] / self.cl.units, np.zeros(int(on.sum())))
                ls_gpus = self.r_gpu[t_rows][on & self.r_ls[t_rows]]
                self.feed.changed[ls_gpus] = np.maximum(self.feed.changed[ls_gpus], t_end)
        if rows.size:
            used = np.clip(np.minimum(seg_end, t_end) - seg_start, 0.0, None)
            if mb.size:
                self.work[pods[rows[mb]]] -= speed[mb] @ used
            ml = np.flatnonzero(self.r_prim[rows] & self.r_ls[rows])
            if ml.size:
                self.inv_speed_s[pods[rows[ml]]] += (used / speed[ml]) @ np.ones(count)
            res.served_sm_s += float(((demand * speed) @ used).sum())
            if self.track_peak:
                res.peak_sm_gpus = max(res.peak_sm_gpus,
                                       float(demand.sum(axis=0)[used > 0].max(initial=0.0)) / self.cl.units)
            self._per_gpu_minutes(rows, demand, speed, cap, k, count, seg_start, used, span)
        self.work[finished] = 0.0
        res.occupied_gpu_s += self.occupied * span
        return t_end, finished

    def _per_gpu_minutes(self, rows: np.ndarray, demand: np.ndarray, speed: np.ndarray, cap: np.ndarray,
                         k: np.ndarray, count: int, seg_start: np.ndarray, used: np.ndarray, span: float) -> None:
        """Figures per GPU and minute: which limit binds on GPUs hosting shared pods, and the
        activity (and interference) the feed publishes."""
        n_g = int(self.m_gids.size)
        if not n_g:
            return
        res = self.res
        flat = (self.m_inv[:, None] * count + np.arange(count)).ravel()
        g_demand = np.bincount(flat, weights=demand.ravel(), minlength=n_g * count).reshape(n_g, count)
        g_sm = np.minimum(1.0, g_demand / self.cl.units)
        lut = self._lut
        lut[self.gids] = np.arange(self.gids.size)
        shared = self.g_shared[lut[self.m_gids]] if self.sharing else np.zeros(n_g, bool)
        if shared.any():
            res.shared_gpu_s += float(shared.sum()) * span
            g_mem = self.g_mem[lut[self.m_gids]]
            res.memory_binds_reserved_s += float(((g_mem[shared, None] > g_sm[shared]) @ used).sum())
            mem = self.prof.memory(self.r_pod[rows], k) / self.cl.memory_bytes
            held = np.bincount(flat, weights=mem.ravel(), minlength=n_g * count).reshape(n_g, count)
            res.memory_binds_used_s += float(((held[shared] > g_sm[shared]) @ used).sum())
        if self.feed is not None:
            served_g = np.bincount(flat, weights=(demand * speed).ravel(), minlength=n_g * count)
            capped_g = np.bincount(flat, weights=(demand * cap).ravel(), minlength=n_g * count)
            with np.errstate(invalid="ignore", divide="ignore"):
                stall = np.where(capped_g > 0, 1.0 - served_g / capped_g, 0.0).reshape(n_g, count)
            self.feed.integrate(self.m_gids, g_sm @ used, (g_sm * stall) @ used)
            # A GPU whose activity moved within the interval changed then (for the feed's
            # convergence rule): at the start of its last differing minute.
            if count > 1:
                diff = np.diff(g_sm, axis=1) != 0
                moved = np.flatnonzero(diff.any(axis=1))
                if moved.size:
                    last = count - 1 - np.argmax(diff[moved][:, ::-1], axis=1)
                    g = self.m_gids[moved]
                    self.feed.changed[g] = np.maximum(self.feed.changed[g], seg_start[last])

    # ------------------------------------------------------------------ events
    def _try_place(self, p: int, now: float) -> bool:
        ask: Ask = self.asks[p]
        pl = self.policy.place(self.cl, ask, now)
        if pl is None:
            if self.policy.refused_by_feed:
                self.blocked.add(p)
            else:
                self.blocked.discard(p)
            return False
        self.blocked.discard(p)
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
        if self.limits is not None and wait > self.limits.wait_s[self.klass[p]]:
            self.late_wait[self.klass[p]] += 1
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
            self.late_slow[self.klass[p]] += 1
        self._dirty = True

    def _over_limits(self, now: float) -> str:
        lim = self.limits
        if lim is None:
            return ""
        allowed = lim.share * self.class_n
        waiting = np.zeros(len(CLASSES), np.int64)
        shortest = min(lim.wait_s)
        for q in self.queue:  # in arrival order: stop at the first that has not waited long
            if now - self.pods.arrival[q] <= shortest:
                break
            if now - self.pods.arrival[q] > lim.wait_s[self.klass[q]]:
                waiting[self.klass[q]] += 1
        for c, name in enumerate(("all",) if lim.pooled else CLASSES):
            if self.late_wait[c] + waiting[c] > allowed[c]:
                return f"more than {lim.share:.0%} of {name} pods waited over {lim.wait_s[c]:g} s"
            if self.late_slow[c] > allowed[c]:
                return f"more than {lim.share:.0%} of {name} pods slowed over {lim.slowdown:g}x"
        return ""

    def run(self) -> Result:
        t_wall = time.perf_counter()
        arrival = self.pods.arrival
        nxt = 0
        t = 0.0
        res = self.res
        retry_s = self.policy.retry_s
        next_retry = math.inf
        while True:
            next_arrival = float(arrival[nxt]) if nxt < self.n else math.inf
            next_end = self.ls_ends[0][0] if self.ls_ends else math.inf
            target = min(next_arrival, next_end, next_retry)
            if not self.running and math.isinf(min(next_arrival, next_end)) and \
                    (math.isinf(next_retry) or not self.queue):
                break  # nothing runs, nothing will arrive: done (or stuck with a queue)
            t, finished = self._advance(t, target) if self.running else (target, [])
            timer = t >= next_retry - 1e-9
            next_retry = math.inf
            departed = False
            for p in finished:
                self._depart(p, t)
                departed = True
            while self.ls_ends and self.ls_ends[0][0] <= t + 1e-9:
                _, p = heapq.heappop(self.ls_ends)
                self._depart(p, t)
                departed = True
            if (departed or timer) and self.queue:
                still = []
                for q in self.queue:
                    # On the timer, only the pods the feed turned away: nothing else changed.
                    if (not departed and q not in self.blocked) or not self._try_place(q, t):
                        still.append(q)
                self.queue = still
            while nxt < self.n and arrival[nxt] <= t + 1e-9:
                p = nxt
                nxt += 1
                if not self._try_place(p, t):
                    self.queue.append(p)
            if retry_s is not None and self.blocked and self.running:
                next_retry = t + retry_s
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
