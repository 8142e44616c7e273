"""The two AMD backends as the tests that check them alike see them: each one's driver factory,
its fake host, and the facts of its library a shared test needs (status codes and their names,
the names of its calls, what it serves beyond the common AMD counters).

    backend = ROCM_SMI  # or AMDSMI
    host = backend.host(library, tmp_path / "kfd")
    gpu = host.add_mi300x()
    driver = backend.open(host)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from cuagent import _core
from cuagent.backends import amdsmi as amdsmi_backend
from cuagent.backends import rocm_smi as rocm_smi_backend

from .amd_host import LAYOUT_V18, FakeAmdHostBase
from .amdsmi import (
    AMDSMI_STATUS_BUSY,
    AMDSMI_STATUS_INIT_ERROR,
    AMDSMI_STATUS_NOT_SUPPORTED,
    FakeAmdSmiHost,
)
from .rocm import RSMI_STATUS_BUSY, RSMI_STATUS_INIT_ERROR, RSMI_STATUS_NOT_SUPPORTED, FakeAmdHost


@dataclass(frozen=True)
class AmdBackend:
    name: str                       # the backend's (and its driver's) name
    make_driver: Callable[..., Any]
    host_class: type[FakeAmdHostBase[Any, Any]]
    library_flag: str               # `cuagent run` flag naming the library
    library_title: str              # how a failed load names the library
    soname: str
    package: str                    # what to install, as the load error says
    init_call: str                  # the init call as its failure names it (a regex)
    status_prefix: str              # of the library's status names ("RSMI_STATUS_")
    not_supported: int
    busy: int
    init_error: int
    memory_usage_call: str          # the call mem_used comes from, and only it
    own_counters: frozenset[str]    # what it serves beyond the common AMD counters
    # What it reads from the gpu_metrics table of an MI300X (table 1.8) whose library answers
    # every call: the table goes first for these.
    table_fed: frozenset[str]
    lists_processes: bool           # its agent publishes each device's processes

    def host(self, library: Path, kfd_root: Path, layout: int = LAYOUT_V18) -> Any:
        return self.host_class(library, kfd_root, layout=layout)

    def open(self, host: Any, devices: Optional[list[str]] = None, **options: Any) -> Any:
        """The driver on `host`'s fake library and KFD tree."""
        return self.make_driver(devices, 0, library=str(host.library), kfd_root=str(host.kfd_root), **options)


ROCM_SMI = AmdBackend(
    name="rocm_smi", make_driver=rocm_smi_backend.make_driver, host_class=FakeAmdHost,
    library_flag="--rocm-smi-library", library_title="ROCm SMI library", soname="librocm_smi64.so",
    package="rocm-smi-lib", init_call=r"rsmi_init\(0\)", status_prefix="RSMI_STATUS_",
    not_supported=RSMI_STATUS_NOT_SUPPORTED, busy=RSMI_STATUS_BUSY, init_error=RSMI_STATUS_INIT_ERROR,
    memory_usage_call="rsmi_dev_memory_usage_get", own_counters=frozenset(),
    table_fed=frozenset({"active", "sm_clock", "mem_clock", "power_violation", "thermal_violation"}),
    lists_processes=False)

AMDSMI = AmdBackend(
    name="amdsmi", make_driver=amdsmi_backend.make_driver, host_class=FakeAmdSmiHost,
    library_flag="--amdsmi-library", library_title="AMD SMI library", soname="libamd_smi.so",
    package="amd-smi-lib", init_call=r"amdsmi_init\(AMDSMI_INIT_AMD_GPUS\)", status_prefix="AMDSMI_STATUS_",
    not_supported=AMDSMI_STATUS_NOT_SUPPORTED, busy=AMDSMI_STATUS_BUSY, init_error=AMDSMI_STATUS_INIT_ERROR,
    memory_usage_call="amdsmi_get_gpu_memory_usage",
    own_counters=frozenset({"dram_active", "ecc_corrected", "ecc_uncorrected"}),
    table_fed=frozenset({"active", "power", "temp", "sm_clock", "mem_clock", "power_violation", "thermal_violation"}),
    lists_processes=True)

BACKENDS = {b.name: b for b in (ROCM_SMI, AMDSMI)}


def counters(desc: Any) -> dict[str, Any]:
    """A device description's counters by name."""
    return {c.name: c for c in desc.counters}


def read(driver: Any, index: int = 0, t_ns: int = 0) -> tuple[str, dict[str, Any], str]:
    """One read: (status, {counter: float32 values}, detail)."""
    return _core.driver_read(driver, index, t_ns)
