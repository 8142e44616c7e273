"""cuagent top's panel for a device with per-unit counters (AMD XCDs, the mock): its units as
a heat map, one row per GPC/XCD (from the topo layout), each cell coloured by the unit's state
and as tall as its mean ``active`` (its XCD's where only XCDs are measured); the partition and
device counters; the pods.

Two forms, both pure functions of a :class:`~cuagent.feed.view.DeviceView`: the full panel
(:func:`device_panel`) and, for many devices on a short terminal, two lines per device
(:func:`compact_lines`) with one cell per GPC/XCD instead of one per unit.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from rich.panel import Panel
from rich.text import Text

from .. import wire
from ..feed.view import DeviceView, NodeView, per_unit
from .top_nvidia import compact_head, fit_width

# idle, active, saturated, thrashing, then unmeasured (wire.UNMEASURED: no state claimed)
STATE_STYLES = ("grey35", "green3", "yellow1", "red1", "bright_black")
UNMEASURED_NAME = "unmeasured"
BARS = " ▁▂▃▄▅▆▇█"
# The device counters the compact form has room for, in this order.
COMPACT_COUNTERS = ("power", "temp", "mem_used")


def _fmt_value(name: str, value: float, unit: Optional[str]) -> str:
    if unit == "ratio":
        return f"{name} {value:.2f}"
    if unit == "bytes":
        return f"{name} {value / 2**30:.1f}GiB"
    if unit == "Hz":
        return f"{name} {value / 1e6:.0f}MHz"
    if unit == "B/s":
        return f"{name} {value / 1e9:.2f}GB/s"
    if unit == "mask":
        return f"{name} 0x{int(value):x}"
    if unit in ("W", "C"):
        return f"{name} {value:.0f}{unit}"
    return f"{name} {value:g}"


def counters_line(dv: DeviceView) -> str:
    st = dv.state
    if st is None:
        return ""
    units = {k: c.unit for k, c in dv.topology.counters.items()}
    parts = [_fmt_value(k, v, units.get(k)) for k, v in sorted(st.device.items())]
    for pid, vals in sorted(st.partition.items()):
        inner = ", ".join(_fmt_value(k, v, units.get(k)) for k, v in sorted(vals.items()))
        parts.append(f"[p{pid}: {inner}]")
    return "  ".join(parts)


def window_age(dv: DeviceView) -> str:
    """How old the latest window is, on the agent's clock (its heartbeats: an agent whose clock
    is off from this host's still reads right), or "" before the first."""
    age = dv.age_ns() if dv.ts else None
    return "" if age is None else f"  window {age / 1e6:.0f} ms ago"


def pods_line(dv: DeviceView) -> str:
    """The Kubernetes containers holding the device (kubelet attribution), or "" when the
    agent has none to say (no kubelet socket)."""
    pods = None if dv.state is None else dv.state.pods
    if pods is None:
        return ""
    if not pods:
        return "pods: none"
    names = []
    for p in pods:
        where = f" [p{p['partition']}]" if p.get("partition") is not None else ""
        names.append(f"{p.get('namespace', '?')}/{p.get('pod', '?')}/{p.get('container', '?')}{where}")
    return "pods: " + ", ".join(names)


def _state_index(states: np.ndarray) -> np.ndarray:
    """Each state's index into STATE_STYLES: 0..3, and 4 for a unit with no state claimed."""
    out: np.ndarray = np.minimum(states, len(wire.STATE_NAMES))
    return out


def state_counts(dv: DeviceView) -> dict[str, int]:
    """Units in each state; ``unmeasured`` too when some unit has none this window."""
    states = dv.unit_states()
    if states is None:
        return {}
    n = np.bincount(_state_index(states), minlength=len(STATE_STYLES))
    counts = {name: int(n[i]) for i, name in enumerate(wire.STATE_NAMES)}
    if n[-1]:
        counts[UNMEASURED_NAME] = int(n[-1])
    return counts


def _rows(dv: DeviceView) -> list[tuple[str, np.ndarray]]:
    """(label, unit indices) per row: one row per element of the coarsest level."""
    topo = dv.topology
    group = topo.levels[0]
    layout = topo.layout.get(group)
    if layout is None or group == topo.unit:
        return [(topo.unit, np.arange(topo.units))]
    rows = [(f"{group}{g}", np.flatnonzero(layout == g)) for g in range(topo.counts[group])]
    unplaced = np.flatnonzero(layout >= topo.counts[group])
    if unplaced.size:
        rows.append((f"{group}?", unplaced))
    return [r for r in rows if r[1].size]


def _unit_active(dv: DeviceView) -> Optional[np.ndarray]:
    """Each unit's mean ``active`` in the latest window: its own, or its GPC/XCD's where that
    is the finest level measured (AMD: per XCD), NaN for a unit the layout cannot place. None
    when no level measures it."""
    st, topo = dv.state, dv.topology
    if st is None:
        return None
    for level in reversed(topo.levels):
        entry = st.levels.get(level, {})
        if "active" not in entry:
            continue
        return per_unit(topo, level, np.asarray(entry["active"].mean, np.float32), np.nan)
    return None


def _bar(active: Optional[np.ndarray], idx: np.ndarray) -> str:
    """One cell as tall as the mean ``active`` of units ``idx`` (full height when the backend
    has no per-unit ``active``; the lowest when none of these units has a value this window)."""
    if active is None:
        return BARS[8]
    values = active[idx]
    values = values[values == values]
    level = int(np.clip(float(np.mean(values)), 0, 1) * 8 + 0.5) if values.size else 1
    return BARS[max(level, 1)]


def device_panel(dv: DeviceView, node: NodeView) -> Any:
    topo, st = dv.topology, dv.state
    body = Text()
    states = dv.unit_states()
    active = _unit_active(dv)
    if dv.lost:
        body.append(f"device {dv.status}: the agent serves no state for it\n", style="bold red")
    elif st is None:
        body.append("waiting for the first window…\n", style="dim")
    elif states is None:
        body.append(f"no per-unit counters from backend {topo.backend}\n", style="dim")
    else:
        for label, idx in _rows(dv):
            body.append(f"{label:>6} ", style="bold")
            styles = _state_index(states[idx])
            for i in range(idx.size):
                body.append(_bar(active, idx[i:i + 1]), style=STATE_STYLES[styles[i]])
            body.append("\n")
    if st is not None:
        counts = state_counts(dv)
        idle = "?" if st.idle_units is None else f"{st.idle_units:.1f}"
        body.append(f"idle_units {idle}/{topo.units}  ", style="bold cyan")
        for style, (name, n) in zip(STATE_STYLES, counts.items()):
            body.append(f"{name} {n}  ", style=style)
        body.append("\n" + counters_line(dv), style="white")
        if pods_line(dv):
            body.append("\n" + pods_line(dv), style="magenta")
    lost = f"  {dv.status.upper()}" if dv.lost else ""
    title = f"{node.name} / {dv.id} — {topo.model} ({topo.units} {topo.unit}s){window_age(dv)}{lost}"
    return Panel(body, title=title, title_align="left", border_style="red" if node.stale or dv.lost else "blue")


def compact_lines(dv: DeviceView, width: int) -> list[Text]:
    """At most two lines per device: who it is and its idle units; then one cell per GPC/XCD
    (as tall as its units' mean ``active``, coloured by the state most of its units are in),
    the state counts and a few device counters."""
    topo, st = dv.topology, dv.state
    head = compact_head(dv)
    if dv.lost:
        return [fit_width(head, width)]
    if st is None:
        return [fit_width(head, width), fit_width(Text("  waiting for the first window…", style="dim"), width)]
    idle = "?" if st.idle_units is None else f"{st.idle_units:.1f}"
    head.append(f"  idle_units {idle}/{topo.units}", style="bold cyan")
    if "sm_active" in st.device:
        head.append(f"  sm_active {st.device['sm_active']:.2f}")
    body = Text("  ")
    states = dv.unit_states()
    if states is None:
        body.append(f"no per-unit counters from backend {topo.backend}", style="dim")
    else:
        active = _unit_active(dv)
        rows = _rows(dv)
        body.append(f"{topo.levels[0] if len(rows) > 1 else topo.unit}s ", style="bold")
        for _, idx in rows:
            most = int(np.bincount(_state_index(states[idx]), minlength=len(STATE_STYLES)).argmax())
            body.append(_bar(active, idx), style=STATE_STYLES[most])
        for style, (name, n) in zip(STATE_STYLES, state_counts(dv).items()):
            if n:
                body.append(f"  {name} {n}", style=style)
    units = {k: c.unit for k, c in topo.counters.items()}
    for key in COMPACT_COUNTERS:
        if key in st.device:
            body.append("  " + _fmt_value(key, st.device[key], units.get(key)))
    return [fit_width(head, width), fit_width(body, width)]
