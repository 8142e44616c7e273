"""``cuagent run --check``: everything ``run`` would set up, then a report instead of a run.

As ``nginx -t`` or ``sshd -t`` do for their configuration: the settings read and checked, the
CURVE keys loaded, the backend opened and its devices described, the feed, sync and metrics
endpoints bound (then released). Any of it that fails fails the same way ``run`` would (one
line, exit 2); what succeeds is said on stdout, with what each device will and will not
report, so that an operator sees before the service starts what schedulers will get.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Optional

from .config import RunConfig
from .topology import DeviceTopology


def _counters_by_level(device: DeviceTopology) -> str:
    """``sm: active, occupancy; device: power_w, ...`` in the device's level order."""
    levels: dict[str, list[str]] = {}
    for name, info in device.counters.items():
        levels.setdefault(info.level, []).append(name)
    order = [*device.levels, "partition", "device"]
    ranked = sorted(levels, key=lambda lv: order.index(lv) if lv in order else len(order))
    return "; ".join(f"{level}: {', '.join(sorted(levels[level]))}" for level in ranked) or "none"


def _device_lines(device: DeviceTopology) -> Iterable[str]:
    counts = ", ".join(f"{device.counts[lv]} {lv}s" for lv in device.levels if lv in device.counts)
    where = "".join(f", {label} {value}" for label, value in (("PCI", device.pci), ("NUMA node", device.numa))
                    if value is not None)
    yield f"  device {device.index} {device.id}: {device.model}{' (' + where[2:] + ')' if where else ''}"
    yield f"    units: {counts}; layout: {device.layout_source or 'none'}"
    partitions = [p for p in device.partitions if p.kind != "whole"]
    if partitions:
        yield "    partitions: " + ", ".join(f"{p.id} {p.profile or p.kind} ({p.units} {device.unit}s)"
                                          for p in partitions)
    yield f"    counters: {_counters_by_level(device)}"
    finest = device.levels[-1] if device.levels else device.unit
    if not any(info.level == finest for info in device.counters.values()):
        yield (f"    no per-{finest} counter: this backend reports activity for the device (or its "
               "partitions) only, not per unit")


def report(cfg: RunConfig, driver: str, devices: list[DeviceTopology], listening: str,
           curve_keys: Optional[int], metrics: Optional[str], config_file: Optional[str],
           pods: Any) -> list[str]:
    """The lines ``run --check`` prints. ``curve_keys``: how many client keys CURVE admits
    (None: CURVE off); ``metrics``: the /metrics address bound, if any."""
    lines = ["cuagent run --check: every setting is valid, and everything below was opened and released",
             f"  settings: {config_file or 'defaults and flags (no --config)'}",
             f"  node: {cfg.node_name()}; driver: {driver}, {len(devices)} device(s); sampling at "
             f"{cfg.rate_hz:g} Hz, a state window every {cfg.publish_interval_ms:g} ms"]
    for device in devices:
        lines.extend(_device_lines(device))
    lines.append(f"  bound: {listening}")
    lines.append("  CURVE: off: anyone who reaches these ports may read the feed" if curve_keys is None
                 else f"  CURVE: on, admitting {curve_keys} client key(s)")
    lines.append(f"  metrics: http://{metrics}/metrics" if metrics else "  metrics: off (--metrics-listen)")
    if pods is None:
        lines.append("  pod attribution: off")
    else:
        there = os.path.exists(pods.socket_path)
        lines.append(f"  pod attribution: from the kubelet's PodResources socket {pods.socket_path}"
                     + ("" if there else " (not there now: looked for every few seconds)"))
    return lines
