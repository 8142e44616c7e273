"""Simulated GPUs for development and tests: the public description of one mock device."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["FaultError", "MockDevice", "MockFault", "parse_fault", "presets", "scenarios", "with_faults"]


@dataclass(frozen=True)
class MockDevice:
    """One simulated device for ``Engine(driver="mock", devices=[...])``.

    ``preset`` is the part (``h100-sxm``, ``a100-sxm``, ``mi300x``, ``generic``;
    ``generic`` needs ``units``), ``scenario`` the workload (``idle``, ``training``,
    ``inference``, ``fragmented``, ``thrashing``, ``mig``). The fault options inject
    failures, timed from the device's first read: it falls off the bus at
    ``lost_at_s`` (and returns, reset and idle, its workload starting over, at
    ``back_at_s``), each read fails with probability
    ``read_error_rate``, and every ``slow_read_every_s`` one read stalls for
    ``slow_read_ms``. Names and values are checked when the driver is built.
    """

    preset: str = "h100-sxm"
    scenario: str = "training"
    units: int | None = None
    lost_at_s: float | None = None
    back_at_s: float | None = None
    read_error_rate: float = 0.0
    slow_read_every_s: float | None = None
    slow_read_ms: float = 0.0

    def to_spec(self) -> dict[str, Any]:
        """The dict form ``_core.make_mock_driver`` accepts."""
        return {
            "preset": self.preset,
            "scenario": self.scenario,
            "units": self.units,
            "lost_at_s": _or(self.lost_at_s, -1.0),
            "back_at_s": _or(self.back_at_s, -1.0),
            "read_error_rate": self.read_error_rate,
            "slow_read_every_s": _or(self.slow_read_every_s, 0.0),
            "slow_read_ms": self.slow_read_ms,
        }


def _or(value: float | None, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"mock device: expected a number of seconds, got {value!r}")
    return float(value)


def presets() -> list[str]:
    """Preset names the mock driver accepts."""
    from cuagent import _core

    return list(_core.mock_presets())


def scenarios() -> list[str]:
    """Scenario names the mock driver accepts."""
    from cuagent import _core

    return list(_core.mock_scenarios())


# --------------------------------------------------------------------------- faults from text

#: What ``--mock-faults`` / ``mock_faults`` accept, for messages and --help.
FAULT_SYNTAX = "DEVICE:lost@TIME[..TIME], DEVICE:errors=RATE or DEVICE:slow=STALL/PERIOD (DEVICE: index or *)"
# Far beyond any rehearsal, and well inside what the driver converts to 64-bit nanoseconds.
_MAX_FAULT_TIME_S = 1e6
_MAX_STALL_MS = 60_000.0  # the driver's own limit


class FaultError(ValueError):
    """A fault spec that cannot be used: ``spec`` and the ``reason``."""

    def __init__(self, spec: str, reason: str) -> None:
        super().__init__(f"mock fault {spec!r}: {reason}")
        self.spec, self.reason = spec, reason


@dataclass(frozen=True)
class MockFault:
    """One fault of one simulated device (``device`` None: every device), as the
    :class:`MockDevice` fields it sets."""

    device: int | None
    kind: str  # lost | errors | slow
    fields: tuple[tuple[str, float], ...]

    def apply(self, device: MockDevice) -> MockDevice:
        changes: dict[str, Any] = dict(self.fields)
        return replace(device, **changes)


def _duration_s(text: str, what: str) -> float:
    """``5s``, ``300ms``, ``1.5s`` -> seconds. A unit is required: ``5`` could mean either."""
    for unit, scale in (("ms", 1e-3), ("s", 1.0)):
        if text.endswith(unit):
            number = text[: -len(unit)]
            break
    else:
        raise ValueError(f"{what} {text!r} needs a unit: s or ms (e.g. 5s, 300ms)")
    try:
        value = float(number) * scale
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a number of s or ms") from None
    if not 0.0 <= value <= _MAX_FAULT_TIME_S:  # NaN fails too
        raise ValueError(f"{what} {text!r} is out of range: expected 0 to {_MAX_FAULT_TIME_S:g} s")
    return value


def parse_fault(spec: str) -> MockFault:
    """``1:lost@5s`` (device 1 falls off the bus 5 s after its first read), ``1:lost@5s..8s``
    (and is back, reset, at 8 s), ``0:errors=0.1`` (each read fails with probability 0.1),
    ``*:slow=300ms/2s`` (every device: one read in every 2 s stalls for 300 ms).
    Raises FaultError naming the spec and what is accepted."""
    text = spec.strip()
    device_text, sep, fault = text.partition(":")
    try:
        if not sep or not fault:
            raise ValueError(f"expected {FAULT_SYNTAX}")
        device: int | None
        if device_text == "*":
            device = None
        elif device_text.isdigit():
            device = int(device_text)
        else:
            raise ValueError(f"device {device_text!r} is not an index (0, 1, ...) or *")
        if fault.startswith("lost@"):
            lost_text, dots, back_text = fault[len("lost@"):].partition("..")
            lost = _duration_s(lost_text, "loss time")
            fields: tuple[tuple[str, float], ...] = (("lost_at_s", lost),)
            if dots:
                back = _duration_s(back_text, "return time")
                if not back > lost:
                    raise ValueError(f"return time {back_text!r} must be after the loss at {lost_text!r}")
                fields += (("back_at_s", back),)
            return MockFault(device, "lost", fields)
        if fault.startswith("errors="):
            rate_text = fault[len("errors="):]
            try:
                rate = float(rate_text)
            except ValueError:
                rate = math.nan
            if not 0.0 < rate <= 1.0:
                raise ValueError(f"error rate {rate_text!r} is out of range: expected a probability > 0 and <= 1")
            return MockFault(device, "errors", (("read_error_rate", rate),))
        if fault.startswith("slow="):
            stall_text, slash, period_text = fault[len("slow="):].partition("/")
            if not slash:
                raise ValueError("expected slow=STALL/PERIOD, e.g. slow=300ms/2s")
            stall_ms = _duration_s(stall_text, "stall") * 1e3
            period = _duration_s(period_text, "period")
            if not 0.0 < stall_ms <= _MAX_STALL_MS:
                raise ValueError(f"stall {stall_text!r} is out of range: expected > 0 and <= 60 s")
            if not period > 0.0:
                raise ValueError(f"period {period_text!r} must be > 0")
            return MockFault(device, "slow", (("slow_read_ms", stall_ms), ("slow_read_every_s", period)))
        raise ValueError(f"unknown fault {fault!r}: expected lost@..., errors=... or slow=...")
    except ValueError as e:
        raise FaultError(text, str(e)) from None


def with_faults(devices: list[MockDevice], faults: list[MockFault]) -> list[MockDevice]:
    """``devices`` with ``faults`` applied. A fault naming a device that does not exist, or a
    device given the same kind of fault twice, is a mistake reported as ValueError."""
    out = list(devices)
    seen: set[tuple[int, str]] = set()
    for fault in faults:
        if fault.device is not None and fault.device >= len(out):
            raise ValueError(f"mock fault on device {fault.device}: there are {len(out)} mock device(s), "
                             f"indices 0 to {len(out) - 1}")
        targets = range(len(out)) if fault.device is None else (fault.device,)
        for i in targets:
            if (i, fault.kind) in seen:
                raise ValueError(f"mock device {i} is given a '{fault.kind}' fault twice")
            seen.add((i, fault.kind))
            out[i] = fault.apply(out[i])
    return out
