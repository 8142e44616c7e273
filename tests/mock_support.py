"""Helpers for the mock driver tests: read a mock device at chosen timestamps."""

from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from cuagent import _core

T0_NS = 1_000_000_000  # an arbitrary driver-clock start; only t - t0 matters


def driver(*devices: object, seed: int = 1) -> object:
    return _core.make_mock_driver(list(devices), seed)


def read(drv: object, device: int, t_ns: int) -> Dict[str, np.ndarray]:
    status, values, detail = _core.mock_read(drv, device, t_ns)
    assert status == "ok", (status, detail)
    return values


def window(drv: object, device: int, start_s: float, seconds: float, rate_hz: float = 1000.0) -> Dict[str, np.ndarray]:
    """Per-counter means over `seconds` of reads at `rate_hz`, from `start_s` after the first read."""
    read(drv, device, T0_NS)  # the first read fixes the device's t0
    n = int(seconds * rate_hz)
    step = int(1e9 / rate_hz)
    first = T0_NS + int(start_s * 1e9)
    stacks: Dict[str, List[np.ndarray]] = {}
    for i in range(n):
        for name, v in read(drv, device, first + i * step).items():
            stacks.setdefault(name, []).append(v)
    return {name: np.mean(np.stack(v), axis=0) for name, v in stacks.items()}


def group_means(values: np.ndarray, ancestor: Sequence[int], groups: int) -> np.ndarray:
    ancestor = np.asarray(ancestor)
    return np.array([values[ancestor == g].mean() for g in range(groups)])
