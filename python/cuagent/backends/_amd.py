"""What the AMD backends (rocm_smi, amdsmi) share: the KFD sysfs root both read the compute
topology from (one setting, declared once, given to whichever AMD backend runs), how a
device is named in ``devices``, and the checked arguments both C++ factories take."""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

from ..options import Option, nonempty

DEFAULT_KFD_ROOT = "/sys/class/kfd/kfd"

#: ``--kfd-root`` / ``kfd_root``: one Option object, in both backends' options (the registry
#: lets backends share a setting only by sharing its declaration).
KFD_ROOT = Option("kfd_root", str, None, "KFD sysfs directory for AMD topology, both AMD backends "
                  "(default /sys/class/kfd/kfd; env CUAGENT_KFD_ROOT)", metavar="PATH", check=nonempty)


def kfd_root(given: Optional[str]) -> str:
    return str(given or os.environ.get("CUAGENT_KFD_ROOT", DEFAULT_KFD_ROOT))


def device_key(backend: str, device: Any) -> str:
    """A ``devices`` entry as the C++ drivers take it: an index or an id, as a string."""
    if isinstance(device, bool) or not isinstance(device, (int, str)):
        raise ValueError(f"{backend}: a device is an index or an id string, got {device!r}")
    if isinstance(device, int) and device < 0:
        raise ValueError(f"{backend}: device index must be >= 0, got {device}")
    return str(device)


def interval_ms(backend: str, name: str, value: Any) -> float:
    """A non-negative interval option, named in the error."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{backend}: {name} must be a number >= 0, got {value!r}")
    return float(value)


def library_option(name: str, library: str, search: str, env: str) -> Option:
    """A backend's ``--<name>`` setting: the vendor `library` to load, passed to its make_driver as
    ``library``; `search` says where the driver looks without it, `env` the environment
    variable read first (library_path)."""
    return Option(name, str, None, f"{library} to load (default: {search}; env {env})", metavar="PATH",
                  check=nonempty, param="library")


def library_path(given: Optional[str], env: str) -> str:
    """The vendor library to load: `given`, else the environment variable `env`, else "" (the
    driver's own search)."""
    return str(given or os.environ.get(env, ""))


def driver_arguments(backend: str, library_env: str, devices: Optional[Sequence[Any]], library: Optional[str],
                     kfd_root_given: Optional[str], min_read_interval_ms: Any,
                     unknown: dict[str, Any]) -> dict[str, Any]:
    """The arguments both AMD drivers' factories take (``_core.make_<backend>_driver``), each
    checked with `backend` named in the error: no `unknown` options, a non-negative read
    interval, devices as indices or ids."""
    if unknown:
        raise TypeError(f"{backend}: unknown option(s) {', '.join(sorted(unknown))}")
    interval = interval_ms(backend, "min_read_interval_ms", min_read_interval_ms)
    return {
        "library": library_path(library, library_env),
        "kfd_root": kfd_root(kfd_root_given),
        "devices": [device_key(backend, d) for d in devices] if devices else [],
        "min_read_interval_ns": int(round(interval * 1e6)),
    }
