"""What the agent asks a backend's slow path between windows: the processes on each device
(for ``state.processes``, PROTOCOL.md §3.2) and whether the partition layout changed (which
makes the agent rebuild its engine and bump ``gen``, §3.1/§3.4).

Both are far more expensive than a window (NVML process queries walk the driver's process
table; psutil reads /proc per pid; a MIG inventory is tens of NVML calls per GPU), so both are
rate-limited here, and both fail soft: a query that raises leaves ``processes`` absent for that
publish or reports "no change", never an invented value.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Optional

log = logging.getLogger("cuagent.slow_path")

DEFAULT_PROCESS_INTERVAL_S = 1.0
DEFAULT_TOPOLOGY_POLL_S = 5.0


class SlowPath:
    """The agent's view of a backend slow path. The base class has nothing to offer:
    no processes (absent on the wire) and a topology that never changes under it."""

    def processes(self, device_index: int, now: float) -> Optional[list[dict[str, Any]]]:
        return None

    def topology_changed(self, now: float) -> bool:
        return False

    def close(self) -> None:
        pass


class NvmlSlowPathPoller(SlowPath):
    """Rate-limited use of :class:`cuagent.backends.nvml.NvmlSlowPath`.

    Processes are queried at most once per ``process_interval_s`` per device, and the same
    list is reused by the publishes in between; the MIG layout is compared every
    ``topology_poll_s``."""

    def __init__(
        self,
        library: Optional[str],
        process_interval_s: float = DEFAULT_PROCESS_INTERVAL_S,
        topology_poll_s: float = DEFAULT_TOPOLOGY_POLL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from .backends import nvml

        if process_interval_s <= 0 or topology_poll_s <= 0:
            raise ValueError(
                f"process interval and topology poll must be > 0 s, got {process_interval_s}, {topology_poll_s}")
        self._slow = nvml.NvmlSlowPath(library)
        self.process_interval_s = process_interval_s
        self.topology_poll_s = topology_poll_s
        self._processes: dict[int, tuple[float, Optional[list[dict[str, Any]]]]] = {}
        self._next_topology = clock() + topology_poll_s

    def close(self) -> None:
        self._slow.close()

    def processes(self, device_index: int, now: float) -> Optional[list[dict[str, Any]]]:
        cached = self._processes.get(device_index)
        if cached is not None and now - cached[0] < self.process_interval_s:
            return cached[1]
        result: Optional[list[dict[str, Any]]] = None
        try:
            result = self._slow.processes(device_index)
        except Exception as e:  # noqa: BLE001 — e.g. the GPU fell off the bus: absent, not fatal
            log.debug("processes of device %d not available: %s", device_index, e)
        self._processes[device_index] = (now, result)
        return result

    def topology_changed(self, now: float) -> bool:
        if now < self._next_topology:
            return False
        self._next_topology = now + self.topology_poll_s
        try:
            return self._slow.mig_layout_changed()
        except Exception as e:  # noqa: BLE001 — e.g. one GPU lost: look again next time
            log.debug("MIG layout check failed: %s", e)
            return False


def for_backend(backend: str, options: dict[str, Any], process_interval_s: float,
                topology_poll_s: float) -> SlowPath:
    """The slow path of a registered backend (``options``: the driver options it was built
    with); the base SlowPath for a backend without one, or whose slow path cannot start."""
    from .backends import registry

    make = registry.get(backend).slow_path
    if make is not None:
        try:
            return make(options, process_interval_s, topology_poll_s)
        except Exception as e:  # noqa: BLE001 — the feed goes on without processes
            log.warning("%s slow path unavailable (no processes, no partition change detection): %s", backend, e)
    return SlowPath()
