"""Simulated GPUs for development and tests: the public description of one mock device."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["MockDevice", "presets", "scenarios"]


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
