"""AMD GPUs through AMD SMI (libamd_smi, dlopen'd by the C++ driver) and the KFD topology.

AMD SMI is the library current ROCm ships (ROCm SMI is no longer in TheRock builds); this
backend reports what ``rocm_smi`` reports for the same hardware (``levels.xcd``, partitions,
``idle_units``), plus memory activity, ECC counts and the processes on each device.
``--driver auto`` tries it before ``rocm_smi``.

Options (also settable from the environment, for agents started by systemd or Kubernetes):
  library   path or name of libamd_smi (CUAGENT_AMDSMI_LIBRARY); default: the loader's search
  kfd_root  KFD sysfs directory (CUAGENT_KFD_ROOT); default /sys/class/kfd/kfd
  min_read_interval_ms  shortest interval between reads of one device (default 10 ms)
  ecc_interval_s        ECC counts are re-read at most this often (default 1 s)
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Optional, Sequence

from .. import _core
from ..slow_path import SlowPath
from ._amd import KFD_ROOT, driver_arguments, interval_ms, kfd_root as _kfd_root, library_option, library_path
from .registry import Backend

__all__ = ["BACKEND", "AmdSmiSlowPath", "make_driver"]

log = logging.getLogger(__name__)

#: Where the library path comes from when no option gives it (for the driver and the slow path).
LIBRARY_ENV = "CUAGENT_AMDSMI_LIBRARY"


def make_driver(
    devices: Optional[Sequence[Any]],
    seed: int,
    library: Optional[str] = None,
    kfd_root: Optional[str] = None,
    min_read_interval_ms: float = 10.0,
    ecc_interval_s: float = 1.0,
    **options: Any,
) -> Any:
    """Build the amdsmi driver. `seed` is unused: real hardware is not simulated."""
    del seed
    arguments = driver_arguments("amdsmi", LIBRARY_ENV, devices, library, kfd_root, min_read_interval_ms, options)
    ecc_interval_s = interval_ms("amdsmi", "ecc_interval_s", ecc_interval_s)
    driver, notes = _core.make_amdsmi_driver(**arguments, ecc_interval_ns=int(round(ecc_interval_s * 1e9)))
    for line in notes:
        log.info("%s", line)
    return driver


class AmdSmiSlowPath(SlowPath):
    """The agent's per-publish queries on AMD SMI: each device's processes, at most once per
    ``process_interval_s``, and its partition modes, compared every ``topology_poll_s`` (a
    change makes the agent rebuild its engine: the KFD nodes, hence the partitions, change
    with them).

    A process's ``sm`` is its GFX engine time over the time between two lists
    (``engine_usage.gfx``, summed over the device's partitions), divided by the device's
    partitions, so it is a share of the whole device; a process seen for the first time has
    no ``sm`` yet (nothing to take a difference from). ``mem`` is its VRAM. The time between
    two lists is ``clock``'s, read just before each (the agent's ``now`` is its loop's, which
    may lag the query by a whole publish)."""

    def __init__(self, library: Optional[str], kfd_root: Optional[str], process_interval_s: float,
                 topology_poll_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if process_interval_s <= 0 or topology_poll_s <= 0:
            raise ValueError(
                f"process interval and topology poll must be > 0 s, got {process_interval_s}, {topology_poll_s}")
        self._queries: Optional[_core.AmdSmiSlowQueries] = _core.make_amdsmi_slow_queries(
            library=library_path(library, LIBRARY_ENV), kfd_root=_kfd_root(kfd_root))
        self.process_interval_s = process_interval_s
        self.topology_poll_s = topology_poll_s
        self._clock = clock
        self._listed: dict[int, tuple[float, Optional[list[dict[str, Any]]]]] = {}
        self._gfx: dict[int, tuple[float, dict[int, int]]] = {}  # device -> (when, pid -> gfx ns)
        self._modes = self._partition_modes()
        self._next_topology: Optional[float] = None

    def close(self) -> None:
        self._queries = None  # the library is shut down when the driver lets go too

    def _partition_modes(self) -> dict[int, tuple[str, str]]:
        q = self._live()
        return {i: q.partition_modes(i) for i in q.devices}

    def _live(self) -> _core.AmdSmiSlowQueries:
        if self._queries is None:
            raise RuntimeError("amdsmi slow path used after close()")
        return self._queries

    def processes(self, device_index: int, now: float) -> Optional[list[dict[str, Any]]]:
        cached = self._listed.get(device_index)
        if cached is not None and now - cached[0] < self.process_interval_s:
            return cached[1]
        result: Optional[list[dict[str, Any]]] = None
        try:
            result = self._list(device_index)
        except Exception as e:  # noqa: BLE001 — unsupported, or the GPU is gone: absent, not fatal
            log.debug("processes of device %d not available: %s", device_index, e)
            self._gfx.pop(device_index, None)
        self._listed[device_index] = (now, result)
        return result

    def _list(self, device_index: int) -> list[dict[str, Any]]:
        import psutil

        now = self._clock()
        listed = self._live().processes(device_index)
        partitions = max(1, int(self._live().partitions(device_index)))
        before = self._gfx.get(device_index)
        self._gfx[device_index] = (now, {int(p["pid"]): int(p["gfx_ns"]) for p in listed})
        out = []
        for p in listed:
            pid = int(p["pid"])
            entry: dict[str, Any] = {"pid": pid}
            if before is not None and pid in before[1] and now > before[0]:
                busy_ns = int(p["gfx_ns"]) - before[1][pid]
                if busy_ns >= 0:  # a smaller count: the process reopened the device; no difference
                    entry["sm"] = min(1.0, busy_ns / ((now - before[0]) * 1e9 * partitions))
            entry["mem"] = int(p["vram_bytes"])
            name = str(p["name"])
            if not name:
                try:
                    name = psutil.Process(pid).name()
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    name = ""
            entry["name"] = name
            out.append(entry)
        return out

    def topology_changed(self, now: float) -> bool:
        if self._next_topology is None:
            self._next_topology = now + self.topology_poll_s
        if now < self._next_topology:
            return False
        self._next_topology = now + self.topology_poll_s
        try:
            modes = self._partition_modes()
        except Exception as e:  # noqa: BLE001 — e.g. one GPU lost: look again next time
            log.debug("partition mode check failed: %s", e)
            return False
        if modes == self._modes:
            return False
        log.info("AMD partition modes changed: %s -> %s", self._modes, modes)
        if any(modes.get(i, ("", ""))[0] != old[0] for i, old in self._modes.items()):
            # KFD shows the new partitions at once, but AMD SMI enumerates its processors at
            # amdsmi_init, which cannot be redone under a running engine (the handles die).
            log.warning("an AMD compute partition mode changed: the rebuilt engine has the new partitions from "
                        "KFD, but AMD SMI keeps its processors of before until the agent restarts, so counters "
                        "read per partition may be read for the whole GPU until then")
        self._modes = modes
        return True


def _slow_path(options: dict[str, Any], process_interval_s: float, topology_poll_s: float) -> SlowPath:
    return AmdSmiSlowPath(options.get("library"), options.get("kfd_root"), process_interval_s, topology_poll_s)


BACKEND = Backend(
    name="amdsmi",
    make_driver=make_driver,
    options=(
        library_option("amdsmi_library", "libamd_smi", "the loader's path, then /opt/rocm/lib", LIBRARY_ENV),
        KFD_ROOT,
    ),
    slow_path=_slow_path,
    auto=True,
    auto_priority=15,  # before rocm_smi (20): the library current ROCm ships
    help="AMD GPUs: AMD SMI (ROCm 7 and later) and the KFD topology",
)
