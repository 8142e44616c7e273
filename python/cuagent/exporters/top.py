"""cuagent top: a live view of any agent or relay, drawn from a :class:`~cuagent.client.Client`.

One panel per device: a device with per-unit counters gets the heat map of
:mod:`.top_heatmap` (one row per GPC/XCD, a cell per unit); an NVIDIA device, which has none,
gets the panel of :mod:`.top_nvidia` (GPC layout or MIG instances, the kHz band, processes,
counters). Below them the feed's health. Without a terminal it prints plain text lines.

A frame never takes more rows than the terminal has (:mod:`.top_fit`): when the full panels
do not fit, every device is drawn compact (two or three lines), ``--device`` naming those
kept in full; what still does not fit is counted in a line of its own ("N more devices not
shown"), and the health line is always drawn.
"""

from __future__ import annotations

import io
import shutil
import sys
import time
from typing import Any, Optional, Sequence, TextIO

from .. import stop_signals
from ..client import Client, DeviceView, NodeView
from . import top_heatmap, top_nvidia
from .top_fit import COMPACT, FULL, HIDDEN, fit
from .top_heatmap import counters_line, pods_line, state_counts, window_age
from .top_nvidia import NvidiaHistory, flow

PLAIN_WIDTH = 100  # lines of the NVIDIA detail in plain text when the width is not known
# The signals that end the view as Ctrl-C does (kill's default, and a closed terminal).


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


def _feed_part(client: Client) -> str:
    s = client.stats
    return f"gaps {s.gaps} ({s.gap_events} events), resyncs {s.resyncs}, restarts {s.restarts}, decode errors {s.decode_errors}"


def health_parts(client: Client, rates: FeedRates) -> list[str]:
    """One part per node (live or stale, heartbeat age, states/s, sampling), then the feed's."""
    parts = []
    now = time.monotonic()
    for name, node in sorted(client.view.nodes.items()):
        hb = node.heartbeat
        sampling = f"sampling {hb.rate_hz:.0f} Hz, dropped {hb.dropped}" if hb else "no heartbeat yet"
        status = "STALE" if node.stale else "live"
        parts.append(
            f"{name}: {status}, hb {now - node.last_heard:.1f}s ago, {rates.rates.get(name, 0):.1f} states/s, {sampling}"
        )
    parts.append(_feed_part(client))
    return parts


def health_line(client: Client, rates: FeedRates) -> str:
    return " | ".join(health_parts(client, rates))


def _nodes_summary(client: Client, rates: FeedRates) -> str:
    """All nodes in one part, for more nodes than the health lines have room for."""
    nodes = client.view.nodes.values()
    stale = sum(n.stale for n in nodes)
    dropped = sum(n.heartbeat.dropped for n in nodes if n.heartbeat)
    return (f"{_plural(len(nodes), 'node')}: {len(nodes) - stale} live, {stale} STALE, "
            f"{sum(rates.rates.values()):.1f} states/s, dropped {dropped}")


def status_lines(client: Client, rates: FeedRates, width: int, most: Optional[int] = None) -> list[Any]:
    """The health line cut into lines of ``width`` cells at its parts, at most ``most`` of
    them: a node each while they fit, else one summary of all nodes."""
    parts = health_parts(client, rates)
    lines = flow(parts, width, sep=" | ")
    if most is not None and len(lines) > most:
        lines = flow([_nodes_summary(client, rates), parts[-1]], width, sep=" | ")[:most]
    for line in lines:
        line.stylize("dim")
    return lines


def waiting_line(client: Client) -> str:
    """What top says before there is a device to draw."""
    if client.view.nodes:
        return "no devices reported yet"
    failing = "".join(f"; {sync}: {why}" for sync, why in client.handshake_failures().items())
    return f"waiting for agents at {', '.join(e.feed for e in client.endpoints)} (nothing heard yet{failing})"


def matches(dv: DeviceView, selector: str) -> bool:
    """``--device``: a device id (or its start), ``node/id``, its index, or ``node/index``."""
    node, _, ident = selector.rpartition("/")
    if node and node != dv.node:
        return False
    return ident == str(dv.topology.index) or (len(ident) >= 4 and dv.id.startswith(ident))


def unmatched_note(devices: Sequence[tuple[NodeView, DeviceView]], selectors: Sequence[str]) -> str:
    """What top says of ``--device`` selectors that name no device it knows ("" when all do)."""
    unmatched = [s for s in selectors if not any(matches(dv, s) for _, dv in devices)]
    return f"--device {', '.join(unmatched)}: no such device (yet)" if unmatched else ""


def _devices(client: Client) -> list[tuple[NodeView, DeviceView]]:
    return [(node, dv) for node in sorted(client.view.nodes.values(), key=lambda n: n.name)
            for dv in node.devices.values()]


def _plural(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def render(client: Client, rates: FeedRates, history: Optional[NvidiaHistory] = None, width: int = 80,
           height: Optional[int] = None, selectors: Sequence[str] = ()) -> Any:
    """Everything top draws, in at most ``height`` rows (None: as many as it takes) of ``width``
    cells (pure: no I/O). The health lines come first in the count, then the devices."""
    from rich.console import Console, Group
    from rich.text import Text

    history = history or NvidiaHistory()
    devices = _devices(client)
    notes: list[Any] = []
    if not devices:
        notes.append(top_nvidia.fit_width(Text(waiting_line(client), style="dim"), width))
    unmatched = unmatched_note(devices, selectors)
    if unmatched:
        notes.append(top_nvidia.fit_width(Text(unmatched, style="yellow"), width))
    # A quarter of the rows at most for the health of many nodes (then summed up in one part).
    status = notes + status_lines(client, rates, width, None if height is None else max(1, height // 4))
    if height is not None:
        status = status[len(status) - min(len(status), height):]

    # Every line drawn is cut to `width`, so a form's rows are its lines; a panel is measured
    # by rendering it, once, and only when the fit gets that far.
    measure = Console(width=width, file=io.StringIO(), color_system=None, legacy_windows=False)
    full: dict[int, Any] = {}
    compact: dict[int, list[Any]] = {}

    def full_form(i: int) -> Any:
        if i not in full:
            node, dv = devices[i]
            full[i] = (top_nvidia.nvidia_panel(dv, history, width, window_age(dv), node.stale)
                       if top_nvidia.is_nvidia_panel(dv) else top_heatmap.device_panel(dv, node))
        return full[i]

    def compact_form(i: int) -> list[Any]:
        if i not in compact:
            dv = devices[i][1]
            compact[i] = (top_nvidia.compact_lines(dv, history, width) if top_nvidia.is_nvidia_panel(dv)
                          else top_heatmap.compact_lines(dv, width))
        return compact[i]

    measured: dict[int, int] = {}

    def full_rows(i: int) -> int:
        if i not in measured:
            measured[i] = len(measure.render_lines(full_form(i), pad=False))
        return measured[i]

    selected = {i for i, (_, dv) in enumerate(devices) if any(matches(dv, s) for s in selectors)}
    rows = None if height is None else height - len(status)
    forms = fit(len(devices), rows, full_rows, lambda i: len(compact_form(i)), selected)
    drawn: list[Any] = []
    for i, form in enumerate(forms):
        if form == FULL:
            drawn.append(full_form(i))
        elif form == COMPACT:
            drawn.extend(compact_form(i))
    hints: list[Any] = []
    if HIDDEN in forms:
        hints.append(Text(f"{_plural(forms.count(HIDDEN), 'more device')} not shown (use --device or a larger "
                          "terminal)", style="yellow", overflow="ellipsis", no_wrap=True))
    if COMPACT in forms:
        why = "not selected" if selected else "terminal too short"
        hints.insert(0, Text(f"compact: {_plural(forms.count(COMPACT), 'device')} ({why}); --device ID for a "
                             "full panel", style="dim", overflow="ellipsis", no_wrap=True))
    if rows is not None:  # fit() kept rows for these; on a tiny terminal there may be none left
        used = sum(full_rows(i) if f == FULL else len(compact_form(i)) for i, f in enumerate(forms) if f != HIDDEN)
        hints = hints[len(hints) - min(len(hints), max(rows - used, 0)):]
    return Group(*drawn, *hints, *status)


def plain_lines(client: Client, rates: FeedRates, history: Optional[NvidiaHistory] = None,
                width: int = PLAIN_WIDTH, selectors: Sequence[str] = ()) -> list[str]:
    """Top's lines without a terminal: every device, or with ``selectors`` (``--device``) only
    those it names (a line counts the others), each in full, then the health line."""
    lines = []
    devices = _devices(client)
    if not devices:
        lines.append(waiting_line(client))
    unmatched = unmatched_note(devices, selectors)
    if unmatched:
        lines.append(unmatched)
    if selectors:
        shown = [(node, dv) for node, dv in devices if any(matches(dv, s) for s in selectors)]
        if len(shown) < len(devices):
            lines.append(f"{_plural(len(devices) - len(shown), 'other device')} not shown (not selected by --device)")
        devices = shown
    for node, dv in devices:
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
    """Follow ``endpoints`` and draw; returns when ``duration`` s have passed, or on Ctrl-C,
    SIGTERM or SIGHUP. ``selectors`` (``--device``): the devices drawn in full whatever the
    terminal's height, the others compact."""
    own = client is None
    client = client or Client(endpoints)
    rates = FeedRates()
    history = NvidiaHistory()
    client.on_update(lambda u: rates.count(u.node) if u.kind == "state" else None)
    client.on_update(history.observe)
    plain = (not out.isatty()) if plain is None else plain
    end = None if duration is None else time.monotonic() + duration
    try:
        with stop_signals.caught() as stopped:
            def running() -> bool:
                return not stopped() and (end is None or time.monotonic() < end)

            if plain:
                width = shutil.get_terminal_size((PLAIN_WIDTH, 40)).columns
                next_print = time.monotonic() + max(interval, 1.0)
                while running():
                    client.poll(0.1)
                    rates.roll()
                    if time.monotonic() >= next_print:
                        print("\n".join(plain_lines(client, rates, history, width, selectors)), file=out, flush=True)
                        next_print += max(interval, 1.0)
                print("\n".join(plain_lines(client, rates, history, width, selectors)), file=out, flush=True)
            else:
                from rich.console import Console
                from rich.live import Live

                console = Console(file=out)

                def draw() -> Any:
                    # One row short of the terminal: the live display ends each frame with a
                    # newline, so a frame as tall as the terminal would scroll its first row off.
                    return render(client, rates, history, console.width, max(console.height - 1, 1), selectors)

                with Live(draw(), console=console, auto_refresh=False, screen=False) as live:
                    next_draw = time.monotonic()
                    while running():
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
