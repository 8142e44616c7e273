"""What a device is and what it measures: the engine's view of PROTOCOL.md §3.1 and §3.2.

`DeviceTopology` mirrors a `topo` device entry; `DeviceState` mirrors a `state`
body. The wire encoder (cuagent.wire) is a thin layer over these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, NamedTuple, Optional, Union

import numpy as np

if TYPE_CHECKING:
    from . import _core

__all__ = [
    "CounterInfo",
    "CounterStat",
    "DeviceState",
    "DeviceTopology",
    "LinkInfo",
    "PartitionInfo",
    "UNIT_STATES",
]

#: Element states as the `state` arrays encode them (PROTOCOL.md §3.2).
UNIT_STATES = ("idle", "active", "saturated", "thrashing")


class CounterInfo(NamedTuple):
    level: str  # one of the device's levels, "partition" or "device"
    unit: str
    help: str = ""


class CounterStat(NamedTuple):
    mean: np.ndarray  # float32, one element per element of the level
    max: np.ndarray


@dataclass(frozen=True)
class PartitionInfo:
    id: str
    kind: str  # "whole" | "mig" | "xcp"
    units: int
    memory_bytes: int = 0
    profile: str = ""
    unit_ids: Optional[np.ndarray] = None  # uint16, where known


class LinkInfo(NamedTuple):
    peer: str
    type: str  # "nvlink" | "xgmi" | "pcie"
    count: int  # type: ignore[assignment]  # the wire's name (PROTOCOL.md §3.1); shadows tuple.count
    path: str


@dataclass(frozen=True)
class DeviceTopology:
    """One device as a ``topo`` body describes it (PROTOCOL.md §3.1): what the
    engine reports and what the feed decoder returns."""

    id: str
    index: int
    vendor: str
    model: str
    backend: str
    unit: str
    units: int
    levels: List[str]
    layout: Dict[str, np.ndarray]  # level -> uint16[units]: each unit's ancestor; {} when unknown
    layout_source: str
    counts: Dict[str, int]
    partitions: List[PartitionInfo]
    memory_bytes: int
    counters: Dict[str, CounterInfo]
    links: List[LinkInfo] = field(default_factory=list)
    pci: Optional[str] = None
    numa: Optional[int] = None

    def members(self, level: str, element: int) -> np.ndarray:
        """Unit indices inside one element of a coarser level (needs a known layout)."""
        if level == self.levels[-1]:
            return np.array([element], dtype=np.intp)
        if level not in self.layout:
            raise KeyError(f"device {self.id} has no layout for level {level!r}")
        return np.flatnonzero(self.layout[level] == element)

    @classmethod
    def from_description(cls, d: _core.DeviceDescription) -> "DeviceTopology":
        """Build from a `cuagent._core.DeviceDescription`."""
        counters: Dict[str, CounterInfo] = {}
        for c in d.counters:
            counters[c.name] = CounterInfo(c.level, c.unit, c.help)
        # A counter's rollup (CounterSpec.rollup, the one place it is decided) is
        # published under its own name in the partition and device sections, so
        # that is where a client looks for it: declare it at the finest of those,
        # "partition". validate() guarantees the name is no counter's.
        for c in d.counters:
            if c.rollup:
                counters[c.rollup] = CounterInfo(
                    "partition", c.unit, f"mean of {c.name} over the partition's or device's {d.unit_kind}s"
                )
        return cls(
            id=d.id,
            index=int(d.index),
            vendor=d.vendor,
            model=d.model,
            backend=d.backend,
            unit=d.unit_kind,
            units=int(d.units),
            levels=list(d.levels),
            layout={lvl: np.asarray(a, dtype=np.uint16) for lvl, a in zip(d.levels[:-1], d.layout)},
            layout_source=d.layout_source,
            counts={lvl: int(n) for lvl, n in zip(d.levels, d.counts)},
            partitions=[
                PartitionInfo(
                    id=p.id,
                    kind=p.kind,
                    units=int(p.units),
                    unit_ids=np.asarray(p.unit_ids, dtype=np.uint16) if len(p.unit_ids) else None,
                    memory_bytes=int(p.memory_bytes),
                    profile=p.profile,
                )
                for p in d.partitions
            ],
            memory_bytes=int(d.memory_bytes),
            pci=d.pci or None,
            numa=int(d.numa) if d.numa >= 0 else None,
            counters=counters,
            links=[LinkInfo(x.peer, x.type, int(x.count), x.path) for x in d.links],
        )


LevelState = Dict[str, Union[CounterStat, np.ndarray]]


@dataclass
class DeviceState:
    """One finished window of one device (the `state` body of PROTOCOL.md §3.2).

    ``levels[level][counter]`` is a `CounterStat` and ``levels[level]["state"]``
    the uint8 element states, for levels where a counter is measured.
    ``groups`` holds the same for coarser levels derived from the unit level
    through the layout (local to the engine; not sent on the wire).
    A counter the backend did not measure in this window is absent.
    """

    device_id: str
    index: int
    window_seq: int  # window number since the engine started
    t_ns: int  # Unix ns at the end of the window
    window_ns: int
    samples: int
    levels: Dict[str, LevelState]
    groups: Dict[str, LevelState]
    partition: Dict[str, Dict[str, float]]
    device: Dict[str, float]
    idle_units: Optional[float]
    processes: Optional[List[Dict[str, Any]]] = None
    # Windows of this device since the engine started that had no sample while it was there.
    windows_missed: int = 0

    @classmethod
    def from_window(cls, topo: DeviceTopology, w: Mapping[str, Any]) -> "DeviceState":
        def level_map(raw: Mapping[str, Mapping[str, Any]]) -> Dict[str, LevelState]:
            out: Dict[str, LevelState] = {}
            for level, entries in raw.items():
                out[level] = {
                    name: (value if name == "state" else CounterStat(*value)) for name, value in entries.items()
                }
            return out

        return cls(
            device_id=topo.id,
            index=topo.index,
            window_seq=int(w["seq"]),
            t_ns=int(w["t_ns"]),
            window_ns=int(w["window_ns"]),
            samples=int(w["samples"]),
            levels=level_map(w["levels"]),
            groups=level_map(w["groups"]),
            partition={pid: dict(vals) for pid, vals in w["partition"].items()},
            device=dict(w["device"]),
            idle_units=w["idle_units"],
            windows_missed=int(w.get("windows_missed", 0)),
        )
