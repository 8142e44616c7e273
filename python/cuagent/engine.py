"""The Python face of the C++ engine: a driver, a sampler thread and lock-free aggregation."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

from . import _core, profiling
from .topology import DeviceState, DeviceTopology

if TYPE_CHECKING:
    # One device's counters in EngineStats (a dict the bindings build; the stubs describe it).
    from ._core import _DeviceStats as DeviceStats

__all__ = ["Engine", "EngineEvent", "EngineStats", "StateThresholds", "StateWindow"]

#: (seq, t_ns, window_ns, windows_missed, body) of a device's latest window: ``body`` is its
#: ``state`` message body (msgpack, PROTOCOL.md §3.2), or None when not asked for.
StateWindow = Tuple[int, int, int, int, Optional[bytes]]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StateThresholds:
    """Thresholds deciding element states (PROTOCOL.md §3.2 defaults)."""

    idle_active: float = 0.05
    saturated_occupancy: float = 0.9
    thrashing_active: float = 0.5
    thrashing_mem_stall: float = 0.6
    hysteresis: float = 0.05

    def _native(self) -> _core.StateThresholds:
        return _core.StateThresholds(
            self.idle_active,
            self.saturated_occupancy,
            self.thrashing_active,
            self.thrashing_mem_stall,
            self.hysteresis,
        )


@dataclass(frozen=True)
class EngineEvent:
    type: str  # device_lost | device_back | backend_error
    device: int  # device index
    device_id: str
    detail: str
    t_ns: int  # Unix ns


@dataclass(frozen=True)
class EngineStats:
    running: bool
    rate_hz: float  # configured tick rate
    target_rate_hz: float  # ticks/s the devices need (devices that refresh slowly tick less)
    achieved_rate_hz: float
    elapsed_s: float
    ticks: int
    skipped_ticks: int
    samples: int
    drops: int  # raw samples lost to full rings
    read_errors: int
    events_dropped: int
    jitter_p50_ns: int
    jitter_p90_ns: int
    jitter_p99_ns: int
    jitter_max_ns: int
    devices: List[DeviceStats]


def _make_driver(name: str, devices: Optional[Sequence[object]], seed: int, options: dict[str, object]) -> _core.Driver:
    from .backends import registry

    return registry.get(name).make_driver(devices, seed, **options)


class Engine:
    """Samples devices at `rate_hz` and aggregates windows of `window_ms`.

    >>> with Engine(driver="mock", devices=[MockDevice("h100-sxm")], rate_hz=1000) as engine:
    ...     engine.snapshot()
    """

    def __init__(
        self,
        driver: str = "mock",
        devices: Optional[Sequence[object]] = None,
        *,
        rate_hz: float = 1000.0,
        window_ms: float = 100.0,
        seed: int = 0,
        thresholds: Optional[StateThresholds] = None,
        ring_capacity: int = 0,
        **driver_options: object,
    ) -> None:
        if isinstance(rate_hz, bool) or not isinstance(rate_hz, (int, float)) or not rate_hz > 0:
            raise ValueError(f"rate_hz must be a number > 0, got {rate_hz!r}")
        if isinstance(window_ms, bool) or not isinstance(window_ms, (int, float)) or not window_ms > 0:
            raise ValueError(f"window_ms must be a number > 0, got {window_ms!r}")
        if ring_capacity < 0:
            raise ValueError(f"ring_capacity must be >= 0 (0: automatic), got {ring_capacity!r}")
        self.thresholds = thresholds or StateThresholds()
        # A backend may add further sources per device (NVML + CUPTI: cuagent.profiling).
        self._driver, self._sources, self.profiling = profiling.unpack(
            _make_driver(driver, devices, seed, driver_options))
        self._native = _core.Engine(
            self._driver,
            float(rate_hz),
            int(round(window_ms * 1e6)),
            int(ring_capacity),
            self.thresholds._native(),
            sources=self._sources,
        )
        self.driver_name = driver  # the registered backend that built the driver
        self.rate_hz = float(rate_hz)
        self.window_ms = float(window_ms)
        self.seed = seed
        self._topology = [
            DeviceTopology.from_description(self._native.device(i)) for i in range(self._native.device_count)
        ]

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> "Engine":
        self._native.start()
        log.info(
            "engine started: backend=%s devices=%d rate_hz=%g window_ms=%g",
            self.backend,
            len(self._topology),
            self.rate_hz,
            self.window_ms,
        )
        return self

    def stop(self) -> None:
        self._native.stop()

    @property
    def running(self) -> bool:
        return self._native.running

    def __enter__(self) -> "Engine":
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what it knows -------------------------------------------------------------
    @property
    def backend(self) -> str:
        return self._native.backend

    def topology(self) -> List[DeviceTopology]:
        return list(self._topology)

    def snapshot(self) -> List[Optional[DeviceState]]:
        """Latest finished window of every device (None before a device's first window)."""
        out: List[Optional[DeviceState]] = []
        for i, topo in enumerate(self._topology):
            w = self._native.latest(i)
            out.append(None if w is None else DeviceState.from_window(topo, w))
        return out

    def latest_states(self, newer_than_ns: Sequence[int], extras: Sequence[bytes], extra_entries: Sequence[int],
                      ) -> List[Optional[StateWindow]]:
        """Every device's latest finished window as the feed publishes it (None before its
        first), in one call. A device's body is encoded by the core, from the window buffer,
        only when its window ended after ``newer_than_ns[i]`` (Unix ns; otherwise body is
        None), and ends with ``extra_entries[i]`` packed key/value pairs ``extras[i]``
        (:func:`cuagent.wire.encode_state_extras`). It equals
        ``wire.pack(wire.encode_state_body(snapshot()[i], counters, processes, pods))`` byte
        for byte (tests/test_state_encoder.py)."""
        windows: List[Optional[StateWindow]] = self._native.latest_states(newer_than_ns, extras, extra_entries)
        return windows

    def summary_records(self, now_ns: int, lost: Sequence[bool]) -> bytes:
        """The node summary's records (PROTOCOL.md §3.5, layout 1: 47 bytes per device) at
        ``now_ns`` (Unix ns), written by the core from the windows :meth:`latest_states` last
        took; ``lost[i]``: device i's status is lost. The same bytes as
        :class:`cuagent.node.summary.SummaryBuilder` makes of those windows
        (tests/test_summary_core.py)."""
        records: bytes = self._native.summary_records(now_ns, lost)
        return records

    def stats(self) -> EngineStats:
        return EngineStats(**self._native.stats())

    def events(self) -> List[EngineEvent]:
        """Events raised since the last call (device lost/back, backend errors)."""
        return [
            EngineEvent(type=t, device=d, device_id=self._topology[d].id, detail=detail, t_ns=ts)
            for t, d, ts, detail in self._native.drain_events()
        ] + profiling.events(self.profiling, self._sources, lambda t, d, detail: EngineEvent(
            type=t, device=d, device_id=self._topology[d].id, detail=detail, t_ns=time.time_ns()))

    @property
    def window_fd(self) -> int:
        """A file descriptor that becomes readable when any device finishes a window.

        Poll it (select, zmq.Poller, asyncio) instead of guessing when windows
        are due; `drain_window_fd()` re-arms it."""
        return self._native.window_fd

    def drain_window_fd(self) -> None:
        self._native.drain_window_fd()

    @property
    def driver(self) -> _core.Driver:
        """The native driver (backends expose extra slow-path calls on it)."""
        driver: _core.Driver = self._driver
        return driver
