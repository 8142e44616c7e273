"""cuagent top's panel for an NVIDIA device, which has no per-unit counters to draw.

NVML measures the device (or each MIG instance) as a whole and CUPTI's PM sampling gives
rollups across SMs (mean, busiest, idlest), never a per-SM or per-GPC series. So the panel
shows what is measured where it is measured: the GPC layout as the probe found it, without
painting activity on it; the device-wide activity once; or, with MIG on, each instance with
its own counters; the kHz band (idlest / mean / busiest SM per window) over the last windows;
the processes; the device counters.

Rendering is pure: functions from a :class:`~cuagent.feed.view.DeviceView` and an
:class:`NvidiaHistory` to lines of :class:`rich.text.Text` of a given width, so tests read the
rendered text without a terminal. The history (windows and CUPTI pause events) lives here:
the client's view keeps only the latest window.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

import numpy as np
from rich.panel import Panel
from rich.text import Text

from .. import wire
from ..feed.view import DeviceView

# Windows of history kept per device: 24 s at the default 100 ms, wider than any terminal.
HISTORY_WINDOWS = 240
PROCESSES_SHOWN = 5
# One column per window: the eight heights of a block, at least the lowest for a measured
# value (a zero is still a measurement); a window without the counter shows as ABSENT.
SPARK = "▁▂▃▄▅▆▇█"
ABSENT = "·"
EIGHTHS = " ▏▎▍▌▋▊▉█"
# Inner width of a rich Panel: one border and one cell of padding on each side.
PANEL_CHROME = 4


@dataclass(frozen=True)
class Band:
    """One window's kHz rollups across SMs (PROTOCOL.md §3.2 ``pm_*``)."""

    lo: float  # pm_sm_active_min: the idlest SM's mean
    mean: float  # pm_sm_active: the mean over SMs
    hi: float  # pm_sm_active_max: the busiest SM's mean
    peak: Optional[float]  # pm_sm_active_peak: the largest one-sample mean
    samples: Optional[int]  # pm_samples: kHz samples folded into the window


def band_of(device: dict[str, float]) -> Optional[Band]:
    """The window's band, or None when CUPTI gave none (paused, busy, not attached)."""
    try:
        lo, mean, hi = device["pm_sm_active_min"], device["pm_sm_active"], device["pm_sm_active_max"]
    except KeyError:
        return None
    peak = device.get("pm_sm_active_peak")
    samples = device.get("pm_samples")
    return Band(float(lo), float(mean), float(hi), None if peak is None else float(peak),
                None if samples is None else int(samples))


class NvidiaHistory:
    """What top remembers per (node, device) beyond the latest window: the last windows'
    bands, and whether CUPTI said it paused (with the reason) or resumed.

    Fed every client update (:meth:`observe`, a ``Client.on_update`` callback)."""

    def __init__(self, keep: int = HISTORY_WINDOWS) -> None:
        self.keep = keep
        self.bands: dict[tuple[str, str], deque[Optional[Band]]] = {}
        # While paused: the reason, and whether a window without the counters came since.
        self.paused: dict[tuple[str, str], tuple[str, bool]] = {}

    def observe(self, update: Any) -> None:
        kind, node, device = update.kind, update.node, update.device
        if kind in ("restart", "gone"):
            self.forget(node)
        elif kind == "state" and device is not None:
            body = update.body
            if isinstance(body, wire.State):
                self.record(node, device, body)
        elif kind == "event":
            ev = update.body
            if isinstance(ev, wire.Event):
                self.event(node, ev.device or device, ev.type, ev.detail)

    def record(self, node: str, device: str, state: wire.State) -> None:
        key = (node, device)
        band = band_of(state.device)
        windows = self.bands.setdefault(key, deque(maxlen=self.keep))
        windows.append(band)
        paused = self.paused.get(key)
        if paused is not None:
            if band is None:
                self.paused[key] = (paused[0], True)
            elif paused[1]:
                # The counters flow again after a gap: the pause is over even if its resume
                # event was missed. A window with counters right after the pause event is
                # not that: it may hold the samples taken before the pause.
                del self.paused[key]

    def event(self, node: str, device: Optional[str], type: str, detail: str) -> None:
        if device is None:
            return
        if type == "profiling_paused":
            self.paused[(node, device)] = (detail, False)
        elif type == "profiling_resumed":
            self.paused.pop((node, device), None)

    def forget(self, node: str) -> None:
        for key in [k for k in self.bands if k[0] == node]:
            del self.bands[key]
        for key in [k for k in self.paused if k[0] == node]:
            del self.paused[key]

    def windows(self, node: str, device: str) -> Sequence[Optional[Band]]:
        return self.bands.get((node, device), ())

    def pause_reason(self, node: str, device: str) -> Optional[str]:
        paused = self.paused.get((node, device))
        return None if paused is None else paused[0]


def is_nvidia_panel(dv: DeviceView) -> bool:
    """An NVIDIA device whose counters are all device- or partition-level (NVML, CUPTI):
    nothing per unit for top's heat map to draw."""
    topo = dv.topology
    return topo.vendor == "nvidia" and not any(c.level in topo.levels for c in topo.counters.values())


# --------------------------------------------------------------------------- formatting


def _ratio(v: Optional[float]) -> str:
    return "  – " if v is None else f"{v:.2f}"


def _gib(b: float) -> str:
    return f"{b / 2**30:.1f}GiB"


def _mem(b: Optional[float]) -> str:
    if b is None:
        return "–"
    if b >= 2**30:
        return _gib(b)
    return f"{b / 2**20:.0f}MiB"


def _gbs(v: float) -> str:
    return f"{v / 1e9:.2f}GB/s"


def _gbs_pairs(values: dict[str, float], pairs: tuple[tuple[str, str, str], ...]) -> list[str]:
    """"label a/b GB/s" for each (label, a, b) of ``pairs`` whose two byte rates are both there."""
    return [f"{label} {values[a] / 1e9:.2f}/{_gbs(values[b])}" for label, a, b in pairs if a in values and b in values]


def _mhz(v: float) -> str:
    return f"{v / 1e6:.0f}MHz"


def bar(v: float, cells: int = 8) -> str:
    """``v`` in [0, 1] as a horizontal bar of ``cells`` cells, in eighths."""
    eighths = int(round(min(max(v, 0.0), 1.0) * cells * 8))
    full, part = divmod(eighths, 8)
    text = "█" * full + (EIGHTHS[part] if full < cells else "")
    return "▕" + text.ljust(cells) + "▏"


def spark(values: Sequence[Optional[float]]) -> str:
    """One character per value in [0, 1]; ABSENT where there is none."""
    out = []
    for v in values:
        if v is None:
            out.append(ABSENT)
        else:
            out.append(SPARK[int(round(min(max(v, 0.0), 1.0) * (len(SPARK) - 1)))])
    return "".join(out)


def ranges(ids: Iterable[int]) -> str:
    """``[124, 125, 126, 130]`` -> ``124-126,130``."""
    out: list[str] = []
    run: list[int] = []
    for i in sorted(int(x) for x in ids):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [i]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(out)


def flow(fields: Sequence[Text | str], width: int, indent: int = 0, sep: str = "  ") -> list[Text]:
    """Fields packed onto lines of at most ``width`` cells, continuation lines indented;
    a field wider than a line is cut with an ellipsis."""
    lines: list[Text] = []
    line = Text()
    for f in fields:
        field = f if isinstance(f, Text) else Text(f)
        if not field.cell_len:
            continue
        lead = sep if line.cell_len else (" " * indent if lines else "")
        if line.cell_len and line.cell_len + len(lead) + field.cell_len > width:
            lines.append(line)
            line, lead = Text(), " " * indent
        line.append(lead)
        room = width - line.cell_len
        if field.cell_len > room:
            field = field.copy()
            field.truncate(max(room, 1), overflow="ellipsis")
        line.append_text(field)
    if line.cell_len:
        lines.append(line)
    return lines


def fit_width(text: Text, width: int) -> Text:
    """``text`` cut to ``width`` cells, with an ellipsis: one row whatever the terminal."""
    text.truncate(width, overflow="ellipsis")
    return text


def compact_head(dv: DeviceView) -> Text:
    """A compact form's first line, for every vendor: node/index, id (shortened), model, and
    for a device that is not ``ok`` its status (the caller then draws nothing more)."""
    topo = dv.topology
    short = dv.id if len(dv.id) <= 16 else dv.id[:12] + "…"
    head = Text(f"{dv.node}/{topo.index} {short} {topo.model}", style="bold")
    if dv.lost:
        head.append(f"  {dv.status.upper()}: no state served", style="bold red")
    return head


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class Group:
    """One GPC-level group of the probed layout."""

    index: int
    sms: np.ndarray  # SM ids
    tpcs: Optional[int]  # distinct TPCs, where the layout has them


@dataclass(frozen=True)
class Layout:
    """The probed grouping: groups that are GPCs, and the units the probe could not place."""

    source: str
    gpcs: list[Group]
    unplaced_tpcs: list[Group]  # a one-TPC group: its SMs never ran a cluster with others
    unplaced_sms: np.ndarray  # SMs with no group at all (ancestor index beyond the count)


def probed_layout(topo: wire.Device) -> Optional[Layout]:
    """The GPC-level groups of ``topo``'s layout, or None when it has none (no probe).

    The probe groups SMs by thread-block-cluster co-residency: a group holding one TPC only
    was never seen in a cluster larger than 2 with any other SMs, so the probe could not
    place it in a GPC (docs/ARCHITECTURE.md, "NVIDIA SM layout"). Group indices follow each
    group's first SM: they are not the hardware's GPC ids."""
    top = topo.levels[0]
    gpc = topo.layout.get(top)
    if top == topo.unit or gpc is None or top not in topo.counts:
        return None
    tpc_level = topo.levels[1] if len(topo.levels) > 2 else None
    tpc = topo.layout.get(tpc_level) if tpc_level is not None else None
    count = topo.counts[top]
    gpcs: list[Group] = []
    single: list[Group] = []
    for g in range(count):
        sms = np.flatnonzero(gpc == g)
        if not sms.size:
            continue
        tpcs = None if tpc is None else int(np.unique(tpc[sms]).size)
        (single if tpcs == 1 else gpcs).append(Group(g, sms, tpcs))
    return Layout(topo.layout_source, gpcs, single, np.flatnonzero(gpc >= count))


def _group_cell(g: Group) -> str:
    tpcs = "" if g.tpcs is None else f" {g.tpcs}TPC"
    return f"g{g.index}{tpcs} {g.sms.size}SM"


def layout_lines(topo: wire.Device, width: int) -> list[Text]:
    """The GPC layout as probed (counts per group, no activity: none is measured per GPC)."""
    layout = probed_layout(topo)
    if layout is None:
        why = f"layout_source {topo.layout_source}" if topo.layout_source != "none" else "not probed"
        return [fit_width(Text(f"GPC layout: unknown ({why}): {topo.units} {topo.unit.upper()}s, grouping not known",
                          style="dim"), width)]
    placed_sms = sum(g.sms.size for g in layout.gpcs)
    tpcs = [g.tpcs for g in layout.gpcs]
    tpc_total = f" · {sum(t for t in tpcs if t is not None)} TPCs" if tpcs and None not in tpcs else ""
    head = Text(f"GPC layout ({layout.source}): {len(layout.gpcs)} GPCs{tpc_total} · {placed_sms} SMs",
                style="bold")
    lines = [fit_width(head, width)]
    cells = [Text(_group_cell(g).ljust(14), style="cyan") for g in layout.gpcs]
    lines += [Text(" ") + line for line in flow(cells, width - 1, sep=" ")]
    stray = [int(s) for g in layout.unplaced_tpcs for s in g.sms] + [int(s) for s in layout.unplaced_sms]
    if stray:
        what = []
        if layout.unplaced_tpcs:
            what.append(f"{len(layout.unplaced_tpcs)} TPCs only ever in clusters of 2")
        if layout.unplaced_sms.size:
            what.append(f"{layout.unplaced_sms.size} SMs in no group")
        lines += flow([Text(f"not placed in a GPC: SMs {ranges(stray)}", style="yellow"), f"({', '.join(what)})"],
                      width, indent=1)
    note = "gN: ids by first SM, not hardware GPC ids; no per-GPC/SM activity on NVIDIA"
    lines.append(fit_width(Text(note, style="dim"), width))
    return lines


def activity_lines(values: dict[str, float], width: int, label: str) -> list[Text]:
    """``sm_active`` as a bar, then the other activity ratios that are present."""
    fields: list[Text | str] = [Text(label, style="bold")]
    if "sm_active" in values:
        fields.append(Text(f"sm_active {values['sm_active']:.2f} {bar(values['sm_active'])}", style="green3"))
    for key, name in (("sm_occupancy", "occupancy"), ("tensor_active", "tensor"), ("dram_active", "dram"),
                      ("gr_active", "gr"), ("gpu_util", "util")):
        if key in values:
            fields.append(f"{name} {values[key]:.2f}")
    if len(fields) == 1:
        fields.append(Text("no activity counter in this window", style="dim"))
    return flow(fields, width, indent=2)


def partition_lines(dv: DeviceView, width: int) -> list[Text]:
    """MIG instances: each with its share of the SMs and memory and its own counters."""
    topo, st = dv.topology, dv.state
    parts = [p for p in topo.partitions if p.kind == "mig"]
    held = sum(p.units for p in parts)
    head = f"MIG: {len(parts)} instance{'s hold' if len(parts) != 1 else ' holds'} {held} of {topo.units} SMs"
    if held < topo.units:
        head += f" ({topo.units - held} in none)"
    lines = [fit_width(Text(head, style="bold"), width)]
    for p in parts:
        values = {} if st is None else st.partition.get(p.id, {})
        share = 100.0 * p.units / topo.units if topo.units else 0.0
        profile = (p.profile or "").removeprefix("MIG ") or "?"
        fields: list[Text | str] = [
            Text(f"p{p.id} {profile:<10} {p.units:>3} SM {share:3.0f}% {_mem(p.memory_bytes) if p.memory_bytes else ''}"
                 .rstrip(), style="cyan")]
        if "sm_active" in values:
            fields.append(Text(f"sm_active {values['sm_active']:.2f} {bar(values['sm_active'], 6)}", style="green3"))
        for key, name in (("sm_occupancy", "occ"), ("tensor_active", "tensor"), ("dram_active", "dram"),
                          ("gr_active", "gr")):
            if key in values:
                fields.append(f"{name} {values[key]:.2f}")
        if len(fields) == 1:
            fields.append(Text("no counters this window", style="dim"))
        lines += [Text(" ") + line for line in flow(fields, width - 1, indent=2)]
    return lines


def cupti_status(dv: DeviceView, history: NvidiaHistory) -> Optional[str]:
    """None while the kHz counters flow; else why they are absent, as far as top knows."""
    if dv.state is not None and band_of(dv.state.device) is not None:
        return None
    # The event seen live first (it precedes the topo that carries it), then the topo's
    # (a pause from before this view joined), for agents whose topo does not say.
    reason = history.pause_reason(dv.node, dv.id) or dv.profiling_paused
    if reason is not None:
        return f"CUPTI paused: {reason}"
    if "pm_sm_active" not in dv.topology.counters:
        return "no CUPTI"
    if any(b is not None for b in history.windows(dv.node, dv.id)):
        return "CUPTI counters absent since the last windows (no pause event seen)"
    return "CUPTI attached, no kHz window yet"


def band_lines(dv: DeviceView, history: NvidiaHistory, width: int) -> list[Text]:
    """The kHz band: busiest / mean / idlest SM per window over the last windows, then the
    other CUPTI rollups of the latest window."""
    status = cupti_status(dv, history)
    windows = list(history.windows(dv.node, dv.id))
    label = 10  # "  max 0.90 "
    cols = max(width - label - 1, 1)
    shown = windows[-cols:]
    lines: list[Text] = []
    if status == "no CUPTI":
        why = "MIG on: CUPTI leaves MIG GPUs to NVML" if _mig(dv) else "no pm_ counters in the topo: NVML only"
        return [fit_width(Text(f"kHz band: no CUPTI ({why})", style="dim"), width)]
    if not any(b is not None for b in shown):
        return [fit_width(Text(f"kHz band: {status}", style="yellow"), width)]
    window_s = (dv.state.window_ns / 1e9) if dv.state is not None else 0.0
    span = f", {len(shown) * window_s:.1f} s" if window_s else ""
    head = f"kHz band across SMs (CUPTI): last {len(shown)} windows{span}"
    lines.append(fit_width(Text(head, style="bold"), width))
    last = shown[-1]
    for name, field, style in (("max", "hi", "red1"), ("mean", "mean", "yellow1"), ("min", "lo", "green3")):
        row = Text(f" {name:>4} {_ratio(None if last is None else getattr(last, field))} ")
        row.append(spark([None if b is None else float(getattr(b, field)) for b in shown]), style=style)
        lines.append(fit_width(row, width))
    if status is not None:
        lines.append(fit_width(Text(status, style="yellow"), width))
        return lines
    device = dv.state.device if dv.state is not None else {}
    fields: list[Text | str] = []
    if last is not None:
        if last.peak is not None:
            fields.append(f"peak {last.peak:.2f}")
        if last.samples is not None:
            fields.append(f"{last.samples} samples/window")
    for key, name in (("pm_tensor_active", "tensor"), ("pm_inst_issue", "issue"), ("pm_sm_idle_warps", "idle warps")):
        if key in device:
            fields.append(f"{name} {device[key]:.2f}")
    if "pm_dram_read" in device or "pm_dram_write" in device:
        fields.append(f"dram r/w {_ratio(device.get('pm_dram_read'))}/{_ratio(device.get('pm_dram_write'))}")
    fields += _gbs_pairs(device, (("nvlink rx/tx", "pm_nvlink_rx", "pm_nvlink_tx"),
                                  ("pcie r/w", "pm_pcie_read", "pm_pcie_write")))
    if "pm_gpc_clock" in device:
        fields.append(f"gpc clock {_mhz(device['pm_gpc_clock'])}")
    lines += [Text(" ") + line for line in flow(fields, width - 1, indent=1)]
    return lines


def process_lines(dv: DeviceView, width: int, shown: int = PROCESSES_SHOWN) -> list[Text]:
    """The processes on the device, busiest SM share first (those without one last)."""
    procs = None if dv.state is None else dv.state.processes
    if procs is None:
        return [fit_width(Text("processes: not listed by this agent", style="dim"), width)]
    if not procs:
        return [fit_width(Text("processes: none", style="dim"), width)]
    ordered = sorted(procs, key=lambda p: (p.get("sm") is None, -float(p.get("sm") or 0.0),
                                           -int(p.get("mem") or 0), int(p.get("pid", 0))))
    lines = [fit_width(Text(f"processes: {len(procs)}, by sm", style="bold"), width)]
    name_w = min(max(width - 26, 4), 32)
    lines.append(fit_width(Text(f" {'PID':>8} {'NAME':<{name_w}} {'SM':>5} {'MEM':>9}", style="dim"), width))
    for p in ordered[:shown]:
        sm = "–" if p.get("sm") is None else f"{100.0 * float(p['sm']):.0f}%"
        name = str(p.get("name") or "?")
        if len(name) > name_w:
            name = name[: name_w - 1] + "…"
        lines.append(fit_width(Text(f" {int(p.get('pid', 0)):>8} {name:<{name_w}} {sm:>5} {_mem(p.get('mem')):>9}"), width))
    if len(procs) > shown:
        lines.append(fit_width(Text(f" … {len(procs) - shown} more", style="dim"), width))
    return lines


def counter_fields(dv: DeviceView) -> list[str]:
    """The device counters present in the latest window (power, temp, clocks, memory, links)."""
    if dv.state is None:
        return []
    d = dv.state.device
    fields: list[str] = []
    if "power" in d:
        fields.append(f"power {d['power']:.0f}W")
    if "temp" in d:
        fields.append(f"temp {d['temp']:.0f}C")
    if "sm_clock" in d:
        fields.append(f"sm {_mhz(d['sm_clock'])}")
    if "mem_clock" in d:
        fields.append(f"mem {_mhz(d['mem_clock'])}")
    if "mem_used" in d:
        total = f"/{_gib(dv.topology.memory_bytes)}" if dv.topology.memory_bytes else ""
        fields.append(f"memory {_gib(d['mem_used'])}{total}")
    if "mem_util" in d:
        fields.append(f"mem busy {d['mem_util']:.2f}")
    fields += _gbs_pairs(d, (("pcie tx/rx", "pcie_tx", "pcie_rx"), ("nvlink tx/rx", "nvlink_tx", "nvlink_rx")))
    if "throttle" in d:
        fields.append(f"throttle 0x{int(d['throttle']):x}")
    if "ecc_uncorrected" in d:
        fields.append(f"ecc {int(d['ecc_uncorrected'])}")
    return fields


def _mig(dv: DeviceView) -> bool:
    return any(p.kind == "mig" for p in dv.topology.partitions)


def full_lines(dv: DeviceView, history: NvidiaHistory, width: int) -> list[Text]:
    """The body of a device's panel, every line at most ``width`` cells."""
    if dv.lost:
        return [fit_width(Text(f"device {dv.status}: the agent serves no state for it", style="bold red"), width)]
    lines = partition_lines(dv, width) if _mig(dv) else layout_lines(dv.topology, width)
    st = dv.state
    if st is None:
        lines.append(Text("waiting for the first window…", style="dim"))
        return lines
    if not _mig(dv):
        lines += activity_lines(st.device, width, "device-wide:")
    lines += band_lines(dv, history, width)
    lines += process_lines(dv, width)
    lines += flow(counter_fields(dv), width, indent=1)
    if st.pods is not None:
        names = ", ".join(f"{p.get('namespace', '?')}/{p.get('pod', '?')}/{p.get('container', '?')}" for p in st.pods)
        lines += flow([Text(f"pods: {names or 'none'}", style="magenta")], width)
    return lines


def compact_lines(dv: DeviceView, history: NvidiaHistory, width: int) -> list[Text]:
    """At most three lines per device, for many GPUs on a short terminal."""
    topo, st = dv.topology, dv.state
    head = compact_head(dv)
    if dv.lost:
        return [fit_width(head, width)]
    if _mig(dv):
        parts = [p for p in topo.partitions if p.kind == "mig"]
        shape = f"MIG {len(parts)} inst"
        if st is not None:
            acts = [st.partition.get(p.id, {}).get("sm_active") for p in parts]
            shape += " sm " + "/".join(_ratio(a).strip() for a in acts)
    else:
        layout = probed_layout(topo)
        shape = "layout unknown" if layout is None else f"{len(layout.gpcs)} GPCs"
        if layout is not None and (layout.unplaced_tpcs or layout.unplaced_sms.size):
            shape += f" +{sum(g.sms.size for g in layout.unplaced_tpcs) + layout.unplaced_sms.size} SMs unplaced"
        if st is not None and "sm_active" in st.device:
            shape += f"  sm_active {st.device['sm_active']:.2f}"
    head.append(f"  {shape}")
    lines = [fit_width(head, width)]
    if st is None:
        lines.append(fit_width(Text("  waiting for the first window…", style="dim"), width))
        return lines
    windows = list(history.windows(dv.node, dv.id))
    status = cupti_status(dv, history)
    band = Text("  ")
    last = windows[-1] if windows else None
    if last is not None:
        band.append(f"SM min/mean/max {last.lo:.2f}/{last.mean:.2f}/{last.hi:.2f}")
        if last.peak is not None:
            band.append(f" peak {last.peak:.2f}")
        band.append(" ")
    cols = max(width - band.cell_len - 1, 0)
    if status not in (None, "no CUPTI"):
        band.append(status, style="yellow")
    elif status == "no CUPTI":
        band.append("no CUPTI", style="dim")
    elif cols:
        band.append(spark([None if b is None else b.mean for b in windows[-cols:]]), style="yellow1")
    lines.append(fit_width(band, width))
    d = st.device
    fields = [f for f in counter_fields(dv) if f.split()[0] in ("power", "temp", "memory")]
    if "sm_clock" in d:
        fields.insert(min(2, len(fields)), f"{_mhz(d['sm_clock'])}")
    procs = st.processes
    if procs:
        top = max(procs, key=lambda p: float(p.get("sm") or 0.0))
        sm = "" if top.get("sm") is None else f" {100.0 * float(top['sm']):.0f}%"
        fields.append(f"procs {len(procs)}: {top.get('name') or top.get('pid')}{sm}")
    elif procs is not None:
        fields.append("procs 0")
    lines.append(fit_width(Text("  " + "  ".join(fields)), width))
    return lines


def title(dv: DeviceView, age: str, width: int) -> str:
    """Node, index, id and model; the id cut to its start where the whole does not fit."""
    lost = f"  {dv.status.upper()}" if dv.lost else ""
    tail = f" — {dv.topology.model}{age}{lost}"
    head = f"{dv.node} / {dv.topology.index} "
    room = width - 6 - len(head) - len(tail)  # the corners and the spaces around the title
    if room < 9 and age:
        return title(dv, "", width)
    ident = dv.id if len(dv.id) <= room else dv.id[: max(room - 1, 8)] + "…"
    return head + ident + tail


def nvidia_panel(dv: DeviceView, history: NvidiaHistory, width: int, age: str = "", stale: bool = False) -> Panel:
    body = Text("\n").join(full_lines(dv, history, max(width - PANEL_CHROME, 20)))
    body.no_wrap = True
    body.overflow = "ellipsis"
    border = "red" if stale or dv.lost else "green"
    return Panel(body, title=title(dv, age, width), title_align="left", border_style=border)

