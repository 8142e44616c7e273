"""Type stubs for cuagent's private compiled core (cpp/bindings/). Use the public API in cuagent.

tests/test_core_stubs.py checks that every public name here is exported by the module and
vice versa. The underscore-prefixed TypedDicts exist only here: they describe the dicts the
bindings build (window_dict.cpp, bind_engine.cpp, bind_nvml.cpp)."""

from typing import ClassVar, overload, Dict, List, Optional, Sequence, Tuple, TypedDict, Union

import numpy as np
import numpy.typing as npt
import zmq

_Floats = npt.NDArray[np.float32]

# --- cpp/bindings/bind_topology.cpp ---
class Aggregation:
    mean: ClassVar[Aggregation]
    bit_or: ClassVar[Aggregation]
    last: ClassVar[Aggregation]
    sum: ClassVar[Aggregation]
    max: ClassVar[Aggregation]
    __members__: ClassVar[Dict[str, Aggregation]]
    def __init__(self, value: int) -> None: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...
    def __int__(self) -> int: ...
    def __index__(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...

class CounterSpec:
    name: str
    level: str
    unit: str
    help: str
    aggregation: Aggregation
    rollup: str
    @overload
    def __init__(self) -> None: ...
    @overload
    def __init__(self, name: str, level: str, unit: str, help: str = ...,
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
    def device(self, arg0: int) -> DeviceDescription: ...
    def min_read_interval_ns(self, arg0: int) -> int: ...

# --- cpp/bindings/bind_engine.cpp ---
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

# One level's entries in a window: each counter's (mean, max) per element, and "state"
# (uint8 per element) where the level has one.
_LevelEntries = Dict[str, Union[Tuple[_Floats, _Floats], npt.NDArray[np.uint8]]]

class _Window(TypedDict):
    """A finished window (window_dict.cpp); absent counters are absent, never zero."""
    seq: int
    t_ns: int
    window_ns: int
    samples: int
    windows_missed: int
    levels: Dict[str, _LevelEntries]
    groups: Dict[str, _LevelEntries]
    partition: Dict[str, Dict[str, float]]
    device: Dict[str, float]
    idle_units: Optional[float]

class _DeviceStats(TypedDict):
    samples: int
    drops: int
    read_errors: int
    windows: int
    windows_missed: int
    late_samples: int
    skipped_reads: int
    lost: bool
    own_thread: bool

class _EngineStats(TypedDict):
    running: bool
    rate_hz: float
    target_rate_hz: float
    achieved_rate_hz: float
    elapsed_s: float
    ticks: int
    skipped_ticks: int
    samples: int
    drops: int
    read_errors: int
    events_dropped: int
    jitter_p50_ns: int
    jitter_p90_ns: int
    jitter_p99_ns: int
    jitter_max_ns: int
    devices: List[_DeviceStats]

class Engine:
    def __init__(self, driver: Driver, rate_hz: float, window_ns: int, ring_capacity: int = ...,
                 thresholds: StateThresholds = ...,
                 sources: Sequence[Tuple[int, Driver, int]] = ...) -> None: ...
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
    def device(self, arg0: int) -> DeviceDescription: ...
    def latest(self, device: int) -> Optional[_Window]: ...
    # Per device: (seq, t_ns, window_ns, windows_missed, state body or None), or None
    def latest_states(self, newer_than_ns: Sequence[int], extras: Sequence[bytes],
                      extra_entries: Sequence[int]) -> List[Optional[Tuple[int, int, int, int, Optional[bytes]]]]: ...
    def summary_records(self, now_ns: int, lost: Sequence[bool]) -> bytes: ...
    def stats(self) -> _EngineStats: ...
    # (type, device index, Unix ns, detail)
    def drain_events(self) -> List[Tuple[str, int, int, str]]: ...

# --- cpp/bindings/bind_aggregator.cpp ---
class AggregatorHarness:
    def __init__(self, device: DeviceDescription, thresholds: StateThresholds, window_ns: int,
                 origin_ns: int = ...) -> None: ...
    @property
    def values(self) -> int: ...
    @property
    def windows(self) -> int: ...
    def counter_slots(self) -> List[Tuple[str, int, int]]: ...
    def add(self, t_ns: npt.ArrayLike, samples: npt.ArrayLike) -> None: ...
    def poll(self, now_ns: int, grace_ns: int = ...) -> None: ...
    def latest(self) -> Optional[_Window]: ...
    def latest_state(self, extras: bytes = ..., extra_entries: int = ...) -> Optional[bytes]: ...
    def summary_record(self, now_ns: int, lost: bool = ..., realtime_offset_ns: int = ...) -> bytes: ...

# --- cpp/bindings/bind_driver_io.cpp ---
def driver_read(driver: Driver, device: int, t_ns: int = ...) -> Tuple[str, Dict[str, _Floats], str]: ...
def driver_time_reads(driver: Driver, device: int, reads: int, step_ns: int = ...) -> Tuple[int, int]: ...

# --- cpp/bindings/bind_mock.cpp ---
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

# A dict spec: preset, scenario, units, faults (dict or MockFaults) and/or the fault options flat.
_MockSpecValue = Union[str, int, float, None, MockFaults, Dict[str, Optional[float]]]

def make_mock_driver(devices: Sequence[Union[MockDeviceSpec, Dict[str, _MockSpecValue]]], seed: int = ...) -> Driver: ...
def mock_presets() -> List[str]: ...
def mock_scenarios() -> List[str]: ...

# --- cpp/bindings/bind_nvml.cpp ---
class _SmLayout(TypedDict):
    units: int
    gpc: List[int]
    tpc: List[int]
    gpcs: int
    tpcs: int
    gpc_max_cluster: List[int]
    notes: List[str]

def make_nvml_driver(library: str = ..., devices: List[int] = ..., gpm: bool = ..., probe_layout: bool = ...,
                     cuda_library: str = ..., probe_cache_dir: str = ...,
                     unsupported_limit: int = ...) -> Tuple[Driver, List[str]]: ...
def nvidia_sm_count_for_model(model: str) -> int: ...
def nvidia_sm_count_from_cores(cores: int, major: int, minor: int) -> int: ...
def group_sms(units: int, observations: Sequence[Tuple[int, Sequence[int]]]) -> _SmLayout: ...
def probe_sm_layout(pci_bus_id: str, cuda_library: str = ...,
                    launches_per_size: int = ...) -> Tuple[Optional[_SmLayout], str]: ...

# --- cpp/bindings/bind_rocm_smi.cpp ---
def make_rocm_smi_driver(library: str = ..., kfd_root: str = ..., devices: List[str] = ...,
                         min_read_interval_ns: int = ...) -> Driver: ...

# --- cpp/bindings/bind_cupti.cpp ---
class _CuptiDeviceStatus(TypedDict):
    state: str  # sampling | paused | retrying | failed
    reason: str
    chip: str
    samples: int
    late: int
    dropped: int
    overflows: int
    data_full: int
    decode_calls: int
    library_ns: int  # decode thread time inside libcupti

class _CuptiOfflineReport(TypedDict):
    library: str
    metrics: List[Tuple[str, bool]]
    passes: int
    error: str

class CuptiSource(Driver):
    def pause(self, reason: str = ...) -> None: ...
    def resume(self) -> None: ...
    @property
    def paused(self) -> bool: ...
    @property
    def library_path(self) -> str: ...
    @property
    def nvperf_host_path(self) -> str: ...
    @property
    def decode_cpu_ns(self) -> int: ...
    def status(self) -> List[_CuptiDeviceStatus]: ...
    # (device position, profiling_paused | profiling_resumed, reason)
    def drain_events(self) -> List[Tuple[int, str, str]]: ...

def make_cupti_source(library: List[str] = ..., python_paths: List[str] = ..., devices: List[int] = ...,
                      rate_hz: float = ..., decode_interval_ns: int = ...,
                      retry_min_ns: int = ..., retry_max_ns: int = ..., start_paused: bool = ...) -> CuptiSource: ...
def cupti_offline_check(library: List[str], chip: str) -> _CuptiOfflineReport: ...
def cupti_metric_names() -> List[str]: ...
def cupti_struct_sizes() -> List[Tuple[str, int]]: ...

# --- cpp/bindings/bind_amdsmi.cpp ---
class _AmdSmiProcess(TypedDict):
    pid: int
    name: str
    vram_bytes: int
    gfx_ns: int

class AmdSmiSlowQueries:
    @property
    def devices(self) -> List[int]: ...
    def partitions(self, index: int) -> int: ...
    def processes(self, index: int) -> List[_AmdSmiProcess]: ...
    def partition_modes(self, index: int) -> Tuple[str, str]: ...

def make_amdsmi_driver(library: str = ..., kfd_root: str = ..., devices: List[str] = ...,
                       min_read_interval_ns: int = ..., ecc_interval_ns: int = ...) -> Tuple[Driver, List[str]]: ...
def make_amdsmi_slow_queries(library: str = ..., kfd_root: str = ...,
                             devices: List[str] = ...) -> AmdSmiSlowQueries: ...
def amdsmi_abi_fields() -> List[Tuple[str, str, int, int]]: ...
def amdsmi_abi_constants() -> List[Tuple[str, int]]: ...
def amdsmi_abi_functions() -> List[Tuple[str, List[str]]]: ...

# --- cpp/bindings/bind_relay.cpp ---
class _RelayTableStats(TypedDict):
    messages: int
    malformed: int
    duplicates: int
    gaps: int
    restarts: int
    untracked: int
    summaries_skipped: int
    unreadable_bodies: int
    merged: int
    forgotten: int
    topics: int
    nodes: int

class _RelayForwarderStats(TypedDict):
    forwarded: int
    dropped: int
    send_failed: int

# A frame: any bytes-like object (the Python forwarding loop passes zmq.Frame).
_Bytes = Union[bytes, bytearray, memoryview, zmq.Frame]

class RelayTable:
    def __init__(self, summary_interval_ns: int = ..., own_node: str = ..., max_topics: int = ...) -> None: ...
    def ingest(self, frames: Sequence[_Bytes], now_ns: Optional[int] = ...) -> bool: ...
    def merge_message(self, frames: Sequence[_Bytes], now_ns: Optional[int] = ...) -> bool: ...
    def merge_seq(self, topic: str, epoch: int, seq: int, now_ns: Optional[int] = ...) -> bool: ...
    def merge_silent(self, node: str, silent_s: float, now_ns: Optional[int] = ...) -> None: ...
    def merge_snapshot(self, reply: bytes, only_node: str = ..., now_ns: Optional[int] = ...) -> Tuple[
        bool, str, bool, List[Tuple[str, int]]]: ...
    def take_joins(self) -> List[Tuple[str, int, int]]: ...
    def join_needed(self, node: str) -> Optional[int]: ...
    def mark_joined(self, node: str, epoch: int) -> None: ...
    def check_stale(self, stale_after_s: float, now_ns: Optional[int] = ...) -> List[Tuple[str, bool, float]]: ...
    def forget_silent(self, forget_after_s: float, now_ns: Optional[int] = ...) -> List[Tuple[str, float]]: ...
    def snapshot(self, prefix: str, now_ns: Optional[int] = ...) -> Tuple[
        List[Tuple[bytes, bytes, bytes]], Dict[str, int], Dict[str, int], Dict[str, float], List[str], int]: ...
    def nodes(self) -> List[Tuple[str, bool]]: ...
    def seq(self, topic: str) -> int: ...
    def stats(self) -> _RelayTableStats: ...

class RelayForwarder:
    WAKE_SUBSCRIPTIONS: ClassVar[int]
    WAKE_CONTROL: ClassVar[int]
    WAKE_TIMEOUT: ClassVar[int]
    WAKE_TERMINATED: ClassVar[int]
    def __init__(self, table: RelayTable, xsub: int, xpub: int, control: int, libzmq_anchor: str) -> None: ...
    def run(self, max_wait_ms: int) -> int: ...
    def stats(self) -> _RelayForwarderStats: ...

def find_libzmq(anchor: str) -> Tuple[str, Tuple[int, int, int]]: ...
def parse_feed_header(data: _Bytes) -> Optional[Tuple[str, int, int, int, int]]: ...
def parse_feed_topic(data: _Bytes) -> Optional[Tuple[str, str, Optional[str]]]: ...
def msgpack_well_formed(data: _Bytes) -> bool: ...
