"""``state`` bodies (PROTOCOL.md §3.2): one device's window, per level, partition and device."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional

import numpy as np

from ..topology import CounterStat, DeviceState
from .codec import NUMBER, ProtocolError, as_array, as_map, describe, get, pack
from .topo import DEVICE_LEVEL, PARTITION_LEVEL, Device

STATE_NAMES = ("idle", "active", "saturated", "thrashing")
IDLE, ACTIVE, SATURATED, THRASHING = range(4)
# An element whose `active` is absent in the window (not measured yet, or the backend gave
# none): no state is claimed; it counts in none of the four. Also what a per-unit view gives
# a unit the layout cannot place.
UNMEASURED = 255
# Counters whose values are whole numbers by nature: sent as msgpack ints, not floats
# (when they fit msgpack's int range, [-2**63, 2**64); a larger one goes out as a float).
_INTEGRAL_UNITS = frozenset(("bytes", "count", "mask"))
_INT_MIN, _UINT_END = -(2**63), 2**64


Stat = CounterStat  # a counter's window mean and max, float32 arrays


@dataclass
class State:
    """One device's window as carried by a ``state`` body (attribute names as the engine's).

    ``levels[level][counter]`` is a :class:`Stat`; ``levels[level]["state"]`` a uint8 array."""

    window_ns: int
    samples: int
    levels: dict[str, dict[str, Any]]
    partition: dict[str, dict[str, float]]
    device: dict[str, float]
    idle_units: Optional[float]  # None when nothing measures activity
    processes: Optional[list[dict[str, Any]]] = None
    # Kubernetes containers holding the device (kubelet PodResources); None: not known.
    pods: Optional[list[dict[str, Any]]] = None



def _f32(values: Any) -> bytes:
    return np.ascontiguousarray(values, dtype="<f4").tobytes()



def _u8(values: Any) -> bytes:
    return np.ascontiguousarray(values, dtype="u1").tobytes()


def _scalar(value: Any, unit: Optional[str]) -> Any:
    v = float(value)
    if unit in _INTEGRAL_UNITS and v.is_integer() and _INT_MIN <= v < _UINT_END:
        return int(v)
    return v


def _measured(value: Any) -> bool:
    # NaN is the engine's "no data": such a counter is absent on the wire, never zero.
    return value is not None and not (isinstance(value, float) and math.isnan(value))



def encode_state_body(
    s: DeviceState | State, counters: Optional[Mapping[str, Any]] = None, processes: Optional[Iterable[Mapping[str, Any]]] = None,
    pods: Optional[Iterable[Mapping[str, Any]]] = None,
) -> dict[str, Any]:
    """A ``state`` map from an engine DeviceState (or a decoded :class:`State`).

    ``counters`` (the device's topo counters) lets whole-number quantities (bytes, counts,
    bitmasks) go out as ints; NaN or None values are left out (absent, never zero).
    ``processes`` (the backend's slow path) overrides ``s.processes``; None means the backend
    cannot list processes and the key is left out, while an empty list means it can and
    nothing runs. A device without sub-device counters carries no ``levels`` key (§3.2).
    ``pods`` (kubelet PodResources attribution) follows the same rule: None leaves the key
    out (no kubelet socket), an empty list says no container holds the device."""
    units = {name: c.unit for name, c in counters.items()} if counters else {}
    # The topo declares each counter at the level where it is measured (§3.1), and a state
    # carries only declared counters, at their declared level. The engine's rollups are
    # declared counters already (each CounterSpec.rollup is declared at "partition" level by
    # DeviceTopology.from_description), so this filter drops nothing the engine computes; it
    # keeps a hand-built or foreign state honest. ``device`` keeps device counters and the
    # device-wide value of partition counters (e.g. ``sm_active``, which §3.2's idle_units
    # rule reads there).
    declared = {name: c.level for name, c in counters.items()} if counters else None

    def on_wire(name: Any, allowed: tuple[str, ...]) -> bool:
        return declared is None or declared.get(name) in allowed
    levels: dict[str, Any] = {}
    for level, entries in s.levels.items():
        lm: dict[str, Any] = {}
        for name, value in entries.items():
            if name == "state":
                lm["state"] = _u8(value)
            else:
                lm[name] = {"mean": _f32(value.mean), "max": _f32(value.max)}
        levels[str(level)] = lm
    partition = {
        str(pid): {str(k): _scalar(v, units.get(k)) for k, v in values.items()
                   if _measured(v) and on_wire(k, (PARTITION_LEVEL,))}
        for pid, values in s.partition.items()
    }
    device = {str(k): _scalar(v, units.get(k)) for k, v in s.device.items()
              if _measured(v) and on_wire(k, (DEVICE_LEVEL, PARTITION_LEVEL))}
    body: dict[str, Any] = {"window_ns": int(s.window_ns), "samples": int(s.samples)}
    if levels:
        body["levels"] = levels
    body["partition"] = partition
    body["device"] = device
    # None: no counter to estimate it from; absent rather than invented.
    if s.idle_units is not None and not math.isnan(s.idle_units):
        body["idle_units"] = float(s.idle_units)
    if processes is None:
        processes = s.processes
    body.update(_extras(processes, pods))
    return body


def _extras(processes: Optional[Iterable[Mapping[str, Any]]], pods: Optional[Iterable[Mapping[str, Any]]],
            ) -> dict[str, Any]:
    """The entries of a state body that only the agent's slow path knows, in wire order."""
    out: dict[str, Any] = {}
    if processes is not None:
        out["processes"] = [_process(p) for p in processes]
    if pods is not None:
        out["pods"] = [_pod(p) for p in pods]
    return out


def encode_state_extras(processes: Optional[Iterable[Mapping[str, Any]]] = None,
                        pods: Optional[Iterable[Mapping[str, Any]]] = None) -> tuple[bytes, int]:
    """``processes`` and ``pods`` (as for :func:`encode_state_body`) packed as the key/value
    pairs that end a state body, and how many: what the core's encoder appends to the body it
    writes from the window buffer (``Engine.latest_state``), which then equals
    ``pack(encode_state_body(window, counters, processes, pods))`` byte for byte."""
    extras = _extras(processes, pods)
    return b"".join(pack(k) + pack(v) for k, v in extras.items()), len(extras)


_POD_KEYS = ("namespace", "pod", "container", "resource")


def _pod(p: Mapping[str, Any]) -> dict[str, Any]:
    """One ``pods`` entry (§3.2): the four names as strings, ``partition`` where it is one."""
    out = {k: str(p[k]) for k in _POD_KEYS}
    if p.get("partition") is not None:
        out["partition"] = str(p["partition"])
    return out


def _process(p: Mapping[str, Any]) -> dict[str, Any]:
    """One ``processes`` entry with the wire types of §3.2; unknown fields are left out."""
    out: dict[str, Any] = {"pid": int(p["pid"])}
    if p.get("sm") is not None and _measured(p["sm"]):
        out["sm"] = float(p["sm"])
    if p.get("mem") is not None and int(p["mem"]) >= 0:
        out["mem"] = int(p["mem"])
    out["name"] = str(p.get("name") or "")
    return out



_F32: np.dtype = np.dtype("<f4")
_U8: np.dtype = np.dtype("u1")
_NUMBER_TYPES = (int, float)


# The keys the lean path knows; a body with any other (a newer agent's, or a non-str key)
# takes the checked path, which keeps unknown str keys out of the result as well.
_LEAN_KEYS = frozenset(("window_ns", "samples", "levels", "partition", "device", "idle_units", "processes", "pods"))
_NO_LEVELS: dict[str, Any] = {}
_ABSENT: Any = object()


class _Unusual(Exception):
    """Raised by a fast path to hand over to the checking path (which names the problem)."""


def decode_state_body(m: Any, device: Optional[Device] = None) -> State:
    """Decode a ``state`` map; with the device's topology, also check it against ``topo``
    (levels and counters it declares, array lengths equal to ``counts``).

    States are the bulk of the feed, so well-formed bodies take a lean path with the same
    checks; anything unusual is re-decoded by the careful path, which names the bad field."""
    try:
        return decode_state_lean(m, device)
    except Exception:  # noqa: BLE001 — the careful path raises the proper ProtocolError
        return decode_state_checked(m, device)


def _numbers(values: Any) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise _Unusual
    for k, v in values.items():
        if type(k) is not str or type(v) not in _NUMBER_TYPES:
            raise _Unusual
    return values


def decode_state_lean(m: Any, device: Optional[Device] = None) -> State:
    """The path of well-formed bodies: the checks of :func:`decode_state_checked`, done the
    cheap way; it raises (anything) where that one would raise or might, never naming why.
    Whatever it accepts, the checked path accepts alike (tests/test_wire_state_paths.py)."""
    if type(m) is not dict or not m.keys() <= _LEAN_KEYS:  # also: every key a str
        raise _Unusual
    counts = device.counts if device is not None else None
    counters = device.counters if device is not None else None
    levels: dict[str, dict[str, Any]] = {}
    raw_levels = m.get("levels", _NO_LEVELS)
    if type(raw_levels) is not dict:
        raise _Unusual
    for level, entries in raw_levels.items():
        if type(level) is not str:
            raise _Unusual
        n = counts[level] if counts is not None else -1
        out: dict[str, Any] = {}
        for name, value in entries.items():
            if name == "state":
                arr = np.frombuffer(value, _U8)
                if n >= 0 and arr.shape[0] != n:
                    raise _Unusual
                out[name] = arr
                continue
            if counters is not None and counters[name].level != level:
                raise _Unusual
            mean, mx = np.frombuffer(value["mean"], _F32), np.frombuffer(value["max"], _F32)
            if mean.shape[0] != mx.shape[0] or (n >= 0 and mean.shape[0] != n) or len(value) != 2 or type(name) is not str:
                raise _Unusual
            out[name] = Stat(mean, mx)
        levels[level] = out
    partition = {pid: _numbers(vals) for pid, vals in m["partition"].items()}
    if not all(type(pid) is str for pid in partition):
        raise _Unusual
    # Absent optional keys are None; a key present with nil is unusual (the checked path refuses it).
    window_ns, samples = m["window_ns"], m["samples"]
    idle: Any = m.get("idle_units", _ABSENT)
    processes: Any = m.get("processes", _ABSENT)
    pods: Any = m.get("pods", _ABSENT)
    if type(window_ns) is not int or type(samples) is not int \
            or (idle is not _ABSENT and type(idle) not in _NUMBER_TYPES) \
            or (processes is not _ABSENT and type(processes) is not list) \
            or (pods is not _ABSENT and (type(pods) is not list or not all(_pod_ok(p) for p in pods))):
        raise _Unusual
    return State(window_ns, samples, levels, partition, _numbers(m["device"]),
                 None if idle is _ABSENT else float(idle),
                 None if processes is _ABSENT else processes, None if pods is _ABSENT else pods)


def _pod_ok(p: Any) -> bool:
    return type(p) is dict and all(type(k) is str for k in p) and all(type(p.get(k)) is str for k in _POD_KEYS)


def decode_state_checked(m: Any, device: Optional[Device] = None) -> State:
    m = as_map(m, "state")
    levels: dict[str, dict[str, Any]] = {}
    for level, entries in as_map(get(m, "levels", dict, "state", optional=True) or {}, "state.levels").items():
        lw = f"state.levels.{level}"
        n = None
        if device is not None:
            if level not in device.counts:
                raise ProtocolError(lw, f"not a level of device {device.id} ({device.levels})")
            n = device.counts[level]
        out: dict[str, Any] = {}
        for name, value in as_map(entries, lw).items():
            if name == "state":
                out["state"] = as_array(value, "u1", n, f"{lw}.state")
                continue
            cw = f"{lw}.{name}"
            if device is not None:
                info = device.counters.get(name)
                if info is None or info.level != level:
                    raise ProtocolError(cw, f"topo declares no counter {describe(name)} at level {describe(level)}")
            value = as_map(value, cw)
            mean = as_array(get(value, "mean", bytes, cw), "<f4", n, f"{cw}.mean")
            out[name] = Stat(mean, as_array(get(value, "max", bytes, cw), "<f4", mean.shape[0], f"{cw}.max"))
        levels[level] = out
    partition: dict[str, dict[str, float]] = {}
    for pid, values in as_map(get(m, "partition", dict, "state"), "state.partition").items():
        pw = f"state.partition.{pid}"
        for k, v in as_map(values, pw).items():
            if isinstance(v, bool) or not isinstance(v, NUMBER):
                raise ProtocolError(f"{pw}.{k}", f"expected a number, got {describe(v)}")
        partition[pid] = values
    dev = as_map(get(m, "device", dict, "state"), "state.device")
    for k, v in dev.items():
        if isinstance(v, bool) or not isinstance(v, NUMBER):
            raise ProtocolError(f"state.device.{k}", f"expected a number, got {describe(v)}")
    processes = get(m, "processes", list, "state", optional=True)
    pods = get(m, "pods", list, "state", optional=True)
    for i, p in enumerate(pods or []):
        pw = f"state.pods[{i}]"
        for key in _POD_KEYS:
            get(as_map(p, pw), key, str, pw)
    return State(
        window_ns=get(m, "window_ns", int, "state"),
        samples=get(m, "samples", int, "state"),
        levels=levels,
        partition=partition,
        device=dev,
        idle_units=_optional_float(get(m, "idle_units", NUMBER, "state", optional=True)),
        processes=processes,
        pods=pods,
    )


def _optional_float(v: Any) -> Optional[float]:
    return None if v is None else float(v)
