"""cuagent: node-level GPU telemetry — what happens inside each device."""

from ._version import __version__
from .engine import Engine, EngineEvent, EngineStats, StateThresholds
from .mock import MockDevice
from .topology import (
    UNIT_STATES,
    CounterInfo,
    CounterStat,
    DeviceState,
    DeviceTopology,
    LinkInfo,
    PartitionInfo,
)

__all__ = [
    "CounterInfo",
    "CounterStat",
    "DeviceState",
    "DeviceTopology",
    "Engine",
    "EngineEvent",
    "EngineStats",
    "LinkInfo",
    "MockDevice",
    "PartitionInfo",
    "StateThresholds",
    "UNIT_STATES",
    "__version__",
]
