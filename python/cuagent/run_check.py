"""``cuagent run --check``: everything ``run`` would set up, then a report instead of a run.

As ``nginx -t`` or ``sshd -t`` do for their configuration: the settings read and checked, the
CURVE keys loaded, the backend opened and its devices described, the feed, sync and metrics
endpoints bound (then released). Any of it that fails fails the same way ``run`` would (one
line, exit 2), but for an endpoint another process listens on now: said, not fatal, since
the running agent a new configuration is checked for holds its own. What succeeds is said
on stdout, with what each device will and will not report, so that an operator sees before
the service starts what schedulers will get.
"""

from __future__ import annotations

import errno
import os
from typing import Iterable, Optional

from .config import RunConfig
from .curve import ServerKeys
from .options import parse_listen
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


# What an endpoint in use now is said with: the running agent a new configuration is for holds it.
HELD_NOW = "(now; if the agent this is for holds it, a restart frees it)"


def _endpoint_lines(cfg: RunConfig, curve: Optional[ServerKeys]) -> tuple[list[str], bool]:
    """Each endpoint bound and released; one in use now is said, not fatal (the agent this
    check is for may hold it: a restart frees it). Any other failure raises as in a run."""
    import zmq

    from .node import sockets

    lines, busy = [], False
    ctx = zmq.Context()
    try:
        for what, endpoint, bind in (("feed", cfg.feed, sockets.bind_feed), ("sync", cfg.sync, sockets.bind_sync)):
            try:
                sock = bind(ctx, endpoint, curve=curve)
            except sockets.EndpointInUse as e:
                lines.append(f"  {what}: {e} {HELD_NOW}")
                busy = True
                continue
            lines.append(f"  {what}: {sockets.listening_on(sock)}, bound and released")
            sock.close(0)
    finally:
        ctx.term()
    if cfg.metrics_listen is None:
        lines.append("  metrics: off (--metrics-listen)")
        return lines, busy
    from .exporters.feed_metrics import FeedMetrics
    from .exporters.prometheus import FeedCollector, MetricsServer

    host, port = parse_listen(cfg.metrics_listen)
    try:  # the server a run starts, bound as it binds (IPv6, SO_REUSEADDR), then closed
        server = MetricsServer(FeedCollector(FeedMetrics()), (host, port))
    except OSError as e:
        if e.errno != errno.EADDRINUSE:
            raise ValueError(f"--metrics-listen {host}:{port}: {e.strerror or e}") from None
        lines.append(f"  metrics: {host}:{port} in use {HELD_NOW}")
        return lines, True
    lines.append(f"  metrics: http://{server.address}/metrics, bound and released")
    server.close()
    return lines, busy


def run(cfg: RunConfig, driver: str, devices: list[DeviceTopology], curve: Optional[ServerKeys],
        config_file: Optional[str]) -> list[str]:
    """The lines ``run --check`` prints, after binding what a run binds."""
    endpoints, busy = _endpoint_lines(cfg, curve)
    lines = ["cuagent run --check: every setting is valid; the backend and endpoints below were opened "
             "and released" + (" (those in use now excepted)" if busy else ""),
             f"  settings: {config_file or 'defaults and flags (no --config)'}",
             f"  node: {cfg.node_name()}; driver: {driver}, {len(devices)} device(s); sampling at "
             f"{cfg.rate_hz:g} Hz, a state window every {cfg.publish_interval_ms:g} ms"]
    for device in devices:
        lines.extend(_device_lines(device))
    lines.extend(endpoints)
    control = cfg.backend_settings.get("profiling_socket") if driver == "nvml" else None
    if control:
        # Checked, never bound: binding it would take it from the agent running now.
        from .node.sockets import ipc_occupant

        held = ipc_occupant(control)
        lines.append(f"  profiling control socket: {control}, " + ("free" if held is None else f"{held} {HELD_NOW}"))
    lines.append("  CURVE: off: anyone who reaches these ports may read the feed" if curve is None
                 else f"  CURVE: on, admitting {len(curve.allowed)} client key(s)")
    if not cfg.pod_resources_socket:
        lines.append("  pod attribution: off")
    else:
        there = os.path.exists(cfg.pod_resources_socket)
        lines.append(f"  pod attribution: from the kubelet's PodResources socket {cfg.pod_resources_socket}"
                     + ("" if there else " (not there now: looked for every few seconds)"))
    if cfg.nfd_features_dir:
        lines.append(f"  NFD labels: written to {cfg.nfd_features_dir}")
    return lines
