"""Type stubs for cuagent's private compiled core. Use the public API in cuagent."""

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

class Aggregation:
    mean: Aggregation
    bit_or: Aggregation
    last: Aggregation
    sum: Aggregation

class CounterSpec:
    name: str
    level: str
    unit: str
    help: str
    aggregation: Aggregation
    rollup: str
    def __init__(self, name: str = ..., level: str = ..., unit: str = ..., help: str = ...,
                 aggregation: Aggregation = ..., rollup: str = ...) -> None: ...

class Partition:
    id: str
    kind: str
    units: int
    unit_ids: List[int]
    memory_bytes: int
    profile: str
    def __init__(self) -> None: ...

class Link:
    peer: str
    type: str
    count: int
    path: str
    def __init__(self) -> None: ...

class DeviceDescription:
    id: str
    index: int
    vendor: str
    model: str
    backend: str
    unit_kind: str
    units: int
    levels: List[str]
    counts: List[int]
    layout: List[List[int]]
    layout_source: str
    partitions: List[Partition]
    memory_bytes: int
    pci: str
    numa: int
    counters: List[CounterSpec]
    links: List[Link]
    def __init__(self) -> None: ...
    def validate(self) -> None: ...

class Driver:
    @property
    def name(self) -> str: ...
    @property
    def device_count(self) -> int: ...
    def device(self, index: int) -> DeviceDescription: ...
    def min_read_interval_ns(self, index: int) -> int: ...

class StateThresholds:
    idle_active: float
    saturated_occupancy: float
    thrashing_active: float
    thrashing_mem_stall: float
    hysteresis: float
    def __init__(self, idle_active: float = ..., saturated_occupancy: float = ..., thrashing_active: float = ...,
                 thrashing_mem_stall: float = ..., hysteresis: float = ...) -> None: ...

def platform() -> str: ...
def next_unit_state(current: int, active: float, occupancy: float, mem_stall: float,
                    thresholds: StateThresholds) -> int: ...

class Engine:
    def __init__(self, driver: Driver, rate_hz: float, window_ns: int, ring_capacity: int = ...,
                 thresholds: StateThresholds = ...) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    @property
    def running(self) -> bool: ...
    @property
    def device_count(self) -> int: ...
    @property
    def ring_capacity(self) -> int: ...
    @property
    def backend(self) -> str: ...
    @property
    def window_fd(self) -> int: ...
    def drain_window_fd(self) -> None: ...
    def device(self, index: int) -> DeviceDescription: ...
    def latest(self, device: int) -> Optional[Dict[str, Any]]: ...
    def stats(self) -> Dict[str, Any]: ...
    def drain_events(self) -> List[Tuple[str, int, int, str]]: ...

class AggregatorHarness:
    def __init__(self, device: DeviceDescription, thresholds: StateThresholds, window_ns: int,
                 origin_ns: int = ...) -> None: ...
    @property
    def values(self) -> int: ...
    @property
    def windows(self) -> int: ...
    def counter_slots(self) -> List[Tuple[str, int, int]]: ...
    def add(self, t_ns: np.ndarray, samples: np.ndarray) -> None: ...
    def poll(self, now_ns: int, grace_ns: int = ...) -> None: ...
    def latest(self) -> Optional[Dict[str, Any]]: ...

# --- mock driver (bind_mock.cpp) ---
class MockFaults:
    lost_at_s: float
    back_at_s: float
    read_error_rate: float
    slow_read_every_s: float
    slow_read_ms: float
    def __init__(self, *, lost_at_s: float = ..., back_at_s: float = ..., read_error_rate: float = ...,
                 slow_read_every_s: float = ..., slow_read_ms: float = ...) -> None: ...

class MockDeviceSpec:
    preset: str
    scenario: str
    units: int
    faults: MockFaults
    def __init__(self, preset: str = ..., scenario: str = ..., units: int = ...,
                 faults: MockFaults = ...) -> None: ...

def make_mock_driver(devices: Sequence[Union[MockDeviceSpec, Dict[str, Any]]], seed: int = ...) -> Driver: ...
def mock_presets() -> List[str]: ...
def mock_scenarios() -> List[str]: ...

# rocm_smi (cpp/bindings/bind_rocm_smi.cpp)
def make_rocm_smi_driver(library: str = ..., kfd_root: str = ..., devices: List[str] = ...,
                         min_read_interval_ns: int = ...) -> Driver: ...

# Reading a driver outside an engine (tests, tools, benchmarks).
def driver_read(driver: Driver, device: int, t_ns: int = ...) -> Tuple[str, Dict[str, np.ndarray], str]: ...
def driver_time_reads(driver: Driver, device: int, reads: int, step_ns: int = ...) -> Tuple[int, int]: ...

def __getattr__(name: str) -> Any: ...  # driver factories bound by each backend
