"""Injected faults: a lost device, read errors at a rate, stalled reads."""

from __future__ import annotations

import time

import numpy as np

from cuagent import _core

from mock_support import T0_NS, driver


def status_at(drv: object, t_ns: int) -> tuple[str, str]:
    status, _, detail = _core.mock_read(drv, 0, t_ns)
    return status, detail


def test_device_lost_then_back() -> None:
    drv = driver({"scenario": "training", "lost_at_s": 0.5, "back_at_s": 1.5})
    assert status_at(drv, T0_NS)[0] == "ok"
    assert status_at(drv, T0_NS + 499_000_000)[0] == "ok"
    status, detail = status_at(drv, T0_NS + 500_000_000)
    assert status == "lost" and "fell off the bus" in detail and "500 ms" in detail
    assert status_at(drv, T0_NS + 1_400_000_000)[0] == "lost"
    status, values, _ = _core.mock_read(drv, 0, T0_NS + 1_600_000_000)
    assert status == "ok" and values["active"].mean() > 0.5


def test_device_lost_for_good() -> None:
    drv = driver({"lost_at_s": 0.1})
    status_at(drv, T0_NS)
    assert all(status_at(drv, T0_NS + k * 10**9)[0] == "lost" for k in range(1, 5))


def test_errors_leave_the_sample_untouched() -> None:
    drv = driver({"read_error_rate": 1.0})
    status, values, detail = _core.mock_read(drv, 0, T0_NS)
    assert status == "error" and "read error" in detail
    assert all(np.isnan(v).all() for v in values.values())


def test_slow_read_stalls_the_reader() -> None:
    drv = driver({"scenario": "idle", "slow_read_every_s": 0.2, "slow_read_ms": 150})
    status_at(drv, T0_NS)
    start = time.monotonic()
    assert status_at(drv, T0_NS + 200_000_000)[0] == "ok"
    # A lower bound the fault guarantees (it sleeps), not a speed claim.
    assert time.monotonic() - start >= 0.15


def test_a_device_back_from_the_bus_restarts_cold_and_deterministically() -> None:
    spec = {"scenario": "training", "lost_at_s": 0.5, "back_at_s": 1.0}
    # One driver read densely before the loss, the other barely: after the
    # reset both show the same device, which starts parked and cool.
    dense, sparse = driver(spec, seed=4), driver(spec, seed=4)
    for k in range(500):
        _core.mock_read(dense, 0, T0_NS + k * 1_000_000)
    _core.mock_read(sparse, 0, T0_NS)
    hot = _core.mock_read(dense, 0, T0_NS + 499_000_000)[1]
    after = [T0_NS + 1_000_000_000 + k * 7_000_000 for k in range(60)]
    a = [_core.mock_read(dense, 0, t) for t in after]
    b = [_core.mock_read(sparse, 0, t) for t in after]
    for (sa, va, _), (sb, vb, _) in zip(a, b):
        assert sa == sb == "ok"
        for name in va:
            np.testing.assert_array_equal(va[name], vb[name], err_msg=name)
    assert a[0][1]["temp"][0] < hot["temp"][0] and a[0][1]["power"][0] < hot["power"][0]
    assert a[-1][1]["active"].mean() > 0.5  # its workload started again
