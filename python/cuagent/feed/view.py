"""The view a :class:`~cuagent.feed.client.Client` keeps: nodes, their devices, each device's
topology and latest window, with the questions a scheduler asks of them (idle units, idle
groups, ranking).

The questions about present capacity (:attr:`DeviceView.idle_units`,
:meth:`ClusterView.rank_devices`, :meth:`ClusterView.rank_partitions`) take a window for the
device's present state only while it is current (:mod:`.freshness`: at most ``max_age_s`` old,
by default the stale interval, on the agent's clock); the questions about one window
(:meth:`DeviceView.finest_state`, :meth:`~DeviceView.idle_groups`, ...) answer for the latest
window whatever its age, which :meth:`DeviceView.age_ns` gives."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Iterator, Optional

import numpy as np

from .. import wire
from ..wire import Device, State
from .freshness import STALE_AFTER_S, NodeClock, current
from .lazy import LazyState
from .summaries import Summaries


class DeviceView:
    """One device of the view: its topology (from the node's topo), its latest window
    (:attr:`state`, with the header ``ts`` and ``seq`` it came with) and its topo ``status``.

    A client that decodes lazily (the default) hands each state message to :meth:`receive`
    undecoded; :attr:`state` (and :attr:`ts`, :attr:`seq`, which describe it) decodes the
    newest one when read, once: a device updated ten times between two reads costs one
    decode. When that newest body turns out malformed, the state stays the one decoded
    before (with its ts and seq), and the client counts the body in ``decode_errors``.

    ``clock`` is its node's (:attr:`NodeView.clock`), by which the window's age is judged;
    without one, this host's wall clock."""

    __slots__ = ("node", "topology", "status", "profiling_paused", "clock", "_state", "_ts", "_seq", "_pending")

    def __init__(self, node: str, topology: Device, state: Optional[State] = None, ts: int = 0, seq: int = 0,
                 status: str = wire.DEVICE_OK, profiling_paused: Optional[str] = None,
                 clock: Optional[NodeClock] = None) -> None:
        self.node = node
        self.clock = _WALL_CLOCK if clock is None else clock
        self.topology = topology
        # The topo's `status` (PROTOCOL.md §3.1): "ok", or "lost" (no state, never ranked).
        self.status = status
        # The topo's `profiling_paused` (§3.1): why the CUPTI counters are absent, while they are.
        self.profiling_paused = profiling_paused
        self._state = state
        self._ts = ts  # header ts of the state: unix ns at the end of its window
        self._seq = seq
        self._pending: Optional[LazyState] = None  # the newest body received, not yet decoded

    def receive(self, body: LazyState) -> None:
        """The newest state message of this device, decoded when :attr:`state` is next read
        (an older one not read by then never is)."""
        self._pending = body

    def _decode_pending(self) -> None:
        body, self._pending = self._pending, None
        assert body is not None
        state = body.get()
        if state is not None:
            self._state, self._ts, self._seq = state, body.header.ts, body.header.seq

    @property
    def state(self) -> Optional[State]:
        """The latest window that decoded (None before the first)."""
        if self._pending is not None:
            self._decode_pending()
        return self._state

    @state.setter
    def state(self, value: Optional[State]) -> None:
        self._state, self._pending = value, None

    @property
    def ts(self) -> int:
        """Header ts of :attr:`state`: unix ns at the end of its window (0 before the first)."""
        if self._pending is not None:
            self._decode_pending()
        return self._ts

    @ts.setter
    def ts(self, value: int) -> None:
        self._ts = value

    @property
    def seq(self) -> int:
        """Header seq of :attr:`state` (0 before the first)."""
        if self._pending is not None:
            self._decode_pending()
        return self._seq

    @seq.setter
    def seq(self, value: int) -> None:
        self._seq = value

    @property
    def pending(self) -> Optional[LazyState]:
        """The newest state message received and not yet decoded, if any (reading it decodes
        nothing: ``pending.header`` says when it was sent)."""
        return self._pending

    def keep_window_of(self, other: "DeviceView") -> None:
        """Take ``other``'s window, decoded or not (a topo re-published with the same shape:
        the window is as valid against this topology as against that one)."""
        self._state, self._ts, self._seq, self._pending = other._state, other._ts, other._seq, other._pending

    def __repr__(self) -> str:
        return (f"DeviceView(node={self.node!r}, id={self.id!r}, status={self.status!r}, ts={self._ts}, "
                f"seq={self._seq}, state={'set' if self._state is not None else None}"
                f"{', newer pending' if self._pending is not None else ''})")

    @property
    def id(self) -> str:
        return self.topology.id

    @property
    def lost(self) -> bool:
        """The agent reports this device as not serving (e.g. fallen off the bus)."""
        return self.status != wire.DEVICE_OK

    def age_ns(self, now_ns: Optional[int] = None) -> Optional[int]:
        """How old the latest window is (ns from its end to ``now_ns``, by default the node's
        present time on its own clock: :class:`~cuagent.feed.freshness.NodeClock`); None
        before the first window."""
        if self.state is None:
            return None
        return (self.clock.now_ns() if now_ns is None else now_ns) - self.ts

    def current(self, max_age_s: float = STALE_AFTER_S, now_ns: Optional[int] = None) -> bool:
        """The latest window is the device's present state: it is at most ``max_age_s`` old
        (or three of its own lengths, where the publish interval makes that longer) at
        ``now_ns`` (default: the node's present time, :meth:`age_ns`). False before the first."""
        state = self.state
        if state is None:
            return False
        return current(self.ts, state.window_ns, self.clock.now_ns() if now_ns is None else now_ns, max_age_s)

    @property
    def idle_units(self) -> Optional[float]:
        """The device's idle units now: its latest window's while that is current
        (:meth:`current`, default limit); None when it has none, or none that recent.
        ``state.idle_units`` is the latest window's, whatever its age."""
        return self.fresh_idle_units()

    def fresh_idle_units(self, max_age_s: float = STALE_AFTER_S, now_ns: Optional[int] = None) -> Optional[float]:
        """:attr:`idle_units` with the age limit (and the time) given."""
        if not self.current(max_age_s, now_ns):
            return None
        assert self._state is not None
        return self._state.idle_units

    def finest_state(self) -> Optional[tuple[str, np.ndarray]]:
        """(level, states) at the finest level that carries states, or None."""
        if self.state is None:
            return None
        for level in reversed(self.topology.levels):
            entry = self.state.levels.get(level)
            if entry is not None and "state" in entry:
                return level, entry["state"]
        return None

    def unit_states(self) -> Optional[np.ndarray]:
        """Per-unit states (uint8[units]), expanded from a coarser level through the layout
        when that is where states are measured; None when neither allows it. A unit whose
        element was not measured this window, or that the layout cannot place, is
        ``wire.UNMEASURED``: counted in no state, never idle."""
        found = self.finest_state()
        if found is None:
            return None
        level, states = found
        return per_unit(self.topology, level, states, wire.UNMEASURED)

    def thrashing_units(self) -> np.ndarray:
        """Indices of the units in the thrashing state (empty when unknown)."""
        states = self.unit_states()
        if states is None:
            return np.empty(0, np.intp)
        return np.flatnonzero(states == wire.THRASHING)

    def idle_groups(self, level: Optional[str] = None) -> list[int]:
        """The elements of ``level`` (default: the coarsest, GPC or XCD) whose units are all idle.

        Needs the layout unless states are measured at that level itself. Units the layout
        could not place (an ancestor index beyond the level's count) belong to no group."""
        level = level or self.topology.levels[0]
        if level not in self.topology.levels:
            raise ValueError(f"{level!r} is not a level of {self.id} ({self.topology.levels})")
        if level not in self.topology.counts:
            return []  # its size is unknown (no layout): no group can be shown idle
        found = self.finest_state()
        if found is None:
            return []
        state_level, states = found
        n = self.topology.counts[level]
        if state_level == level:
            return [int(i) for i in np.flatnonzero(states == wire.IDLE)]
        unit_states = self.unit_states()
        ancestors = self.topology.layout.get(level)
        if unit_states is None or ancestors is None:
            return []
        valid = ancestors < n
        busy: np.ndarray = np.zeros(n, bool)
        busy[ancestors[valid][unit_states[valid] != wire.IDLE]] = True
        present: np.ndarray = np.zeros(n, bool)
        present[ancestors[valid]] = True
        return [int(i) for i in np.flatnonzero(present & ~busy)]

    def partition_idle_units(self) -> dict[str, float]:
        """Estimated idle units per partition of the latest window: from per-unit means where
        the partition's unit ids and unit-level ``active`` are known (units without a value
        this window add nothing, as in the device's ``idle_units``), else from its
        ``sm_active`` × its units. A partition with neither (no unit measured, or its size
        unknown: units 0, as the core's aggregator skips it) has no entry, never 0."""
        out: dict[str, float] = {}
        if self.state is None:
            return out
        unit_level = self.state.levels.get(self.topology.unit, {})
        active = unit_level.get("active")
        for p in self.topology.partitions:
            if active is not None and p.unit_ids is not None and len(p.unit_ids):
                means = active.mean[p.unit_ids]
                measured = means[np.isfinite(means)]
                if measured.size:
                    out[p.id] = float(np.sum(1.0 - measured.astype(np.float64)))
                    continue
            sm_active = self.state.partition.get(p.id, {}).get("sm_active")
            if sm_active is not None and math.isfinite(sm_active) and p.units > 0:
                out[p.id] = (1.0 - float(sm_active)) * p.units
            elif len(self.topology.partitions) == 1 and self.state.idle_units is not None \
                    and math.isfinite(self.state.idle_units):
                out[p.id] = self.state.idle_units
        return out


def per_unit(topology: Device, level: str, values: np.ndarray, fill: float) -> Optional[np.ndarray]:
    """``values``, one per element of ``level``, as one per unit: each unit takes its element's
    through the topo's layout, ``fill`` where the layout cannot place it. None without a layout
    for ``level``."""
    if level == topology.unit:
        return values
    ancestors = topology.layout.get(level)
    if ancestors is None:
        return None
    out = np.full(topology.units, fill, values.dtype)
    valid = ancestors < values.shape[0]
    out[valid] = values[ancestors[valid]]
    return out


# The clock of a device that has no node's: never hears a heartbeat, so it is this host's.
_WALL_CLOCK = NodeClock()


@dataclass
class NodeView:
    name: str
    epoch: int
    gen: int = 1
    agent: Optional[wire.AgentInfo] = None
    devices: dict[str, DeviceView] = field(default_factory=dict)
    heartbeat: Optional[wire.Heartbeat] = None
    last_heard: float = field(default_factory=time.monotonic)  # monotonic time of the last hb
    stale: bool = False
    # The node's present time on its own clock, from its heartbeats: its windows' age.
    clock: NodeClock = field(default_factory=NodeClock)


class ClusterView:
    """nodes → devices → topology + latest state. Maintained by a :class:`Client`."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeView] = {}
        # Every node's latest summary (PROTOCOL.md §3.5), for questions about many GPUs at once.
        self.summaries = Summaries(self.nodes)

    def __iter__(self) -> Iterator[DeviceView]:
        return self.devices()

    def devices(self, include_stale: bool = True) -> Iterator[DeviceView]:
        for node in self.nodes.values():
            if include_stale or not node.stale:
                yield from node.devices.values()

    def device(self, node: str, device: str) -> DeviceView:
        return self.nodes[node].devices[device]

    def rank_devices(self, include_stale: bool = False, max_age_s: float = STALE_AFTER_S,
                     now_ns: Optional[int] = None) -> list[DeviceView]:
        """Devices whose idle units are known now, most idle first: a lost device never, nor
        one whose latest window is older than ``max_age_s`` (:meth:`DeviceView.current`; at
        ``now_ns``, by default each node's present time). ``include_stale``: nodes not heard
        for the stale interval too (their windows still within ``max_age_s``)."""
        rows = [(idle, d) for d in self.devices(include_stale)
                if not d.lost and (idle := d.fresh_idle_units(max_age_s, now_ns)) is not None and math.isfinite(idle)]
        rows.sort(key=lambda r: (-r[0], r[1].node, r[1].id))
        return [d for _, d in rows]

    def rank_partitions(self, include_stale: bool = False, max_age_s: float = STALE_AFTER_S,
                        now_ns: Optional[int] = None) -> list[tuple[DeviceView, str, float]]:
        """(device, partition id, idle units), most idle first, of the devices
        :meth:`rank_devices` would take by their age and status."""
        rows = [(d, pid, idle) for d in self.devices(include_stale) if not d.lost and d.current(max_age_s, now_ns)
                for pid, idle in d.partition_idle_units().items() if math.isfinite(idle)]
        return sorted(rows, key=lambda r: (-r[2], r[0].node, r[0].id, r[1]))
