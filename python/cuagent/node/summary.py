"""The node summary (PROTOCOL.md §3.5): one fixed-size record per device, built from the same
window snapshots the agent publishes ``state`` messages from, and when to publish it.

What a device's record holds is worked out once per topology (:class:`_DevicePlan`: which
level carries states, how units map to groups); each window then costs a few numpy calls per
device and none per unit.
"""

from __future__ import annotations

from typing import Collection, Optional, Sequence

import numpy as np

from .. import wire
from ..topology import DeviceState, DeviceTopology
from ..wire.summary import (FLOAT_FIELDS, GROUPS, MAX_AGE_MS, MAX_GROUPS, NO_WINDOW, RECORD_DTYPE, STATE_FIELDS,
                            STATES, STATUS_LOST, STATUS_OK, U8_MAX, U16_MAX, WINDOW)

_NAN = float("nan")


class _DevicePlan:
    """How one device's window becomes its record: its unit count, the level its states are
    read at, and each level's unit -> element map."""

    def __init__(self, d: DeviceTopology) -> None:
        self.id = d.id
        self.units = d.units
        self.unit_level = d.unit
        self.levels = list(reversed(d.levels))  # finest first: states are read at the finest level
        self.layout = {level: np.asarray(anc, np.intp) for level, anc in d.layout.items()}
        self.groups = d.counts.get(d.levels[0], 0) if len(d.levels) > 1 else 0
        # Each unit's group (the coarsest level: GPC, XCD), or -1: beyond the groups a record
        # holds, or not placed by the layout (never folded into group 0). None: no layout.
        anc = self.layout.get(d.levels[0]) if self.groups else None
        self.group_of = None if anc is None else np.where(anc < min(self.groups, MAX_GROUPS), anc, -1)
        self.unmeasured = np.full(self.units, U8_MAX, np.uint8)  # counted in no state

    def unit_states(self, st: DeviceState) -> Optional[np.ndarray]:
        """Per-unit states (uint8[units]; 255 for a unit the layout cannot place), from the
        finest level carrying states; None when no level does or it cannot be expanded."""
        for level in self.levels:
            entry = st.levels.get(level)
            if entry is None or "state" not in entry:
                continue
            states = np.asarray(entry["state"], np.uint8)
            if level == self.unit_level:
                return states if states.shape[0] == self.units else None
            anc = self.layout.get(level)
            if anc is None:
                return None  # states of elements whose units are unknown
            out = np.full(self.units, U8_MAX, np.uint8)
            valid = anc < states.shape[0]
            out[valid] = states[anc[valid]]
            return out
        return None


_ABSENT = (_NAN,) * len(FLOAT_FIELDS)


def _measured(value: Optional[float]) -> float:
    return _NAN if value is None else float(value)


class SummaryBuilder:
    """Records for one topology (a new topology needs a new builder). Per window it reads
    each device's few values in Python and counts every unit of every device at once: the
    units' states are laid end to end, and one bincount per question counts them per device
    (states) and per device and group (idle units)."""

    def __init__(self, topology: Sequence[DeviceTopology]) -> None:
        self.topology = list(topology)
        self._plans = [_DevicePlan(d) for d in self.topology]
        n = len(self._plans)
        sizes = [p.units for p in self._plans]
        device_of = np.repeat(np.arange(n, dtype=np.intp), sizes)
        # Each unit's (device, state) bin, less its state: 256 bins per device.
        self._state_base = device_of * 256
        group = np.concatenate([p.group_of if p.group_of is not None else np.full(p.units, -1, np.intp)
                                for p in self._plans]) if n else np.empty(0, np.intp)
        self._grouped = group >= 0
        self._group_bin = device_of[self._grouped] * MAX_GROUPS + group[self._grouped]
        self._units = np.array([min(p.units, U16_MAX) for p in self._plans], np.uint16)
        self._groups = np.array([min(p.groups, U8_MAX) for p in self._plans], np.uint8)
        self._has_groups = np.array([p.group_of is not None for p in self._plans], bool)

    def records(self, snapshot: Sequence[Optional[DeviceState]], lost: Collection[str], now_ns: int) -> np.ndarray:
        """One record per device of the topology, in its order: ``snapshot[i]`` is device i's
        latest window (None: none yet), ``lost`` the ids whose status is lost, ``now_ns`` the
        summary's time (ages are counted to it)."""
        n = len(self._plans)
        values: list[tuple[float, ...]] = []
        ages: list[int] = []
        status: list[int] = []
        measured: list[bool] = []  # unit states known
        parts: list[np.ndarray] = []
        for i, plan in enumerate(self._plans):
            st = snapshot[i] if i < len(snapshot) else None
            if st is not None and st.device_id != plan.id:
                st = None  # a window of another topology's device: none of this one's yet
            is_lost = plan.id in lost
            status.append(STATUS_LOST if is_lost else STATUS_OK)
            states = None
            if st is None:
                ages.append(NO_WINDOW)
                values.append(_ABSENT)
            else:
                ages.append(min(MAX_AGE_MS, max(0, (now_ns - int(st.t_ns)) // 1_000_000)))
                if is_lost:
                    values.append(_ABSENT)  # its last window is not current (§3.1): its age only
                else:
                    dev = st.device
                    values.append((_measured(st.idle_units), dev.get("sm_active", _NAN), dev.get("mem_used", _NAN),
                                   dev.get("power", _NAN), dev.get("temp", _NAN)))
                    states = plan.unit_states(st)
            measured.append(states is not None)
            parts.append(plan.unmeasured if states is None else states)
        rec = np.zeros(n, RECORD_DTYPE)
        if n == 0:
            return rec
        floats = np.array(values, np.float32)
        for j, name in enumerate(FLOAT_FIELDS):
            rec[name] = floats[:, j]
        units = np.concatenate(parts)
        counts = np.bincount(self._state_base + units, minlength=n * 256).reshape(n, 256)[:, :4]
        for j, name in enumerate(STATE_FIELDS):
            rec[name] = np.minimum(counts[:, j], U16_MAX)
        idle = units[self._grouped] == wire.IDLE
        group_idle = np.bincount(self._group_bin[idle], minlength=n * MAX_GROUPS).reshape(n, MAX_GROUPS)
        rec["group_idle"] = np.minimum(group_idle, U8_MAX)
        age = np.array(ages, np.int64)
        rec["age_ms"] = age
        known = np.array(measured, bool)
        rec["flags"] = (np.where(age != NO_WINDOW, WINDOW, 0) | np.where(known, STATES, 0)
                        | np.where(known & self._has_groups, GROUPS, 0))
        rec["status"] = status
        rec["units"] = self._units
        rec["groups"] = self._groups
        return rec


class SummaryPublisher:
    """When to publish the summary: after every ``every``-th window (a window counts once, when
    the newest window end among the devices moves on), and at once when a device's status or
    the topology generation changed since the last one, so a summary never says ``ok`` of a
    device the topo says is lost for longer than it takes to notice. ``every`` 0: never."""

    def __init__(self, every: int) -> None:
        if every < 0:
            raise ValueError(f"summary every {every} windows: expected >= 0")
        self.every = every
        self._builder: Optional[SummaryBuilder] = None
        self._topology: Optional[Sequence[DeviceTopology]] = None
        self._last_end = -1
        self._windows = 0
        self._published: Optional[tuple[int, frozenset[str]]] = None  # (gen, lost) of the last one
        self._snapshot: Sequence[Optional[DeviceState]] = ()  # the latest windows seen

    def due(self, topology: Sequence[DeviceTopology], snapshot: Optional[Sequence[Optional[DeviceState]]],
            lost: Collection[str], gen: int, now_ns: int) -> Optional[dict[str, object]]:
        """The ``sum`` body to publish now, or None. ``snapshot``: the engine's latest windows,
        or None for the last ones given (to publish a change of status or gen at once)."""
        if self.every == 0:
            return None
        if snapshot is None:
            snapshot = self._snapshot
        self._snapshot = snapshot
        if self._builder is None or self._topology is not topology:
            # The agent replaces its topology list when the topology changes.
            self._builder, self._topology = SummaryBuilder(topology), topology
        end = max((int(st.t_ns) for st in snapshot if st is not None), default=-1)
        if not self.want(end, lost, gen):
            return None
        return wire.encode_summary_body(self._builder.records(snapshot, lost, now_ns))

    def want(self, end: int, lost: Collection[str], gen: int) -> bool:
        """Whether a summary is due now, given the newest window end among the devices (-1:
        none yet); True counts it as published. What :meth:`due` decides, for a caller whose
        records come from elsewhere (the engine's core writes them for the agent)."""
        if self.every == 0:
            return False
        if end > self._last_end:
            self._last_end = end
            self._windows += 1
        key = (gen, frozenset(lost))
        first = self._published is None
        if first and end < 0:
            return False  # nothing measured yet: the first window starts the summaries
        if not first and self._windows < self.every and key == self._published:
            return False
        self._windows = 0
        self._published = key
        return True
