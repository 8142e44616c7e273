"""Placement scoring: ranks nodes, GPUs and MIG partitions for a :class:`Request`.

One scorer serves every consumer — the Kubernetes extender (``cuagent extender``), the
placement simulator and any scheduler that imports it — so what a simulation measures is
what the extender does::

    from cuagent.client import Client
    from cuagent.scheduling import Request, Scorer

    with Client(["tcp://relay:7720"]) as client:
        scorer = Scorer(client.view)
        client.on_update(scorer.observe)       # every window is folded into the horizon
        client.wait_ready(5)
        client.poll(2.0)
        ranking = scorer.rank(Request(gpus=2, units=32))
        ranking.nodes[0]                       # NodeScore(node, score, devices)
        ranking.devices(limit=5)               # best GPUs, with why

What a device scores (each term in [0, 1], weights in :class:`Weights`):

- **idle** — idle unit-equivalents (``idle_units``, SM/CU-equivalents) over a recent horizon:
  an exponentially weighted mean with time constant ``horizon_s`` (default 10 s) over every
  window received, so one quiet window between two bursts does not make a GPU look free;
- **groups** — units in whole idle GPCs/XCDs: a group counts when all its units were idle in
  at least ``group_quorum`` (90 %) of the horizon's windows (same weighting). Work that is
  placed on a whole idle GPC shares no SM, L1 or GPC-level resource with what runs there;
- **memory** — free device memory (``memory_bytes − mem_used`` of the latest window) over
  total; unknown memory earns nothing;
- **thrashing** (a penalty) — the horizon's share of units in the thrashing state.

A device that measures no element states (NVML: no state level) has neither idle groups nor
thrashing units measured: it earns no group credit and takes no thrashing penalty, and its
:class:`DeviceScore` says None for them (null in the extender's JSON), never 0.

A device is *eligible* when its node is fresh (heard within the client's stale limit, and
its latest window at most ``max_age_s`` old), it measures activity, its vendor matches, its
free memory (where known) covers ``memory_bytes``, and it has room: an exclusive request
needs a free GPU (idle share >= ``free_idle_min``, and >= ``units`` idle units when given);
a sharing request (``shared`` or a fraction) needs ``units`` (or ``gpus × units`` for a
fraction) idle units. A node's score is the mean of its ``count`` best eligible devices, 0
when it has fewer. MIG requests rank the node's partitions of the asked profile the same
way (idle share and memory of each partition). A stale or lost node, a device without a
recent window and a node the view does not know all score 0 — never an error.

:meth:`Scorer.rank` is pure: it reads what :meth:`Scorer.observe` folded in and the view's
staleness flags, and returns the same answer for the same inputs and ``now_ns``. It works on
column arrays (one row per device), so ranking 1,000 nodes × 8 GPUs takes a few ms
(bench/scorer.py).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Iterable, NamedTuple, Optional, Sequence

import numpy as np

from .. import wire
from ..client import ClusterView, DeviceView
from ..feed.freshness import STALE_AFTER_S, limit_ns
from .request import Request

VENDOR_CODES = {"nvidia": 1, "amd": 2, "mock": 3}
_MOCK = VENDOR_CODES["mock"]


@dataclass(frozen=True)
class Weights:
    """How much each term counts. ``idle + groups + memory`` is the best score (normalised
    to 1); ``thrashing`` is subtracted per unit share that thrashes."""

    idle: float = 0.6
    groups: float = 0.25
    memory: float = 0.15
    thrashing: float = 0.5

    def __post_init__(self) -> None:
        for name in ("idle", "groups", "memory", "thrashing"):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"weight {name} must be a finite number >= 0, got {v!r}")
        if self.idle + self.groups + self.memory <= 0:
            raise ValueError("at least one of the idle, groups and memory weights must be > 0")


class NodeScore(NamedTuple):
    node: str
    score: float  # 0..1; 0: ineligible, stale or unknown
    devices: tuple[str, ...]  # the devices (or "device/partition" for MIG) that make the score


class DeviceScore(NamedTuple):
    node: str
    device: str
    score: float
    eligible: bool
    idle_units: Optional[float]  # horizon mean
    units: int
    idle_groups: Optional[tuple[int, ...]]  # GPCs/XCDs idle over the horizon; None: not measured
    idle_group_units: Optional[float]  # units in them; None: not measured (no states, or no groups)
    thrashing: Optional[float]  # share of units thrashing (horizon mean); None: not measured
    free_memory: Optional[int]


class PartitionScore(NamedTuple):
    node: str
    device: str
    partition: str
    profile: str
    score: float
    eligible: bool
    idle_units: Optional[float]
    units: int
    free_memory: Optional[int]


def _profile(p: str) -> str:
    """``"MIG 1g.10gb"`` -> ``"1g.10gb"``: the form Kubernetes resource names use."""
    return p[4:] if p.startswith("MIG ") else p


class _Track:
    """What one device's horizon keeps beyond its column row: its topology, group EWMAs."""

    __slots__ = ("topology", "ts", "group_level", "group_units", "group_anc", "group_valid", "group_ewma", "partitions")

    def __init__(self, topology: wire.Device) -> None:
        self.topology = topology
        self.ts = 0
        self.group_level: Optional[str] = None
        self.group_units: Optional[np.ndarray] = None
        self.group_anc: Optional[np.ndarray] = None  # each placed unit's group
        self.group_valid: Optional[np.ndarray] = None  # units the layout places in a group
        self.group_ewma: Optional[np.ndarray] = None
        level = topology.levels[0]
        n = topology.counts.get(level)
        layout = topology.layout.get(level)
        if len(topology.levels) > 1 and n and layout is not None:
            valid = layout < n
            self.group_level = level
            self.group_units = np.bincount(layout[valid], minlength=n).astype(np.float64)
            self.group_anc, self.group_valid = layout[valid].astype(np.intp), valid
        self.partitions: list[int] = []  # partition rows


class _Columns:
    """Growable column arrays, one row per device (or per partition)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self._spec = spec
        self.n = 0
        self._cap = 0
        self.cols: dict[str, np.ndarray] = {}
        self._grow(64)

    def _grow(self, cap: int) -> None:
        for name, (dtype, fill) in self._spec.items():
            new = np.full(cap, fill, dtype)
            if name in self.cols:
                new[: self.n] = self.cols[name][: self.n]
            self.cols[name] = new
        self._cap = cap

    def add(self) -> int:
        if self.n == self._cap:
            self._grow(self._cap * 2)
        self.n += 1
        return self.n - 1

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name][: self.n]

    def set(self, row: int, **values: Any) -> None:
        for k, v in values.items():
            self.cols[k][row] = v


_DEVICE_COLS = {
    "node": (np.int32, 0), "alive": (bool, False), "vendor": (np.int8, 0), "units": (np.float64, 0.0),
    # NaN: not measured (idle_units, groups, thrashing, free memory), which the score counts as 0.
    "idle": (np.float64, np.nan), "groups": (np.float64, np.nan), "thrash": (np.float64, np.nan),
    "mem_total": (np.float64, 0.0), "mem_free": (np.float64, np.nan), "ts": (np.int64, 0),
    # How old its latest window may be (max_age_s, or three of its windows where longer).
    "max_age": (np.int64, 0),
}
_PARTITION_COLS = {
    "node": (np.int32, 0), "device": (np.int32, 0), "alive": (bool, False), "profile": (np.int32, -1),
    "units": (np.float64, 0.0), "idle": (np.float64, np.nan), "mem_total": (np.float64, 0.0),
    "mem_free": (np.float64, np.nan),
}


class Scorer:
    """Follows a :class:`~cuagent.client.ClusterView` and ranks placements on it.

    Feed it every update of the view's client (``client.on_update(scorer.observe)``), or call
    :meth:`fold` per window yourself (a simulator does). ``horizon_s``: time constant of the
    horizon. ``max_age_s``: a device whose latest window is older scores 0. ``free_idle_min``:
    idle share at which a GPU counts as free for an exclusive request. ``group_quorum``: share
    of the horizon a GPC/XCD must have been wholly idle to count as an idle group."""

    def __init__(self, view: ClusterView, horizon_s: float = 10.0, max_age_s: float = STALE_AFTER_S,
                 weights: Weights = Weights(), free_idle_min: float = 0.9, group_quorum: float = 0.9) -> None:
        for name, v in (("horizon_s", horizon_s), ("max_age_s", max_age_s)):
            if not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be > 0, got {v!r}")
        for name, v in (("free_idle_min", free_idle_min), ("group_quorum", group_quorum)):
            if not 0 < v <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {v!r}")
        self.view = view
        self.horizon_s = horizon_s
        self.max_age_s = max_age_s
        self.weights = weights
        self.free_idle_min = free_idle_min
        self.group_quorum = group_quorum
        self._dev = _Columns(_DEVICE_COLS)
        self._part = _Columns(_PARTITION_COLS)
        self._rows: dict[tuple[str, str], int] = {}
        self._keys: list[tuple[str, str]] = []
        self._tracks: list[Optional[_Track]] = []
        self._prows: dict[tuple[str, str, str], int] = {}
        self._pkeys: list[tuple[str, str, str]] = []
        self._node_index: dict[str, int] = {}
        self._node_names: list[str] = []
        self._profiles: dict[str, int] = {}

    @classmethod
    def from_view(cls, view: ClusterView, **options: Any) -> "Scorer":
        """A scorer that has seen one window: each device's latest state in ``view`` (for a
        one-off ranking without history)."""
        scorer = cls(view, **options)
        for node in view.nodes.values():
            for dv in node.devices.values():
                if dv.state is not None:
                    scorer.fold(node.name, dv.id, dv.ts, dv.state)
        return scorer

    # ------------------------------------------------------------------ following the view
    def observe(self, update: Any) -> None:
        """A :class:`~cuagent.client.Update` from the client (``Client.on_update``)."""
        kind = update.kind
        if kind == "state" and update.header is not None:
            self.fold(update.node, update.device, update.header.ts, update.body)
        elif kind == "topo":
            self._retopo(update.node)
        elif kind in ("restart", "gone"):
            self._forget(update.node)

    def _retopo(self, node: str) -> None:
        nv = self.view.nodes.get(node)
        for (n, dev), row in self._rows.items():
            if n != node:
                continue
            dv = nv.devices.get(dev) if nv is not None else None
            track = self._tracks[row]
            if dv is None or dv.lost:
                # Gone, or lost (§3.1: never available): its last window says nothing now. It
                # starts a new horizon with its first window back.
                self._kill(row)
            elif track is not None and not _same_shape(track.topology, dv.topology):
                self._kill(row)  # a new shape starts a new horizon at its next window

    def _forget(self, node: str) -> None:
        for (n, _dev), row in self._rows.items():
            if n == node:
                self._kill(row)

    def _kill(self, row: int) -> None:
        self._dev.set(row, alive=False, idle=np.nan, groups=np.nan, thrash=np.nan, mem_free=np.nan, ts=0)
        track = self._tracks[row]
        if track is not None:
            for prow in track.partitions:
                self._part.set(prow, alive=False)
        self._tracks[row] = None

    def _node(self, node: str) -> int:
        i = self._node_index.get(node)
        if i is None:
            i = self._node_index[node] = len(self._node_names)
            self._node_names.append(node)
        return i

    def fold(self, node: str, device: Optional[str], ts: int, state: Any) -> None:
        """Fold one window (a decoded :class:`~cuagent.wire.State` of ``device`` on
        ``node``, whose header ``ts`` is given) into the horizon. The device's topology is
        taken from the view."""
        nv = self.view.nodes.get(node)
        dv = nv.devices.get(device) if nv is not None and device is not None else None
        if dv is None or state is None or device is None:
            return
        topo = dv.topology
        key = (node, device)
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = self._dev.add()
            self._keys.append(key)
            self._tracks.append(None)
        track = self._tracks[row]
        if track is None or track.topology is not topo:
            if track is not None and _same_shape(track.topology, topo):
                track.topology = topo  # a re-published topo: keep the horizon
            else:
                if track is not None:
                    self._kill(row)
                track = self._tracks[row] = _Track(topo)
        if track.ts and ts <= track.ts:
            return  # not newer than what was folded (a replay)
        alpha = 1.0 if not track.ts else -math.expm1(-(ts - track.ts) / 1e9 / self.horizon_s)
        track.ts = ts
        d = self._dev
        units = float(topo.units)
        view = DeviceView(node, topo, state)  # the window at hand, with the view's helpers
        idle = state.idle_units
        old_idle = d.cols["idle"][row]
        if idle is None or not math.isfinite(idle):
            new_idle = np.nan
        elif math.isnan(old_idle) or alpha >= 1.0:
            new_idle = float(idle)
        else:
            new_idle = old_idle + alpha * (float(idle) - old_idle)
        thrash, indicator = self._measure(track, view)
        old_thrash = d.cols["thrash"][row]
        # As idle units: a window that does not measure it makes it unknown, and the next one
        # that does starts its mean again.
        if thrash is None:
            new_thrash = np.nan
        elif math.isnan(old_thrash) or alpha >= 1.0:
            new_thrash = thrash
        else:
            new_thrash = old_thrash + alpha * (thrash - old_thrash)
        groups = np.nan
        if indicator is not None and track.group_units is not None:
            if track.group_ewma is None or alpha >= 1.0:
                track.group_ewma = indicator
            else:
                track.group_ewma += alpha * (indicator - track.group_ewma)
            groups = float(track.group_units[track.group_ewma >= self.group_quorum].sum())
        else:
            track.group_ewma = None
        used = state.device.get("mem_used")
        mem_free = float(topo.memory_bytes - used) if used is not None and topo.memory_bytes else np.nan
        # Freshness is judged against rank()'s `now` (this host's clock): the window's end is
        # moved onto it by the node's clock offset where its heartbeats tell it, so an agent
        # whose clock is seconds off is neither always stale nor kept current when dead.
        local_ts = ts
        if nv is not None and nv.clock.known:
            local_ts = ts + (time.time_ns() - nv.clock.now_ns())
        d.set(row, node=self._node(node), alive=True, vendor=VENDOR_CODES.get(topo.vendor, 0), units=units,
              idle=new_idle, groups=groups, thrash=new_thrash, mem_total=float(topo.memory_bytes),
              mem_free=mem_free, ts=local_ts, max_age=limit_ns(self.max_age_s, int(state.window_ns)))
        if len(topo.partitions) > 1 or topo.partitions[0].kind != "whole":
            self._fold_partitions(node, row, track, view, alpha)

    @staticmethod
    def _measure(track: _Track, view: DeviceView) -> tuple[Optional[float], Optional[np.ndarray]]:
        """(share of units thrashing, per group 1.0 if all its units are idle) of one window;
        None for what it does not measure (no states; no groups, or states the layout cannot
        place in them). The common shapes (states per unit, or per GPC/XCD) take a direct
        path; anything else goes through the view's helpers, which say the same more slowly."""
        topo, state = view.topology, view.state
        assert state is not None
        found = view.finest_state()
        units = float(topo.units)
        if found is None:
            return None, None
        level, states = found
        if level == topo.unit and track.group_anc is not None and track.group_units is not None:
            thrash = float(np.count_nonzero(states == wire.THRASHING)) / units
            busy = np.bincount(track.group_anc, weights=states[track.group_valid] != wire.IDLE,
                               minlength=track.group_units.shape[0])
            return thrash, ((busy == 0) & (track.group_units > 0)).astype(np.float64)
        if level == track.group_level and track.group_units is not None:
            thrash = float(track.group_units[states == wire.THRASHING].sum()) / units
            return thrash, ((states == wire.IDLE) & (track.group_units > 0)).astype(np.float64)
        unit_states = view.unit_states()
        if unit_states is None:
            return None, None  # states of elements whose units the layout does not give
        thrash = float(np.count_nonzero(unit_states == wire.THRASHING)) / units
        if track.group_level is None or track.group_units is None:
            return thrash, None
        indicator = np.zeros(track.group_units.shape[0])
        idle_groups = view.idle_groups(track.group_level)
        if idle_groups:
            indicator[idle_groups] = 1.0
        return thrash, indicator

    def _fold_partitions(self, node: str, row: int, track: _Track, view: DeviceView, alpha: float) -> None:
        p = self._part
        idle_by_pid = view.partition_idle_units()
        state = view.state
        assert state is not None
        rows = []
        for part in view.topology.partitions:
            key = (node, view.id, part.id)
            prow = self._prows.get(key)
            if prow is None:
                prow = self._prows[key] = p.add()
                self._pkeys.append(key)
            rows.append(prow)
            code = self._profiles.setdefault(_profile(part.profile), len(self._profiles))
            idle = idle_by_pid.get(part.id)
            old = p.cols["idle"][prow]
            if idle is None:
                new = np.nan
            elif math.isnan(old) or alpha >= 1.0 or prow not in track.partitions:
                new = idle
            else:
                new = old + alpha * (idle - old)
            used = state.partition.get(part.id, {}).get("mem_used")
            free = float(part.memory_bytes - used) if used is not None and part.memory_bytes else np.nan
            p.set(prow, node=self._node(node), device=row, alive=True, profile=code, units=float(part.units),
                  idle=new, mem_total=float(part.memory_bytes), mem_free=free)
        for gone in set(track.partitions) - set(rows):
            p.set(gone, alive=False)
        track.partitions = rows

    # ------------------------------------------------------------------ ranking
    def _node_ok(self) -> np.ndarray:
        """Per node index: known to the view and not stale."""
        nodes = self.view.nodes
        ok = [(nv := nodes.get(name)) is not None and not nv.stale for name in self._node_names]
        return np.array(ok, dtype=bool) if ok else np.zeros(0, bool)

    def _fresh(self, now_ns: int, node_ok: np.ndarray) -> np.ndarray:
        d = self._dev
        if not d.n:
            return np.zeros(0, bool)
        return np.asarray(d["alive"] & (now_ns - d["ts"] <= d["max_age"]) & node_ok[d["node"]], bool)

    def _vendor_ok(self, request: Request) -> np.ndarray:
        vendor = self._dev["vendor"]
        if request.vendor is None:
            return np.ones(vendor.shape, bool)
        # A simulated device stands in for either vendor, so the mock driver can drive a
        # Kubernetes extender end to end.
        return np.asarray((vendor == VENDOR_CODES[request.vendor]) | (vendor == _MOCK), bool)

    def rank(self, request: Request, now_ns: Optional[int] = None, nodes: Optional[Iterable[str]] = None) -> "Ranking":
        """Rank ``nodes`` (default: every node seen) for ``request`` at ``now_ns`` (default
        now). Pure: nothing in the scorer or the view changes."""
        if now_ns is None:
            now_ns = time.time_ns()
        node_ok = self._node_ok()
        fresh = self._fresh(now_ns, node_ok)
        if request.mig_profile is not None:
            rows_node, score, eligible = self._score_partitions(request, fresh)
        else:
            rows_node, score, eligible = self._score_devices(request, fresh)
        node_score, chosen = _top_k(rows_node, score, eligible, request.count, len(self._node_names))
        return Ranking(self, request, now_ns, score, eligible, node_score, chosen, fresh, nodes)

    def _score_devices(self, request: Request, fresh: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d, w = self._dev, self.weights
        units = d["units"]
        with np.errstate(invalid="ignore", divide="ignore"):
            idle = d["idle"]
            known = np.isfinite(idle) & (units > 0)
            idle_share = np.where(known, idle / np.where(units > 0, units, 1.0), 0.0)
            mem_known = np.isfinite(d["mem_free"]) & (d["mem_total"] > 0)
            mem_share = np.where(mem_known, d["mem_free"] / np.where(mem_known, d["mem_total"], 1.0), 0.0)
            # Not measured (NaN): no group credit, no thrashing penalty.
            groups_known = np.isfinite(d["groups"]) & (units > 0)
            group_share = np.where(groups_known, d["groups"] / np.where(units > 0, units, 1.0), 0.0)
            thrash = np.where(np.isfinite(d["thrash"]), d["thrash"], 0.0)
        total = w.idle + w.groups + w.memory
        score = (w.idle * idle_share + w.groups * group_share + w.memory * np.clip(mem_share, 0, 1)) / total
        score = np.clip(score - w.thrashing * thrash, 0.0, 1.0)
        demand: Optional[np.ndarray] = None
        if request.fraction:
            demand = units * request.gpus
            if request.units is not None:
                demand = np.maximum(demand, request.units)
        elif request.units is not None:
            demand = np.full(units.shape, float(request.units))
        room = known.copy()
        if demand is not None:
            room &= np.where(known, idle, 0.0) >= demand
        if not request.sharing:
            room &= idle_share >= self.free_idle_min
        if request.memory_bytes is not None:
            room &= ~mem_known | (np.where(mem_known, d["mem_free"], 0.0) >= request.memory_bytes)
        eligible = fresh & self._vendor_ok(request) & room
        return d["node"], np.where(eligible, score, 0.0), eligible

    def _score_partitions(self, request: Request, fresh: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p, w = self._part, self.weights
        code = self._profiles.get(request.mig_profile or "")
        if not p.n or code is None:
            return p["node"], np.zeros(p.n), np.zeros(p.n, bool)
        dev_rows = p["device"]
        units = p["units"]
        with np.errstate(invalid="ignore", divide="ignore"):
            known = np.isfinite(p["idle"]) & (units > 0)
            idle_share = np.where(known, p["idle"] / np.where(units > 0, units, 1.0), 0.0)
            mem_known = np.isfinite(p["mem_free"]) & (p["mem_total"] > 0)
            mem_share = np.where(mem_known, p["mem_free"] / np.where(mem_known, p["mem_total"], 1.0), 0.0)
        total = w.idle + w.memory
        score = (w.idle * idle_share + w.memory * np.clip(mem_share, 0, 1)) / total if total > 0 else idle_share
        room = known & (p["profile"] == code) & p["alive"]
        if not request.sharing:
            room &= idle_share >= self.free_idle_min
        if request.units is not None:
            room &= np.where(known, p["idle"], 0.0) >= request.units
        if request.memory_bytes is not None:
            room &= ~mem_known | (np.where(mem_known, p["mem_free"], 0.0) >= request.memory_bytes)
        eligible = fresh[dev_rows] & self._vendor_ok(request)[dev_rows] & room
        return p["node"], np.where(eligible, np.clip(score, 0.0, 1.0), 0.0), eligible


def _same_shape(a: wire.Device, b: wire.Device) -> bool:
    return (a.counts == b.counts and a.levels == b.levels and a.units == b.units
            and [(p.id, p.units, p.profile) for p in a.partitions] == [(p.id, p.units, p.profile) for p in b.partitions]
            and set(a.layout) == set(b.layout) and all(np.array_equal(a.layout[k], b.layout[k]) for k in a.layout))


def _top_k(rows_node: np.ndarray, score: np.ndarray, eligible: np.ndarray, k: int,
           n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per node: the mean of its ``k`` best eligible rows' scores (0 with fewer than ``k``),
    and which rows those are (row indices in node order, best first)."""
    if not rows_node.size or not n_nodes:
        return np.zeros(n_nodes), np.zeros(0, np.intp)
    # Best first within each node; ineligible rows last; ties by row (stable: first seen).
    key = np.where(eligible, -score, 1.0)
    order = np.lexsort((key, rows_node))
    sorted_node = rows_node[order]
    starts = np.flatnonzero(np.r_[True, sorted_node[1:] != sorted_node[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, sorted_node.size]))
    take = ((np.arange(sorted_node.size) - first) < k) & eligible[order]
    picked = order[take]
    counts = np.bincount(rows_node[picked], minlength=n_nodes)
    sums = np.bincount(rows_node[picked], weights=score[picked], minlength=n_nodes)
    node_score = np.where(counts >= k, sums / k, 0.0)
    return node_score, picked


class Ranking:
    """The answer of :meth:`Scorer.rank`: a score per node asked about, nodes best first, and
    on demand the devices or partitions behind each score (built lazily: the extender needs
    only the scores, so ranking a large fleet stays a few array operations)."""

    def __init__(self, scorer: Scorer, request: Request, now_ns: int, score: np.ndarray, eligible: np.ndarray,
                 node_score: np.ndarray, chosen: np.ndarray, fresh: np.ndarray,
                 nodes: Optional[Iterable[str]]) -> None:
        self.request = request
        self.now_ns = now_ns
        self._scorer = scorer
        self._score, self._eligible, self._chosen = score, eligible, chosen
        index = scorer._node_index
        names = list(scorer._node_names) if nodes is None else list(dict.fromkeys(nodes))
        idx = np.array([index.get(n, -1) for n in names], dtype=np.intp)
        known = (idx >= 0) & (idx < node_score.shape[0])
        values = np.where(known, node_score[np.where(known, idx, 0)] if node_score.size else 0.0, 0.0)
        #: node -> score (0..1) for every node asked about, in the order asked.
        self.scores: dict[str, float] = dict(zip(names, values.tolist()))
        fresh_node = np.zeros(max(len(scorer._node_names), 1), bool)
        if fresh.size:
            fresh_node[scorer._dev["node"][fresh]] = True
        has_fresh = known & fresh_node[np.where(known, idx, 0)]
        #: The nodes asked about that have a fresh window (the others score 0 for want of data).
        self.fresh = {n for n, f in zip(names, has_fresh.tolist()) if f}
        #: True when no node asked about has a fresh window: every score is 0 for that reason.
        self.stale = not self.fresh
        self._nodes: Optional[list[NodeScore]] = None
        self._picked_by_node: dict[int, list[int]] = {}

    def order(self) -> list[tuple[str, float]]:
        """(node, score), best first; ties by name."""
        return sorted(self.scores.items(), key=lambda kv: (-kv[1], kv[0]))

    @property
    def nodes(self) -> list[NodeScore]:
        """Nodes best first, each with the devices (``device/partition`` for MIG) that make
        its score (empty when it scores 0)."""
        if self._nodes is None:
            sc = self._scorer
            mig = self.request.mig_profile is not None
            rows_node = (sc._part if mig else sc._dev)["node"]
            picked: dict[int, list[int]] = {}
            for r in self._chosen.tolist():
                picked.setdefault(int(rows_node[r]), []).append(r)
            self._picked_by_node = picked
            self._nodes = [NodeScore(n, s, self._devices_of(n)) for n, s in self.order()]
        return self._nodes

    def _devices_of(self, name: str) -> tuple[str, ...]:
        i = self._scorer._node_index.get(name)
        rows = self._picked_by_node.get(i, []) if i is not None else []
        if len(rows) < self.request.count:
            return ()
        if self.request.mig_profile is not None:
            return tuple(f"{self._scorer._pkeys[r][1]}/{self._scorer._pkeys[r][2]}" for r in rows)
        return tuple(self._scorer._keys[r][1] for r in rows)

    def score(self, node: str) -> float:
        return self.scores.get(node, 0.0)

    def extender_scores(self, max_priority: int = 10) -> dict[str, int]:
        """Integer scores 0..``max_priority`` (kube-scheduler's MaxExtenderPriority is 10),
        proportional to the best node's, so the best candidate always gets the full range:
        what matters to the scheduler is the order and the gaps, not the absolute level."""
        best = max(self.scores.values(), default=0.0)
        if best <= 0:
            return {n: 0 for n in self.scores}
        return {n: int(round(max_priority * s / best)) for n, s in self.scores.items()}

    def devices(self, node: Optional[str] = None, limit: Optional[int] = None) -> list[DeviceScore]:
        """Devices best first (of ``node``, or of the nodes asked about), with the measures
        behind each score."""
        sc = self._scorer
        d = sc._dev
        wanted = None if node is None else {node}
        if wanted is None and self.scores:
            wanted = set(self.scores)
        rows = [r for r, (n, _dev) in enumerate(sc._keys) if (wanted is None or n in wanted) and d.cols["alive"][r]]
        if self.request.mig_profile is not None:
            score = np.zeros(d.n)
            eligible = np.zeros(d.n, bool)
        else:
            score, eligible = self._score, self._eligible
        rows.sort(key=lambda r: (-score[r], sc._keys[r]))
        out = []
        for r in rows[:limit]:
            n, dev = sc._keys[r]
            track = sc._tracks[r]
            idle_groups: Optional[tuple[int, ...]] = None
            if track is not None and track.group_ewma is not None:
                idle_groups = tuple(int(g) for g in np.flatnonzero(track.group_ewma >= sc.group_quorum))
            idle, free = d.cols["idle"][r], d.cols["mem_free"][r]
            groups, thrash = d.cols["groups"][r], d.cols["thrash"][r]
            out.append(DeviceScore(n, dev, float(score[r]), bool(eligible[r]),
                                   None if math.isnan(idle) else float(idle), int(d.cols["units"][r]),
                                   idle_groups, None if math.isnan(groups) else float(groups),
                                   None if math.isnan(thrash) else float(thrash),
                                   None if math.isnan(free) else int(free)))
        return out

    def partitions(self, node: Optional[str] = None, limit: Optional[int] = None) -> list[PartitionScore]:
        """Partitions (MIG instances, XCPs) best first; scored only for a MIG request."""
        sc = self._scorer
        p = sc._part
        wanted = {node} if node is not None else (set(self.scores) if self.scores else None)
        rows = [r for r, (n, _d, _p) in enumerate(sc._pkeys) if (wanted is None or n in wanted) and p.cols["alive"][r]]
        mig = self.request.mig_profile is not None
        rows.sort(key=lambda r: (-(self._score[r] if mig else 0.0), sc._pkeys[r]))
        names = {v: k for k, v in sc._profiles.items()}
        out = []
        for r in rows[:limit]:
            n, dev, pid = sc._pkeys[r]
            idle, free = p.cols["idle"][r], p.cols["mem_free"][r]
            out.append(PartitionScore(n, dev, pid, names.get(int(p.cols["profile"][r]), ""),
                                      float(self._score[r]) if mig else 0.0, bool(self._eligible[r]) if mig else False,
                                      None if math.isnan(idle) else float(idle), int(p.cols["units"][r]),
                                      None if math.isnan(free) else int(free)))
        return out


def rank(view: ClusterView, request: Request, now_ns: Optional[int] = None,
         nodes: Optional[Sequence[str]] = None, **options: Any) -> Ranking:
    """One-off ranking from the view's latest windows (a horizon of one window). To rank on a
    horizon, keep a :class:`Scorer` that observes the client."""
    return Scorer.from_view(view, **options).rank(request, now_ns, nodes)
