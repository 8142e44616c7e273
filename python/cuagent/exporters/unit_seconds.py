"""Unit-seconds per (partition, group, state), integrated from every window received.

Each ``state`` window (PROTOCOL.md §3.2) says, for ``window_ns``, which state each element of
the finest measured level was in. Summing ``units in the state × window_ns`` over windows gives
a counter whose ``rate()`` over any interval is the mean number of units in that state over the
interval — exact however rarely Prometheus scrapes, where a gauge of the last window would show
one 100 ms window out of every 150 at a 15 s scrape.

Counting is in integer unit-nanoseconds (exact; int64 lasts 2 years for a 132-unit cell).
Only windows received are counted: a window the exporter never saw (a gap in the feed) adds
nothing to any state, so the states of a group sum to less than its units over that span. The
exporter counts those windows apart (``cuagent_windows_missed_total``) and the span it did see
(``cuagent_window_seconds_total``); dividing by the latter gives the mean over what was seen.

Windows are queued as the bytes of their state array and folded in batches (at a scrape, or
every ``FOLD_EVERY`` windows), so the per-window cost in the agent's publish thread is one
list append.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..wire import STATE_NAMES

#: The partition of a unit that the topology lists in no partition (under MIG: an SM that no
#: GPU instance holds, idle by construction and worth seeing).
UNASSIGNED = "unassigned"
#: The partition of a unit on a device with several partitions that do not list their units.
UNKNOWN = "unknown"
#: The group (GPC/XCD) of a unit whose group is not known: no layout, or the layout probe could
#: not place it.
UNPLACED = "unplaced"

FOLD_EVERY = 128  # windows queued per device before they are folded without waiting for a scrape
_STATES = len(STATE_NAMES)


def state_level(device: Any) -> Optional[str]:
    """The level of ``device``'s hierarchy whose elements carry states: the one where its
    ``active`` counter is measured (§3.2); None when nothing on it measures activity."""
    active = device.counters.get("active")
    if active is None or active.level not in device.levels:
        return None
    return str(active.level)


def unit_groups(device: Any) -> list[str]:
    """Each unit's group label: the index of its element at the coarsest level (GPC, XCD), or
    ``UNPLACED``."""
    units = int(device.units)
    top = device.levels[0]
    ancestors = device.layout.get(top) if top != device.unit else None
    count = device.counts.get(top)
    if ancestors is None or count is None:
        return [UNPLACED] * units
    return [str(int(g)) if g < count else UNPLACED for g in ancestors]


def unit_partitions(device: Any) -> list[str]:
    """Each unit's partition label: the partition listing it, the only partition, or
    ``UNASSIGNED`` / ``UNKNOWN``."""
    units = int(device.units)
    parts = device.partitions
    if len(parts) == 1 and parts[0].unit_ids is None:
        return [str(parts[0].id)] * units
    listed = all(p.unit_ids is not None for p in parts)
    out = [UNASSIGNED if listed else UNKNOWN] * units
    for p in parts:
        if p.unit_ids is not None:
            for u in p.unit_ids:
                if u < units:
                    out[int(u)] = str(p.id)
    return out


def element_of_unit(device: Any) -> Optional[np.ndarray]:
    """Each unit's element index at the state level (>= that level's count where the layout
    cannot place it); None where the device has no states or no layout to map them."""
    level = state_level(device)
    if level is None or level not in device.counts:
        return None
    if level == device.unit:
        return np.arange(int(device.units), dtype=np.intp)
    ancestors = device.layout.get(level)
    return None if ancestors is None else np.asarray(ancestors, np.intp)


def partition_elements(device: Any) -> dict[str, np.ndarray]:
    """partition id -> the state-level element of each of its (placed) units."""
    elements = element_of_unit(device)
    if elements is None:
        return {}
    level = state_level(device)
    count = device.counts[level]
    partitions = np.array(unit_partitions(device))
    out = {}
    for p in device.partitions:
        units = np.flatnonzero((partitions == str(p.id)) & (elements < count))
        out[str(p.id)] = elements[units]
    return out


def _group_sort_key(label: str) -> tuple[int, int, str]:
    return (1, 0, label) if not label.isdigit() else (0, int(label), "")


class UnitSeconds:
    """The unit-seconds ledger of one device. Not thread-safe: the caller serialises."""

    def __init__(self, device: Any) -> None:
        self._carried: dict[tuple[str, str, str], int] = {}
        self._pending: list[tuple[int, bytes]] = []
        self._bind(device)

    # ------------------------------------------------------------------ topology
    def _bind(self, device: Any) -> None:
        self.level = level = state_level(device)
        self.cells: list[tuple[str, str]] = []  # (partition, group) of each cell
        self._elements = 0
        elements = element_of_unit(device)
        if elements is None or level is None:
            self._acc = np.zeros(0, np.int64)
            return
        self._elements = int(device.counts[level])
        # A unit whose element at the state level is unknown has no measured state: left out,
        # never given one.
        placed = np.flatnonzero(elements < self._elements)
        groups = unit_groups(device)
        partitions = unit_partitions(device)
        keys = [(partitions[u], groups[u]) for u in placed]
        self.cells = sorted(set(keys), key=lambda c: (c[0], _group_sort_key(c[1])))
        index = {cell: i for i, cell in enumerate(self.cells)}
        self._element_of_unit = elements[placed]
        self._cell_base = np.array([index[k] * _STATES for k in keys], np.intp)
        self._acc = np.zeros(len(self.cells) * _STATES, np.int64)

    def rebind(self, device: Any) -> None:
        """The device's topology changed (a new partition layout): what was counted so far
        stays in the totals of its labels; new windows are mapped through the new topology."""
        self.fold()
        for (cell, state), ns in zip(self._cell_states(), self._acc.tolist()):
            key = (*cell, state)
            self._carried[key] = self._carried.get(key, 0) + int(ns)
        self._bind(device)

    # ------------------------------------------------------------------ windows
    @property
    def measures(self) -> bool:
        """True when this device's windows carry states that map onto its units."""
        return bool(self.cells)

    def add(self, window_ns: int, states: bytes) -> bool:
        """Queue one window's state array (uint8 per element of ``level``); False when it
        does not fit the topology (and is not counted)."""
        if not self.cells or len(states) != self._elements or window_ns <= 0:
            return False
        self._pending.append((window_ns, states))
        if len(self._pending) >= FOLD_EVERY:
            self.fold()
        return True

    def fold(self) -> None:
        """Add every queued window to the totals (one vectorised pass)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        rows = len(pending)
        spans = np.fromiter((ns for ns, _ in pending), np.int64, rows)
        states = np.frombuffer(b"".join(s for _, s in pending), np.uint8).reshape(rows, self._elements)
        unit_states = states[:, self._element_of_unit].astype(np.intp)
        valid = unit_states < _STATES  # a state code the protocol does not define counts nowhere
        index = self._cell_base + unit_states
        width = self._acc.shape[0]
        if (spans == spans[0]).all():
            self._acc += np.bincount(index[valid], minlength=width).astype(np.int64) * spans[0]
        else:
            row_index = index + (np.arange(rows, dtype=np.intp) * width)[:, None]
            per_row = np.bincount(row_index[valid], minlength=rows * width).reshape(rows, width)
            self._acc += spans @ per_row.astype(np.int64)

    # ------------------------------------------------------------------ totals
    def _cell_states(self) -> list[tuple[tuple[str, str], str]]:
        return [(cell, state) for cell in self.cells for state in STATE_NAMES]

    def totals_ns(self) -> list[tuple[str, str, str, int]]:
        """(partition, group, state, unit-nanoseconds) for every cell of the current topology
        and every state, zeros included (a series exists from the first scrape on)."""
        self.fold()
        out = []
        for ((partition, group), state), ns in zip(self._cell_states(), self._acc.tolist()):
            out.append((partition, group, state, int(ns) + self._carried.get((partition, group, state), 0)))
        return out
