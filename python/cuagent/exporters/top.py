"""cuagent top: a live view of any agent or relay, drawn from a :class:`~cuagent.client.Client`.

One panel per device: its units as a heat map, one row per GPC/XCD (from the topo layout),
each cell coloured by the unit's state and as tall as its mean ``active``; the partition and
device counters; and the feed's health. An NVIDIA device, which has no per-unit counters, gets
the panel of :mod:`.top_nvidia` (GPC layout or MIG instances, the kHz band, processes,
counters). Without a terminal it prints plain text lines.

Many GPUs on a short terminal: when the full NVIDIA panels do not fit the terminal's height,
each such device is drawn in compact form (three lines); ``--device`` names the devices to
draw in full whatever the height, the others staying compact.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any, Optional, Sequence, TextIO

import numpy as np

from .. import wire
from ..client import Client, DeviceView, NodeView
from . import top_nvidia
from .top_nvidia import NvidiaHistory

STATE_STYLES = ("grey35", "green3", "yellow1", "red1")  # idle, active, saturated, thrashing
BARS = " ▁▂▃▄▅▆▇█"
PLAIN_WIDTH = 100  # lines of the NVIDIA detail in plain text when the width is not known


class FeedRates:
    """State messages per second per node, measured by the viewer itself."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.rates: dict[str, float] = {}
        self._t = time.monotonic()

    def count(self, node: str) -> None:
        self.counts[node] = self.counts.get(node, 0) + 1

    def roll(self) -> None:
        now = time.monotonic()
        dt = now - self._t
        if dt >= 1.0:
            self.rates = {n: c / dt for n, c in self.counts.items()}
            self.counts, self._t = {}, now


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


def state_counts(dv: DeviceView) -> dict[str, int]:
    states = dv.unit_states()
    if states is None:
        return {}
    return {name: int(np.count_nonzero(states == i)) for i, name in enumerate(wire.STATE_NAMES)}


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


def device_panel(dv: DeviceView, node: NodeView) -> Any:
    from rich.panel import Panel
    from rich.text import Text

    topo, st = dv.topology, dv.state
    body = Text()
    states = dv.unit_states()
    active = None
    if st is not None:
        unit_level = st.levels.get(topo.unit, {})
        if "active" in unit_level:
            active = unit_level["active"].mean
    if dv.lost:
        body.append(f"device {dv.status}: the agent serves no state for it\n", style="bold red")
    elif st is None:
        body.append("waiting for the first window…\n", style="dim")
    elif states is None:
        body.append(f"no per-unit counters from backend {topo.backend}\n", style="dim")
    else:
        for label, idx in _rows(dv):
            body.append(f"{label:>6} ", style="bold")
            for u in idx:
                level = 8 if active is None else int(np.clip(active[u], 0, 1) * 8 + 0.5)
                body.append(BARS[max(level, 1)], style=STATE_STYLES[min(int(states[u]), 3)])
            body.append("\n")
    if st is not None:
        counts = state_counts(dv)
        idle = "?" if st.idle_units is None else f"{st.idle_units:.1f}"
        body.append(f"idle_units {idle}/{topo.units}  ", style="bold cyan")
        for i, name in enumerate(wire.STATE_NAMES):
            if name in counts:
                body.append(f"{name} {counts[name]}  ", style=STATE_STYLES[i])
        body.append("\n" + counters_line(dv), style="white")
        if pods_line(dv):
            body.append("\n" + pods_line(dv), style="magenta")
    age = "" if not dv.ts else f"  window {(time.time_ns() - dv.ts) / 1e6:.0f} ms ago"
    lost = f"  {dv.status.upper()}" if dv.lost else ""
    title = f"{node.name} / {dv.id} — {topo.model} ({topo.units} {topo.unit}s){age}{lost}"
    return Panel(body, title=title, title_align="left", border_style="red" if node.stale or dv.lost else "blue")


def health_line(client: Client, rates: FeedRates) -> str:
    s = client.stats
    parts = []
    now = time.monotonic()
    for name, node in sorted(client.view.nodes.items()):
        hb = node.heartbeat
        sampling = f"sampling {hb.rate_hz:.0f} Hz, dropped {hb.dropped}" if hb else "no heartbeat yet"
        status = "STALE" if node.stale else "live"
        parts.append(
            f"{name}: {status}, hb {now - node.last_heard:.1f}s ago, {rates.rates.get(name, 0):.1f} states/s, {sampling}"
        )
    parts.append(f"gaps {s.gaps} ({s.gap_events} events), resyncs {s.resyncs}, restarts {s.restarts}, decode errors {s.decode_errors}")
    return " | ".join(parts)


def matches(dv: DeviceView, selector: str) -> bool:
    """``--device``: a device id (or its start), ``node/id``, its index, or ``node/index``."""
    node, _, ident = selector.rpartition("/")
    if node and node != dv.node:
        return False
    return ident == str(dv.topology.index) or (len(ident) >= 4 and dv.id.startswith(ident))


def _age(dv: DeviceView) -> str:
    return "" if not dv.ts else f"  window {(time.time_ns() - dv.ts) / 1e6:.0f} ms ago"


def _devices(client: Client) -> list[tuple[NodeView, DeviceView]]:
    return [(node, dv) for node in sorted(client.view.nodes.values(), key=lambda n: n.name)
            for dv in node.devices.values()]


def compact_set(client: Client, history: NvidiaHistory, width: int, height: Optional[int],
                selectors: Sequence[str] = ()) -> set[tuple[str, str]]:
    """The NVIDIA devices to draw compact: with ``selectors``, all but the selected ones;
    else all of them when their full panels do not fit ``height`` rows (None: no limit)."""
    nvidia = [dv for _, dv in _devices(client) if top_nvidia.is_nvidia_panel(dv)]
    if selectors:
        return {(dv.node, dv.id) for dv in nvidia if not any(matches(dv, s) for s in selectors)}
    if height is None:
        return set()
    rows = 1 + sum(top_nvidia.full_height(dv, history, width) for dv in nvidia)
    rows += sum(len(_rows(dv)) + 5 for _, dv in _devices(client) if not top_nvidia.is_nvidia_panel(dv))
    return {(dv.node, dv.id) for dv in nvidia} if rows > height else set()


def render(client: Client, rates: FeedRates, history: Optional[NvidiaHistory] = None, width: int = 80,
           height: Optional[int] = None, selectors: Sequence[str] = ()) -> Any:
    """Everything top draws, for a terminal ``width`` x ``height`` (pure: no I/O)."""
    from rich.console import Group
    from rich.text import Text

    history = history or NvidiaHistory()
    compact = compact_set(client, history, width, height, selectors)
    panels: list[Any] = []
    for node, dv in _devices(client):
        if not top_nvidia.is_nvidia_panel(dv):
            panels.append(device_panel(dv, node))
        elif (dv.node, dv.id) in compact:
            panels.extend(top_nvidia.compact_lines(dv, history, width))
        else:
            panels.append(top_nvidia.nvidia_panel(dv, history, width, _age(dv), node.stale))
    if not panels:
        panels.append(Text("waiting for agents…", style="dim"))
    if compact:
        hint = "terminal too short" if not selectors else "not selected"
        panels.append(Text(f"compact: {len(compact)} NVIDIA device(s) ({hint}); --device ID for a full panel",
                           style="dim"))
    unmatched = [s for s in selectors if not any(matches(dv, s) for _, dv in _devices(client))]
    if unmatched:
        panels.append(Text(f"--device {', '.join(unmatched)}: no such device (yet)", style="yellow"))
    panels.append(Text(health_line(client, rates), style="dim"))
    return Group(*panels)


def plain_lines(client: Client, rates: FeedRates, history: Optional[NvidiaHistory] = None,
                width: int = PLAIN_WIDTH) -> list[str]:
    lines = []
    for node in sorted(client.view.nodes.values(), key=lambda n: n.name):
        for dv in node.devices.values():
            st = dv.state
            if dv.lost:
                lines.append(f"{node.name}/{dv.id} {dv.topology.model}: {dv.status.upper()} (no state served)")
                continue
            if st is None:
                lines.append(f"{node.name}/{dv.id} {dv.topology.model}: no window yet")
                continue
            if top_nvidia.is_nvidia_panel(dv):
                idle_units = "?" if st.idle_units is None else f"{st.idle_units:.1f}"
                lines.append(f"{node.name}/{dv.id} {dv.topology.model}: idle_units {idle_units}/{dv.topology.units}")
                body = top_nvidia.full_lines(dv, history or NvidiaHistory(), width - 2)
                lines += ["  " + line.plain for line in body]
                continue
            counts = " ".join(f"{k}={v}" for k, v in state_counts(dv).items())
            idle = ",".join(str(g) for g in dv.idle_groups()) or "-"
            idle_units = "?" if st.idle_units is None else f"{st.idle_units:.1f}"
            lines.append(
                f"{node.name}/{dv.id} {dv.topology.model}: idle_units {idle_units}/{dv.topology.units}"
                f" states[{counts}] idle {dv.topology.levels[0]}s [{idle}] {counters_line(dv)}"
                + (f" {pods_line(dv)}" if pods_line(dv) else "")
            )
    lines.append(health_line(client, rates))
    return lines


def run_top(
    endpoints: list[str],
    duration: Optional[float] = None,
    plain: Optional[bool] = None,
    interval: float = 0.5,
    out: TextIO = sys.stdout,
    client: Optional[Client] = None,
    selectors: Sequence[str] = (),
) -> int:
    """Follow ``endpoints`` and draw; returns when ``duration`` s have passed (or on Ctrl-C).
    ``selectors`` (``--device``): the NVIDIA devices drawn in full, the others compact."""
    own = client is None
    client = client or Client(endpoints)
    rates = FeedRates()
    history = NvidiaHistory()
    client.on_update(lambda u: rates.count(u.node) if u.kind == "state" else None)
    client.on_update(history.observe)
    plain = (not out.isatty()) if plain is None else plain
    end = None if duration is None else time.monotonic() + duration
    try:
        if plain:
            width = shutil.get_terminal_size((PLAIN_WIDTH, 40)).columns
            next_print = time.monotonic() + max(interval, 1.0)
            while end is None or time.monotonic() < end:
                client.poll(0.1)
                rates.roll()
                if time.monotonic() >= next_print:
                    print("\n".join(plain_lines(client, rates, history, width)), file=out, flush=True)
                    next_print += max(interval, 1.0)
            print("\n".join(plain_lines(client, rates, history, width)), file=out, flush=True)
        else:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=out)

            def draw() -> Any:
                return render(client, rates, history, console.width, console.height, selectors)

            with Live(draw(), console=console, auto_refresh=False, screen=False) as live:
                next_draw = time.monotonic()
                while end is None or time.monotonic() < end:
                    client.poll(0.05)
                    rates.roll()
                    if time.monotonic() >= next_draw:
                        live.update(draw(), refresh=True)
                        next_draw += interval
    except KeyboardInterrupt:
        pass
    finally:
        if own:
            client.close()
    return 0
