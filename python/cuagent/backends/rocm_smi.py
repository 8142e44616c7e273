"""AMD GPUs through ROCm SMI (librocm_smi64, dlopen'd by the C++ driver) and the KFD topology.

Options (also settable from the environment, for agents started by systemd or Kubernetes):
  library   path or name of librocm_smi64 (CUAGENT_ROCM_SMI_LIBRARY); default: the loader's search
  kfd_root  KFD sysfs directory (CUAGENT_KFD_ROOT); default /sys/class/kfd/kfd
  min_read_interval_ms  shortest interval between reads of one device (default 10 ms)
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from .. import _core
from ._amd import DEFAULT_KFD_ROOT, KFD_ROOT, driver_arguments, library_option
from .registry import Backend

__all__ = ["BACKEND", "DEFAULT_KFD_ROOT", "make_driver"]

#: Where the library path comes from when no option gives it.
LIBRARY_ENV = "CUAGENT_ROCM_SMI_LIBRARY"


def make_driver(
    devices: Optional[Sequence[Any]],
    seed: int,
    library: Optional[str] = None,
    kfd_root: Optional[str] = None,
    min_read_interval_ms: float = 10.0,
    **options: Any,
) -> Any:
    """Build the rocm_smi driver. `seed` is unused: real hardware is not simulated."""
    del seed
    return _core.make_rocm_smi_driver(**driver_arguments(
        "rocm_smi", LIBRARY_ENV, devices, library, kfd_root, min_read_interval_ms, options))


BACKEND = Backend(
    name="rocm_smi",
    make_driver=make_driver,
    options=(
        library_option("rocm_smi_library", "librocm_smi64", "the loader's path", LIBRARY_ENV),
        KFD_ROOT,
    ),
    auto=True,
    auto_priority=20,
    help="AMD GPUs: ROCm SMI and the KFD topology",
)
