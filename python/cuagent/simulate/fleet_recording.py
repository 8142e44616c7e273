"""What a synthetic fleet publishes for each of its nodes: frames recorded once from a real
:class:`~cuagent.engine.Engine` on the mock driver, encoded by :mod:`cuagent.wire`.

Two profiles of one recording:

- ``sm``: the mock's devices as the agent publishes them (per-SM levels, GPC/TPC layout:
  about 3.4 KB per H100 window).
- ``device``: what an NVML GPU without the SM-layout probe publishes (PROTOCOL.md §3.2, README
  "Protocol"): ``levels: ["sm"]``, no layout, only the counters measured per partition or
  device, no ``levels`` in ``state``, and ``idle_units`` from ``sm_active`` (§3.2's rule for
  device-level data). The values are still the mock's, and say so (``backend: mock``).

Each recorded window also gives the node summary (``sum``, PROTOCOL.md §3.5) an agent would
publish after it: one record per device of the profile's topo, made by the agent's own
:class:`~cuagent.node.summary.SummaryBuilder` from the same windows as the ``state`` bodies (the
agent's core writes byte-identical records), aged to the newest window end of the row. For the
``device`` profile the records are those of the device-level topo and states: no unit states.

Bodies are packed once here and shared by every node; only headers differ between nodes.
"""

from __future__ import annotations

import dataclasses
import select
import time
from dataclasses import dataclass
from typing import Any, Sequence

from .. import wire
from ..topology import DeviceTopology

PROFILES = ("sm", "device")
DEFAULT_DEVICES = ("h100-sxm:training", "h100-sxm:inference", "h100-sxm:fragmented", "h100-sxm:idle")
# The engine's sampling rate while recording: the agent's default.
RECORD_RATE_HZ = 1000.0
# Longest wait for the engine's windows (a 2-core machine under load is slow, never this slow).
RECORD_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Recording:
    """``devices``: each device as published (the profile applied); ``states[w][d]``: the packed
    ``state`` body of device ``d`` in recorded window ``w``; ``sums[w]``: the packed ``sum`` body
    of window ``w`` (every device's record); ``rate_hz``: the engine's achieved sampling rate
    (what heartbeats report)."""

    profile: str
    window_ms: float
    devices: list[DeviceTopology]
    states: list[list[bytes]]
    sums: list[bytes]
    rate_hz: float

    def topo_body(self, agent: wire.AgentInfo) -> bytes:
        return wire.pack(wire.encode_topo_body(self.devices, agent))


def device_only(topo: DeviceTopology) -> DeviceTopology:
    """``topo`` as NVML without the SM-layout probe describes it: units, no grouping, and the
    counters measured per partition or device only."""
    counters = {name: c for name, c in topo.counters.items()
                if c.level in (wire.PARTITION_LEVEL, wire.DEVICE_LEVEL)}
    return dataclasses.replace(topo, levels=[topo.unit], layout={}, layout_source="none",
                               counts={topo.unit: topo.units}, counters=counters)


def device_only_state(state: wire.State, topo: DeviceTopology) -> wire.State:
    """``state`` without its unit and group levels; ``idle_units`` from ``sm_active`` as
    §3.2 says for device-level data (absent when the device has no ``sm_active``)."""
    active = state.device.get("sm_active")
    idle = None if active is None else (1.0 - float(active)) * topo.units
    return dataclasses.replace(state, levels={}, idle_units=idle)


def record(profile: str = "sm", gpus: int = 8, devices: Sequence[str] = DEFAULT_DEVICES, window_ms: float = 100.0,
           windows: int = 10, seed: int = 1) -> Recording:
    """Run a mock engine of ``gpus`` devices (``devices`` cycled: ``PRESET[:SCENARIO]``) until
    each has finished ``windows`` windows, and keep them, encoded for ``profile``."""
    from ..backends.mock import parse_devices
    from ..engine import Engine
    from ..mock import MockDevice
    from ..node.summary import SummaryBuilder

    if profile not in PROFILES:
        raise ValueError(f"profile {profile!r}: expected one of {', '.join(PROFILES)}")
    specs = parse_devices(devices)
    mocks = [MockDevice(preset, scenario=scenario) for preset, scenario in (specs[i % len(specs)] for i in range(gpus))]
    engine = Engine(driver="mock", devices=mocks, rate_hz=RECORD_RATE_HZ, window_ms=window_ms, seed=seed)
    topology = engine.topology()
    seen: list[list[Any]] = [[] for _ in topology]
    engine.start()
    try:
        deadline = time.monotonic() + RECORD_TIMEOUT_S + windows * window_ms / 1000.0
        # The first window may be partial (the sampler started inside it): skip it.
        while min(len(s) for s in seen) < windows + 1:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the mock engine finished {min(len(s) for s in seen)} of {windows + 1} "
                                   f"windows in {RECORD_TIMEOUT_S:g} s")
            select.select([engine.window_fd], [], [], 0.2)
            engine.drain_window_fd()
            for i, st in enumerate(engine.snapshot()):
                if st is not None and (not seen[i] or st.t_ns > seen[i][-1].t_ns):
                    seen[i].append(st)
        rate_hz = engine.stats().achieved_rate_hz
    finally:
        engine.stop()
    published = [device_only(t) for t in topology] if profile == "device" else list(topology)
    summaries = SummaryBuilder(published)
    states: list[list[bytes]] = []
    sums: list[bytes] = []
    for w in range(1, windows + 1):
        row = []
        window = []
        for i, topo in enumerate(topology):
            st = seen[i][w]
            body = wire.encode_state_body(st, topo.counters)
            if profile == "device":
                only = device_only_state(wire.decode_state_body(body, topo), topo)
                body = wire.encode_state_body(only, published[i].counters)
                # The summary of what this state body says: no unit levels, its idle_units.
                st = dataclasses.replace(st, levels={}, groups={}, idle_units=only.idle_units)
            row.append(wire.pack(body))
            window.append(st)
        states.append(row)
        # Made as the window's last device finished, as the agent makes it after a publish pass.
        end = max(int(st.t_ns) for st in window)
        sums.append(wire.pack(wire.encode_summary_body(summaries.records(window, (), end))))
    return Recording(profile, window_ms, published, states, sums, rate_hz)
