"""The view a :class:`~cuagent.feed.client.Client` keeps: nodes, their devices, each device's
topology and latest window, with the questions a scheduler asks of them (idle units, idle
groups, ranking)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator, Optional

import numpy as np

from .. import wire
from ..wire import Device, State
from .summaries import Summaries


@dataclass
class DeviceView:
    node: str
    topology: Device
    state: Optional[State] = None
    ts: int = 0  # header ts of the state: unix ns at the end of its window
    seq: int = 0
    # The topo's `status` (PROTOCOL.md §3.1): "ok", or "lost" (no state, never ranked).
    status: str = wire.DEVICE_OK

    @property
    def id(self) -> str:
        return self.topology.id

    @property
    def lost(self) -> bool:
        """The agent reports this device as not serving (e.g. fallen off the bus)."""
        return self.status != wire.DEVICE_OK

    @property
    def idle_units(self) -> Optional[float]:
        return None if self.state is None else self.state.idle_units

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
        when that is where states are measured; None when neither allows it."""
        found = self.finest_state()
        if found is None:
            return None
        level, states = found
        if level == self.topology.unit:
            return states
        ancestors = self.topology.layout.get(level)
        if ancestors is None:
            return None
        valid = ancestors < states.shape[0]
        out = np.full(self.topology.units, wire.IDLE, np.uint8)
        out[valid] = states[ancestors[valid]]
        return out

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
        """Estimated idle units per partition: from per-unit means where the partition's unit
        ids and unit-level ``active`` are known, else from its ``sm_active``."""
        out: dict[str, float] = {}
        if self.state is None:
            return out
        unit_level = self.state.levels.get(self.topology.unit, {})
        active = unit_level.get("active")
        for p in self.topology.partitions:
            if active is not None and p.unit_ids is not None and len(p.unit_ids):
                out[p.id] = float(np.sum(1.0 - active.mean[p.unit_ids]))
            elif "sm_active" in self.state.partition.get(p.id, {}):
                out[p.id] = (1.0 - float(self.state.partition[p.id]["sm_active"])) * p.units
            elif len(self.topology.partitions) == 1 and self.state.idle_units is not None:
                out[p.id] = self.state.idle_units
        return out


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

    def rank_devices(self, include_stale: bool = False) -> list[DeviceView]:
        """Devices with a known state, most idle units first (a lost device never)."""
        devs = [d for d in self.devices(include_stale) if d.idle_units is not None and not d.lost]
        return sorted(devs, key=lambda d: (-d.idle_units, d.node, d.id))  # type: ignore[operator]

    def rank_partitions(self, include_stale: bool = False) -> list[tuple[DeviceView, str, float]]:
        """(device, partition id, idle units), most idle first."""
        rows = [(d, pid, idle) for d in self.devices(include_stale) if not d.lost
                for pid, idle in d.partition_idle_units().items()]
        return sorted(rows, key=lambda r: (-r[2], r[0].node, r[0].id, r[1]))
