"""NVIDIA backend: the C++ nvml driver for the per-sample path, pynvml for the slow path.

``make_driver`` builds the native driver (libnvidia-ml dlopen'd in C++; GPM,
MIG partitions, node links, optional SM layout probe). ``NvmlSlowPath`` holds
what runs at most once per publish and is easier through pynvml's rich API:
per-process utilisation with process names, the MIG inventory (placement,
compute instances) and MIG layout change detection.
"""
from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

from .. import _core
from ..options import nonempty
from ._pynvml_loader import use_library
from .registry import Backend, Option

if TYPE_CHECKING:
    from ..slow_path import SlowPath

log = logging.getLogger(__name__)

__all__ = ["BACKEND", "make_driver", "NvmlSlowPath", "DEFAULT_LIBRARY"]

#: What the driver and pynvml open unless told otherwise (the loader's search path).
DEFAULT_LIBRARY = "libnvidia-ml.so.1"


def _device_indices(devices: Optional[Sequence[Any]]) -> List[int]:
    if devices is None:
        return []
    out = []
    for d in devices:
        if isinstance(d, bool) or not isinstance(d, int) or d < 0:
            raise ValueError(f"nvml devices are NVML indices (ints >= 0), got {d!r}")
        out.append(d)
    if len(set(out)) != len(out):
        raise ValueError(f"nvml device indices repeat: {list(devices)!r}")
    return out


NOTE_WARNING = "WARNING "  # a driver note's prefix for what is logged at WARNING


def make_driver(
    devices: Optional[Sequence[Any]],
    seed: int,
    library: Optional[str] = None,
    *,
    gpm: bool = True,
    probe_layout: bool = False,
    probe_cache_dir: Optional[str] = None,
    cuda_library: str = "libcuda.so.1",
    unsupported_limit: int = 3,
    cupti: str = "auto",
    cupti_rate_hz: float = 1000.0,
    cupti_library: Optional[str] = None,
    profiling_socket: Optional[str] = None,
    sm_layout: Optional[str] = None,
) -> Any:
    """The nvml driver over `devices` (NVML indices; None: all). `seed` is unused (real hardware).

    With ``cupti`` auto/on, a CUPTI PM-sampling source joins each device it can take
    (cuagent.profiling): then ``(driver, sources, cupti source)`` is returned.
    Raises RuntimeError naming the library when libnvidia-ml cannot be loaded.
    """
    del seed
    if sm_layout not in (None, "off", "probe"):
        raise ValueError(f"sm_layout must be off or probe, got {sm_layout!r}")
    probe_layout = probe_layout or sm_layout == "probe"
    if unsupported_limit < 1:
        raise ValueError(f"unsupported_limit must be >= 1, got {unsupported_limit!r}")
    if probe_cache_dir:
        os.makedirs(probe_cache_dir, exist_ok=True)
    driver, notes = _core.make_nvml_driver(
        library=library or DEFAULT_LIBRARY,
        devices=_device_indices(devices),
        gpm=gpm,
        probe_layout=probe_layout,
        cuda_library=cuda_library,
        probe_cache_dir=probe_cache_dir or "",
        unsupported_limit=unsupported_limit,
    )
    for line in notes:
        # The driver marks what an operator must act on (a GPU left out) "WARNING ".
        if line.startswith(NOTE_WARNING):
            log.warning("%s", line[len(NOTE_WARNING):])
        else:
            log.info("%s", line)
    from .. import profiling

    sources, source = profiling.attach(driver, cupti, cupti_rate_hz, cupti_library)
    if source is None:
        return driver
    profiling.serve(profiling_socket)
    return driver, sources, source


class NvmlSlowPath:
    """pynvml-based queries the agent makes at most once per publish.

    Points pynvml at the same library as the driver (``library``), so tests
    with a fake libnvidia-ml see one consistent device set.
    """

    def __init__(self, library: Optional[str] = None) -> None:
        self._nvml = use_library(library)
        self._nvml.nvmlInit()
        self._open = True
        self._last_seen: Dict[int, int] = {}  # device -> last process sample timestamp (µs)
        # Per device, its MIG instances (id, profile, units, compute instances, placement).
        self._mig_signature: tuple[tuple[object, ...], ...] = ()
        self._mig_signature = self._signature()

    def close(self) -> None:
        if self._open:
            self._open = False
            self._nvml.nvmlShutdown()

    def __enter__(self) -> "NvmlSlowPath":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _handle(self, index: int) -> Any:
        return self._nvml.nvmlDeviceGetHandleByIndex(index)

    # -- processes ---------------------------------------------------------
    def processes(self, device_index: int) -> Optional[List[Dict[str, Any]]]:
        """Processes on a device: [{"pid", "sm" (ratio), "mem" (bytes), "name"}].

        ``sm`` comes from nvmlDeviceGetProcessUtilization (since the previous
        call) and is left out where NVML cannot give it (MIG); ``mem`` from the
        running-process list. A process that ran no kernel in the interval
        (NVML answers Not Found) has ``sm`` 0. None when NVML can list processes
        in neither way (unsupported, or the GPU is gone): unknown, which is not
        the same as the empty list of a device where nothing runs.
        """
        import psutil

        nvml = self._nvml
        h = self._handle(device_index)
        sm: Dict[int, float] = {}
        sm_known = True
        try:
            since = self._last_seen.get(device_index, 0)
            samples = nvml.nvmlDeviceGetProcessUtilization(h, since)
            newest: Dict[int, int] = {}
            for s in samples:
                if s.timeStamp >= newest.get(s.pid, -1):
                    newest[s.pid] = s.timeStamp
                    sm[s.pid] = min(1.0, s.smUtil / 100.0)
            if newest:
                self._last_seen[device_index] = max(newest.values())
        except nvml.NVMLError as exc:
            if exc.value != nvml.NVML_ERROR_NOT_FOUND:  # Not Found: nothing ran in the window
                sm_known = False
        mem: Dict[int, int] = {}
        mem_known = True
        try:
            for p in nvml.nvmlDeviceGetComputeRunningProcesses(h):
                if p.usedGpuMemory is not None:
                    mem[p.pid] = int(p.usedGpuMemory)
                else:
                    mem.setdefault(p.pid, -1)
        except nvml.NVMLError:
            mem_known = False
        if not (sm_known or mem_known):
            return None
        out = []
        for pid in sorted(set(sm) | set(mem)):
            entry: Dict[str, Any] = {"pid": int(pid)}
            if sm_known:
                entry["sm"] = float(sm.get(pid, 0.0))
            if mem.get(pid, -1) >= 0:
                entry["mem"] = mem[pid]
            try:
                entry["name"] = psutil.Process(pid).name()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                entry["name"] = ""
            out.append(entry)
        return out

    # -- MIG ---------------------------------------------------------------
    def mig_inventory(self, device_index: int) -> List[Dict[str, Any]]:
        """GPU instances of a device with MIG on (empty without MIG):
        [{"id", "profile", "units", "memory_bytes", "placement": {"start", "size"},
          "compute_instances"}], ordered by GPU instance id."""
        nvml = self._nvml
        h = self._handle(device_index)
        try:
            current, _pending = nvml.nvmlDeviceGetMigMode(h)
        except nvml.NVMLError:
            return []
        if current != nvml.NVML_DEVICE_MIG_ENABLE:
            return []
        instances: Dict[int, Dict[str, Any]] = {}
        for i in range(nvml.nvmlDeviceGetMaxMigDeviceCount(h)):
            try:
                mh = nvml.nvmlDeviceGetMigDeviceHandleByIndex(h, i)
            except nvml.NVMLError:
                continue
            gi = nvml.nvmlDeviceGetGpuInstanceId(mh)
            attrs = nvml.nvmlDeviceGetAttributes(mh)
            entry = instances.setdefault(gi, {"id": str(gi), "profile": "", "units": 0, "memory_bytes": 0,
                                              "placement": None, "compute_instances": 0})
            entry["units"] += int(attrs.multiprocessorCount)
            entry["memory_bytes"] = max(entry["memory_bytes"], int(attrs.memorySizeMB) * 1048576)
            entry["compute_instances"] += 1
            if not entry["profile"]:
                name = nvml.nvmlDeviceGetName(mh)
                name = name.decode() if isinstance(name, bytes) else name
                entry["profile"] = _gpu_instance_profile(name)
            if entry["placement"] is None:
                try:
                    info = nvml.nvmlGpuInstanceGetInfo(nvml.nvmlDeviceGetGpuInstanceById(h, gi))
                    entry["placement"] = {"start": int(info.placement.start), "size": int(info.placement.size)}
                except nvml.NVMLError:
                    pass
        return [instances[k] for k in sorted(instances)]

    def _signature(self) -> tuple[tuple[object, ...], ...]:
        nvml = self._nvml
        sig: list[tuple[object, ...]] = []
        previous = self._mig_signature  # () during __init__
        for i in range(nvml.nvmlDeviceGetCount()):
            try:
                inv = self.mig_inventory(i)
            except nvml.NVMLError:
                # Unreachable now (lost, resetting): keep what we last knew, so a
                # lost GPU neither looks like a layout change nor hides one on another.
                sig.append(previous[i] if i < len(previous) else ("unknown",))
                continue
            sig.append(tuple((g["id"], g["profile"], g["units"], g["compute_instances"],
                              tuple(sorted((g["placement"] or {}).items()))) for g in inv))
        return tuple(sig)

    def mig_layout_changed(self) -> bool:
        """True once each time the MIG layout (instances, profiles, placements) changed
        since the last call: the agent then rebuilds its engine and bumps ``gen``."""
        current = self._signature()
        if current == self._mig_signature:
            return False
        self._mig_signature = current
        return True


def _gpu_instance_profile(name: str) -> str:
    """'NVIDIA H100 80GB HBM3 MIG 1c.3g.40gb' -> 'MIG 3g.40gb' (the GPU instance profile)."""
    at = name.find("MIG ")
    if at < 0:
        return ""
    profile = name[at + 4:]
    head, _, rest = profile.partition(".")
    if head.endswith("c") and head[:-1].isdigit() and "." in rest:
        profile = rest
    return "MIG " + profile


def _slow_path(options: Dict[str, Any], process_interval_s: float, topology_poll_s: float) -> "SlowPath":
    from ..slow_path import NvmlSlowPathPoller

    return NvmlSlowPathPoller(options.get("library"), process_interval_s, topology_poll_s)


BACKEND = Backend(
    name="nvml",
    make_driver=make_driver,
    options=(Option("nvml_library", str, None, "libnvidia-ml to load (default: libnvidia-ml.so.1 from the "
                    "loader's path)", metavar="PATH", check=nonempty, param="library"),
             Option("cupti", str, None, "CUPTI PM sampling beside NVML (kHz counters across SMs): auto (the default) "
                    "uses it where it can, on requires it, off never loads libcupti", choices=("auto", "off", "on")),
             Option("cupti_rate_hz", float, None, "CUPTI PM sampling rate per GPU (default 1000)", min=100.0, max=20000.0,
                    unit="Hz"),
             Option("cupti_library", str, None, "libcupti to load (default: the nvidia-cuda-cupti wheel, CUDA_HOME, "
                    "/usr/local/cuda, then the loader's path)", metavar="PATH", check=nonempty),
             Option("profiling_socket", str, None, "Unix socket (mode 0600) on which `cuagent profiling "
                    "pause|resume|status` releases and retakes the CUPTI counters", metavar="PATH",
                    check=nonempty),
             Option("nvml_sm_layout", str, None, "how the GPC/TPC grouping of the SMs is known: off (the "
                    "default; topo lists the SMs ungrouped) or probe (at start, a short CUDA kernel of "
                    "thread-block clusters on each GPU through libcuda finds which SMs share a TPC and "
                    "a GPC; needs libcuda and a moment of each GPU, cached by GPU UUID)",
                    choices=("off", "probe"), param="sm_layout"),
             Option("nvml_probe_cache", str, None, "directory where the SM-layout probe keeps its result per "
                    "GPU UUID, so a restart does not probe again (default: probe at every start)",
                    metavar="DIR", check=nonempty, param="probe_cache_dir")),
    slow_path=_slow_path,
    auto=True,
    auto_priority=10,
    help="NVIDIA GPUs: NVML and GPM, pynvml for processes and MIG",
)
