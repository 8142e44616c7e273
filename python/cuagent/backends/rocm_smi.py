"""AMD GPUs through ROCm SMI (librocm_smi64, dlopen'd by the C++ driver) and the KFD topology.

Options (also settable from the environment, for agents started by systemd or Kubernetes):
  library   path or name of librocm_smi64 (CUAGENT_ROCM_SMI_LIBRARY); default: the loader's search
  kfd_root  KFD sysfs directory (CUAGENT_KFD_ROOT); default /sys/class/kfd/kfd
  min_read_interval_ms  shortest interval between reads of one device (default 10 ms)
"""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

from .. import _core
from ..options import nonempty
from .registry import Backend, Option

DEFAULT_KFD_ROOT = "/sys/class/kfd/kfd"


def _device_key(device: Any) -> str:
    if isinstance(device, bool) or not isinstance(device, (int, str)):
        raise ValueError(f"rocm_smi: a device is an index or an id string, got {device!r}")
    if isinstance(device, int) and device < 0:
        raise ValueError(f"rocm_smi: device index must be >= 0, got {device}")
    return str(device)


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
    if options:
        raise TypeError(f"rocm_smi: unknown option(s) {', '.join(sorted(options))}")
    if isinstance(min_read_interval_ms, bool) or not isinstance(min_read_interval_ms, (int, float)) \
            or min_read_interval_ms < 0:
        raise ValueError(f"rocm_smi: min_read_interval_ms must be a number >= 0, got {min_read_interval_ms!r}")
    library = library or os.environ.get("CUAGENT_ROCM_SMI_LIBRARY", "")
    kfd_root = kfd_root or os.environ.get("CUAGENT_KFD_ROOT", DEFAULT_KFD_ROOT)
    keys = [_device_key(d) for d in devices] if devices else []
    return _core.make_rocm_smi_driver(
        library=str(library),
        kfd_root=str(kfd_root),
        devices=keys,
        min_read_interval_ns=int(round(min_read_interval_ms * 1e6)),
    )


BACKEND = Backend(
    name="rocm_smi",
    make_driver=make_driver,
    options=(
        Option("rocm_smi_library", str, None, "librocm_smi64 to load (default: the loader's path; env "
               "CUAGENT_ROCM_SMI_LIBRARY)", metavar="PATH", check=nonempty, param="library"),
        Option("kfd_root", str, None, "KFD sysfs directory for AMD topology (default /sys/class/kfd/kfd; "
               "env CUAGENT_KFD_ROOT)", metavar="PATH", check=nonempty),
    ),
    auto=True,
    auto_priority=20,
    help="AMD GPUs: ROCm SMI and the KFD topology",
)
