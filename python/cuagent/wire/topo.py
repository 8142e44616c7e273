"""``topo`` bodies (PROTOCOL.md §3.1): a node's devices, their levels, partitions and counters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional

import numpy as np

from ..topology import CounterInfo, DeviceTopology, LinkInfo, PartitionInfo
from .codec import ProtocolError, as_array, as_map, describe, get

# A device's `status` in topo (§3.1): absent means OK (agents before the key). Anything but
# OK means the device serves no state; a reader treats unknown values as not OK.
DEVICE_OK, DEVICE_LOST = "ok", "lost"
DEVICE_STATUSES = (DEVICE_OK, DEVICE_LOST)
UNIT_NAMES = ("ratio", "W", "C", "bytes", "Hz", "B/s", "count", "mask")
PARTITION_KINDS = ("whole", "mig", "xcp")
LAYOUT_SOURCES = ("probe", "vendor", "mock", "none")
# Levels a counter can be measured at besides the device's own hierarchy.
PARTITION_LEVEL = "partition"
DEVICE_LEVEL = "device"




# The topology types are shared with the engine: one definition of a device.
Device = DeviceTopology


@dataclass
class AgentInfo:
    version: str
    host: str
    pid: int
    started_ns: int


@dataclass
class Topo:
    agent: AgentInfo
    devices: list[Device]
    # device id -> `status` (§3.1); a device the body gives no status is OK. Kept beside the
    # devices, not in them: a status is not topology (it changes no `gen`).
    status: dict[str, str] = field(default_factory=dict)
    # device id -> why its CUPTI counters are paused (§3.1 `profiling_paused`), while they are.
    profiling_paused: dict[str, str] = field(default_factory=dict)

    def device_status(self, device_id: str) -> str:
        return self.status.get(device_id, DEVICE_OK)



def _u16(values: Any) -> bytes:
    return np.ascontiguousarray(values, dtype="<u2").tobytes()



def encode_device(d: DeviceTopology) -> dict[str, Any]:
    """A topo ``Device`` map from an engine DeviceTopology (or a decoded :class:`Device`)."""
    m: dict[str, Any] = {
        "id": str(d.id),
        "index": int(d.index),
        "vendor": str(d.vendor),
        "model": str(d.model),
        "backend": str(d.backend),
        "unit": str(d.unit),
        "units": int(d.units),
        "levels": [str(level) for level in d.levels],
    }
    if d.layout:
        m["layout"] = {str(level): _u16(arr) for level, arr in d.layout.items()}
    m["layout_source"] = str(d.layout_source)
    # A coarser level whose size the backend does not know (NVML without the SM layout
    # probe reports 0 GPCs/TPCs) has no count: absent, never a made-up number.
    m["counts"] = {str(k): int(v) for k, v in d.counts.items()}
    parts = []
    for p in d.partitions:
        pm: dict[str, Any] = {
            "id": str(p.id),
            "kind": str(p.kind),
            "units": int(p.units),
            "memory_bytes": int(p.memory_bytes),
            "profile": str(p.profile or ""),
        }
        if p.unit_ids is not None and len(p.unit_ids):
            pm["unit_ids"] = _u16(p.unit_ids)
        parts.append(pm)
    m["partitions"] = parts
    m["memory_bytes"] = int(d.memory_bytes)
    if d.pci:
        m["pci"] = str(d.pci)
    if d.numa is not None and int(d.numa) >= 0:
        m["numa"] = int(d.numa)
    m["counters"] = {
        str(name): {"level": str(c.level), "unit": str(c.unit), "help": str(c.help or "")}
        for name, c in d.counters.items()
    }
    m["links"] = [
        {"peer": str(link.peer), "type": str(link.type), "count": int(link.count), "path": str(link.path)}
        for link in d.links
    ]
    return m


def encode_topo_body(devices: Iterable[DeviceTopology], agent: AgentInfo | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(agent, AgentInfo):
        agent_map = {"version": agent.version, "host": agent.host, "pid": agent.pid, "started_ns": agent.started_ns}
    else:
        agent_map = dict(agent)
    return {"agent": agent_map, "devices": [encode_device(d) for d in devices]}


def with_device_status(topo_body: Mapping[str, Any], lost: Iterable[str],
                       profiling_paused: Optional[Mapping[str, str]] = None) -> dict[str, Any]:
    """``topo_body`` with every device's ``status`` (§3.1): ``lost`` for the ids in ``lost``,
    else ``ok``; and ``profiling_paused`` (its reason) for the ids in ``profiling_paused``. A
    copy: the agent compares status-free bodies to detect topology changes."""
    lost, paused = set(lost), profiling_paused or {}
    devices = []
    for d in topo_body["devices"]:
        device = dict(d, status=DEVICE_LOST if d["id"] in lost else DEVICE_OK)
        if d["id"] in paused:
            device["profiling_paused"] = paused[d["id"]]
        devices.append(device)
    return dict(topo_body, devices=devices)



def decode_device(m: Any, where: str = "device") -> Device:
    m = as_map(m, where)
    units = get(m, "units", int, where)
    levels = get(m, "levels", list, where)
    if not levels or not all(isinstance(x, str) for x in levels):
        raise ProtocolError(f"{where}.levels", "expected a non-empty list of strings")
    unit = get(m, "unit", str, where)
    if levels[-1] != unit:
        raise ProtocolError(f"{where}.levels", f"last level {describe(levels[-1])} is not the unit {describe(unit)}")
    counts = as_map(get(m, "counts", dict, where), f"{where}.counts")
    for level in levels:
        if type(counts.get(level)) is not int or counts[level] < 1:
            raise ProtocolError(f"{where}.counts.{level}", f"expected a positive int, got {describe(counts.get(level))}")
    if counts[unit] != units:
        raise ProtocolError(f"{where}.counts.{unit}", f"{counts[unit]} differs from units {units}")
    layout: dict[str, np.ndarray] = {}
    raw_layout = get(m, "layout", dict, where, optional=True)
    if raw_layout is not None:
        for level, arr in as_map(raw_layout, f"{where}.layout").items():
            if level not in levels[:-1]:
                raise ProtocolError(f"{where}.layout.{level}", "not one of the device's coarser levels")
            layout[level] = as_array(arr, "<u2", units, f"{where}.layout.{level}")
    layout_source = get(m, "layout_source", str, where)
    partitions = []
    raw_parts = get(m, "partitions", list, where)
    if not raw_parts:
        raise ProtocolError(f"{where}.partitions", "at least one partition is required")
    for i, p in enumerate(raw_parts):
        pw = f"{where}.partitions[{i}]"
        p = as_map(p, pw)
        unit_ids = p.get("unit_ids")
        partitions.append(
            PartitionInfo(
                id=get(p, "id", str, pw),
                kind=get(p, "kind", str, pw),
                units=get(p, "units", int, pw),
                memory_bytes=get(p, "memory_bytes", int, pw, optional=True) or 0,
                profile=get(p, "profile", str, pw, optional=True) or "",
                unit_ids=None if unit_ids is None else as_array(unit_ids, "<u2", None, f"{pw}.unit_ids"),
            )
        )
    counters = {}
    for name, c in as_map(get(m, "counters", dict, where), f"{where}.counters").items():
        cw = f"{where}.counters.{name}"
        c = as_map(c, cw)
        level = get(c, "level", str, cw)
        if level not in levels and level not in (PARTITION_LEVEL, DEVICE_LEVEL):
            raise ProtocolError(f"{cw}.level", f"{describe(level)} is not a level of this device, partition or device")
        counters[name] = CounterInfo(level, get(c, "unit", str, cw), get(c, "help", str, cw, optional=True) or "")
    links = []
    for i, link in enumerate(get(m, "links", list, where, optional=True) or []):
        lw = f"{where}.links[{i}]"
        link = as_map(link, lw)
        links.append(
            LinkInfo(get(link, "peer", str, lw), get(link, "type", str, lw), get(link, "count", int, lw), get(link, "path", str, lw))
        )
    return Device(
        id=get(m, "id", str, where),
        index=get(m, "index", int, where),
        vendor=get(m, "vendor", str, where),
        model=get(m, "model", str, where),
        backend=get(m, "backend", str, where),
        unit=unit,
        units=units,
        levels=list(levels),
        counts={k: counts[k] for k in levels if k in counts},
        layout=layout,
        layout_source=layout_source,
        partitions=partitions,
        memory_bytes=get(m, "memory_bytes", int, where),
        counters=counters,
        links=links,
        pci=get(m, "pci", str, where, optional=True),
        numa=get(m, "numa", int, where, optional=True),
    )


def decode_topo_body(m: Any) -> Topo:
    m = as_map(m, "topo")
    a = as_map(get(m, "agent", dict, "topo"), "topo.agent")
    agent = AgentInfo(
        version=get(a, "version", str, "topo.agent"),
        host=get(a, "host", str, "topo.agent"),
        pid=get(a, "pid", int, "topo.agent"),
        started_ns=get(a, "started_ns", int, "topo.agent"),
    )
    raw = get(m, "devices", list, "topo")
    devices = [decode_device(d, f"topo.devices[{i}]") for i, d in enumerate(raw)]
    ids = [d.id for d in devices]
    if len(set(ids)) != len(ids):
        raise ProtocolError("topo.devices", f"duplicate device ids in {ids}")
    status, paused = {}, {}
    for i, (d, dm) in enumerate(zip(devices, raw)):
        value = get(dm, "status", str, f"topo.devices[{i}]", optional=True)
        if value is not None:
            status[d.id] = value
        reason = get(dm, "profiling_paused", str, f"topo.devices[{i}]", optional=True)
        if reason is not None:
            paused[d.id] = reason
    return Topo(agent, devices, status, paused)
