"""Placement policies, compared on the same pod stream.

- **P0** whole GPUs, one pod each (a shared pod too takes a whole GPU).
- **P1** pack by request, best fit: a shared pod goes to the GPU whose remaining GPU share
  (``milli``, memory in Alibaba's GPU sharing) is smallest but enough; the pods on a GPU
  time-slice its SMs. Today's "place wherever memory is free".
- **P2** P1's rule for what fits, and the cuagent placement scorer
  (:class:`cuagent.scheduling.Scorer`, the extender's) for where, reading a simulated feed:
  the node the scorer ranks best among those where the pod fits, the best-scored GPU there
  that fits. As the extender's ``prioritize``: when the scorer finds every candidate
  ineligible (score 0), P1's choice stands.
- **P2f** P1's best fit, among the GPUs the scorer finds eligible — enough idle SMs over its
  horizon for the pod's share and sizing, and its memory free (the extender's ``filter``
  beside kube-scheduler's bin packing); an empty GPU always passes. A shared pod no GPU passes
  for waits, and is retried every 5 minutes as kube-scheduler does; whole-GPU pods take empty
  GPUs as under P1.
- **P3** MIG right-sizing: a shared pod gets the smallest H100 MIG profile with its memory
  share and its SM sizing, on the GPU with the fewest free memory slices where that profile
  can start (lowest free slot). Whole-GPU pods take whole GPUs (7g.80gb).
- **P4** SM shares (MPS with SM limits, or green contexts): a shared pod gets its SM sizing
  rounded up to 8-SM granules, on the GPU with the fewest SMs left that has room for the
  share and for its memory share.
- **fluid** the whole cluster as one pooled device: a pod starts when the pool has its memory
  share left (the constraint every policy keeps), and all running pods share the pool's SMs
  fluidly (slowed alike only when their total demand exceeds them): no fragmentation, no
  partition rounding, no interference — a lower bound for every policy.

Whole-GPU pods (``milli`` 1000, and every multi-GPU pod) take empty GPUs on one node in every
policy: the node with the fewest empty GPUs that has enough (best fit keeps whole nodes free).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np

from .cluster import WHOLE_GPU_PROFILE, Cluster, MigProfile, mig_profile_for, sm_share

if TYPE_CHECKING:
    from .feed import Feed

POLICIES = ("P0", "P1", "P2", "P2f", "P3", "P4", "fluid")
LABELS = {
    "P0": "P0 whole GPUs",
    "P1": "P1 pack by request",
    "P2": "P2 P1 + cuagent scorer",
    "P2f": "P2f P1 + scorer as filter",
    "P3": "P3 MIG right-sizing",
    "P4": "P4 SM shares (MPS)",
    "fluid": "fluid bound",
}


@dataclass(frozen=True)
class Ask:
    """What one pod asks: ``gpus`` GPUs, ``milli`` of each (1000: whole), its SM sizing and
    memory request per GPU."""

    gpus: int
    milli: int
    sizing: float  # SMs
    memory: int  # bytes

    @property
    def whole(self) -> bool:
        return self.milli >= 1000


@dataclass(frozen=True)
class Placement:
    """Where a pod runs and what it was given on each of its GPUs."""

    gpus: tuple[int, ...]
    milli: int  # GPU share given out per GPU
    sm: int = 0  # SM share given out per GPU (P4)
    mig_mask: int = 0  # MIG memory slices per GPU (P3)
    alloc: float = 0.0  # SMs the pod may use: the GPU's for time slicing, else its partition's
    partitioned: bool = False  # alloc is a hard cap (a MIG instance, an SM share)
    isolated: bool = False  # memory bandwidth is its own (MIG)
    profile: str = ""


class Policy:
    name = ""
    #: Retry pods the feed turned away this often (s), even when no pod left: the feed's
    #: answer changes as the GPUs' activity does. None: retry only when a pod leaves.
    retry_s: Optional[float] = None
    #: Whether the last refusal was the feed's (the pod fits by request, the scorer said no).
    refused_by_feed = False

    def place(self, cl: Cluster, ask: Ask, now: float) -> Optional[Placement]:
        raise NotImplementedError

    def release(self, cl: Cluster, p: Placement) -> None:
        for g in p.gpus:
            cl.vacate(g, p.milli, p.sm, p.mig_mask)

    def _take(self, cl: Cluster, p: Placement) -> Placement:
        for g in p.gpus:
            cl.occupy(g, p.milli, p.sm, p.mig_mask)
        return p

    def _whole(self, cl: Cluster, ask: Ask, count: int, profile: str = "") -> Optional[Placement]:
        gpus = cl.whole_gpus(count)
        if gpus is None:
            return None
        return self._take(cl, Placement(tuple(gpus), 1000, cl.units, WHOLE_GPU_PROFILE.mask(0), float(cl.units),
                                        profile=profile))


def _best_fit(cl: Cluster, ok: np.ndarray, left: np.ndarray) -> Optional[int]:
    """Among ``ok`` GPUs, the one with the least ``left`` (integer, >= 0) after placing; then
    on the node with the fewest empty GPUs (keeps whole nodes free); then the lowest index."""
    idx = np.flatnonzero(ok)
    if not idx.size:
        return None
    node_empty = cl.empty_per_node[cl.node_of[idx]]
    key = (left[idx] * (cl.gpus_per_node + 1) + node_empty) * cl.gpus + idx
    return int(idx[np.argmin(key)])


class WholeGpus(Policy):
    name = "P0"

    def place(self, cl: Cluster, ask: Ask, now: float) -> Optional[Placement]:
        return self._whole(cl, ask, ask.gpus)


class PackByRequest(Policy):
    name = "P1"

    def fits(self, cl: Cluster, ask: Ask) -> np.ndarray:
        return 1000 - cl.milli >= ask.milli

    def place(self, cl: Cluster, ask: Ask, now: float) -> Optional[Placement]:
        if ask.whole:
            return self._whole(cl, ask, ask.gpus)
        g = _best_fit(cl, self.fits(cl, ask), 1000 - cl.milli - ask.milli)
        if g is None:
            return None
        return self._take(cl, Placement((g,), ask.milli, alloc=float(cl.units)))


class ScorerPlacement(PackByRequest):
    """P2: what fits by P1's rule, where by the cuagent scorer (see the module doc)."""

    name = "P2"

    def __init__(self, feed: "Feed") -> None:
        self.feed = feed

    def place(self, cl: Cluster, ask: Ask, now: float) -> Optional[Placement]:
        ok = cl.empty() if ask.whole else self.fits(cl, ask)
        if ask.whole:
            ok &= (cl.empty_per_node >= ask.gpus)[cl.node_of]
        if not ok.any():
            return None
        candidates = np.flatnonzero(ok)
        ranking = self.feed.rank(ask, now, candidates)
        score = np.zeros(cl.gpus)
        eligible = np.zeros(cl.gpus, bool)
        for d in ranking.devices():
            g = self.feed.gpu_of[d.device]
            score[g], eligible[g] = d.score, d.eligible
        good = ok & eligible & (score > 0)
        if ask.whole:
            # The node whose best ``gpus`` fitting GPUs score best (their mean, as the
            # scorer's node score); P1's node breaks ties and decides when none is eligible.
            p1 = cl.whole_gpus(ask.gpus)
            assert p1 is not None
            best_node, best = int(cl.node_of[p1[0]]), 0.0
            for n in np.unique(cl.node_of[candidates]).tolist():
                first = n * cl.gpus_per_node
                s_n = np.sort(np.where(good, score, 0.0)[first:first + int(cl.node_size[n])])[::-1][:ask.gpus]
                if s_n.size == ask.gpus and s_n.min() > 0 and s_n.mean() > best + 1e-12:
                    best_node, best = n, float(s_n.mean())
            first = best_node * cl.gpus_per_node
            members = np.arange(first, first + int(cl.node_size[best_node]))
            members = members[ok[members]]
            order = members[np.lexsort((members, -np.where(good[members], score[members], 0.0)))]
            gpus = tuple(sorted(int(g) for g in order[:ask.gpus]))
            return self._take(cl, Placement(gpus, 1000, cl.units, WHOLE_GPU_PROFILE.mask(0), float(cl.units)))
        # Among the best-scored eligible GPUs, P1's order; none eligible: P1's choice stands
        # (the extender only prioritizes).
        among = good & (score >= score[good].max() - 1e-12) if good.any() else ok
        chosen = _best_fit(cl, among, 1000 - cl.milli - ask.milli)
        assert chosen is not None
        return self._take(cl, Placement((chosen,), ask.milli, alloc=float(cl.units)))


class ScorerFilter(PackByRequest):
    """P2f: P1's best fit among the GPUs the cuagent scorer finds room on (see the module doc)."""

    name = "P2f"
    # kube-scheduler moves unschedulable pods back to its active queue at least every 5 minutes
    # (podMaxInUnschedulablePodsDuration), as well as on cluster events (a pod leaving).
    retry_s = 300.0

    def __init__(self, feed: "Feed") -> None:
        self.feed = feed

    def place(self, cl: Cluster, ask: Ask, now: float) -> Optional[Placement]:
        self.refused_by_feed = False
        if ask.whole:
            return self._whole(cl, ask, ask.gpus)  # an empty GPU is free whoever used it before
        ok = self.fits(cl, ask)
        if not ok.any():
            return None
        ranking = self.feed.rank(ask, now, np.flatnonzero(ok))
        # As the extender's filter: only a GPU whose data shows the pod cannot fit fails; one
        # without data yet passes, and so does an empty GPU (the scheduler knows it is free;
        # the horizon still remembers its last tenant).
        failed = np.zeros(cl.gpus, bool)
        for d in ranking.devices():
            g = self.feed.gpu_of[d.device]
            if not d.eligible and d.idle_units is not None and cl.pods[g] > 0:
                failed[g] = True
        chosen = _best_fit(cl, ok & ~failed, 1000 - cl.milli - ask.milli)
        self.refused_by_feed = chosen is None
        if chosen is None:
            return None  # the extender's filter: no GPU with the idle SMs the pod needs, it waits
        return self._take(cl, Placement((chosen,), ask.milli, alloc=float(cl.units)))


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.int64)


class MigRightSizing(Policy):
    name = "P3"

    def profile(self, ask: Ask) -> MigProfile:
        return mig_profile_for(ask.milli / 1000.0, ask.sizing)

    def place(self, cl: Cluster, ask: Ask, now: float) -> Optional[Placement]:
        prof = WHOLE_GPU_PROFILE if ask.whole else self.profile(ask)
        if prof is WHOLE_GPU_PROFILE:
            return self._whole(cl, ask, ask.gpus, WHOLE_GPU_PROFILE.name)
        start = np.full(cl.gpus, -1, np.int64)
        for s in reversed(prof.starts):  # the lowest free slot wins
            start[(cl.mig & prof.mask(s)) == 0] = s
        ok = start >= 0
        left = 8 - _POPCOUNT[cl.mig & 0xFF] - prof.slices
        g = _best_fit(cl, ok, left.clip(0))
        if g is None:
            return None
        s = int(start[g])
        # A MIG instance's memory share is its slices', whatever the pod asked.
        return self._take(cl, Placement((g,), 0, 0, prof.mask(s), float(prof.sms), partitioned=True, isolated=True,
                                        profile=prof.name))


class SmShares(Policy):
    name = "P4"

    def place(self, cl: Cluster, ask: Ask, now: float) -> Optional[Placement]:
        if ask.whole:
            return self._whole(cl, ask, ask.gpus)
        share = sm_share(ask.sizing, cl.units)
        if share >= cl.units:
            p = self._whole(cl, ask, 1)
            return p
        ok = (1000 - cl.milli >= ask.milli) & (cl.units - cl.sm >= share) & (cl.mig == 0)
        left = (cl.units - cl.sm - share) * 1001 + (1000 - cl.milli - ask.milli)
        g = _best_fit(cl, ok, left.clip(0))
        if g is None:
            return None
        return self._take(cl, Placement((g,), ask.milli, share, 0, float(share), partitioned=True))


class Fluid(Policy):
    """The cluster as one device: memory shares add up across GPUs, and the pooled SMs are
    shared fluidly by every running pod (the engine slows all pods alike when their total
    demand exceeds the pool)."""

    name = "fluid"

    def __init__(self) -> None:
        self.milli = 0

    def place(self, cl: Cluster, ask: Ask, now: float) -> Optional[Placement]:
        milli = ask.gpus * ask.milli
        if self.milli + milli > 1000 * cl.gpus:
            return None
        self.milli += milli
        return Placement((), milli, 0, 0, float(cl.units * cl.gpus))

    def release(self, cl: Cluster, p: Placement) -> None:
        self.milli -= p.milli


def make(name: str, feed: Optional["Feed"] = None) -> Policy:
    if name == "P0":
        return WholeGpus()
    if name == "P1":
        return PackByRequest()
    if name in ("P2", "P2f"):
        if feed is None:
            raise ValueError(f"{name} needs a simulated feed")
        return ScorerPlacement(feed) if name == "P2" else ScorerFilter(feed)
    if name == "P3":
        return MigRightSizing()
    if name == "P4":
        return SmShares()
    if name == "fluid":
        return Fluid()
    raise ValueError(f"policy {name!r}: expected one of {', '.join(POLICIES)}")


def ask_of(gpus: int, milli: int, sizing: float, memory: float) -> Ask:
    return Ask(int(gpus), int(milli), float(sizing), int(math.ceil(memory)))
