"""The mock is a function of (seed, device index, time since its first read)."""

from __future__ import annotations

import numpy as np
import pytest

from cuagent import _core

from mock_support import T0_NS, driver, read

SCENARIOS = ["training", "inference", "thrashing", "mig"]


def readings(drv: object, device: int, times_ns: list[int]) -> list[dict[str, np.ndarray]]:
    return [read(drv, device, t) for t in times_ns]


def assert_same(a: list[dict[str, np.ndarray]], b: list[dict[str, np.ndarray]]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for name in x:
            np.testing.assert_array_equal(x[name], y[name], err_msg=name)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_same_seed_same_values_at_same_times(scenario: str) -> None:
    times = [T0_NS + i * 1_700_000 for i in range(300)]  # 0.5 s at an odd step
    a = readings(driver({"preset": "h100-sxm", "scenario": scenario}, seed=7), 0, times)
    b = readings(driver({"preset": "h100-sxm", "scenario": scenario}, seed=7), 0, times)
    assert_same(a, b)
    # Not vacuous: the device is doing something that changes over time.
    if scenario != "idle":
        assert any(not np.array_equal(a[0]["active"], r["active"]) for r in a)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_values_do_not_depend_on_how_often_the_device_was_read(scenario: str) -> None:
    # One driver read every 100 us, the other only at the probe times: the
    # simulation advances by events, not by reads.
    probes = [T0_NS + k * 50_000_000 for k in range(1, 11)]
    dense = driver({"preset": "h100-sxm", "scenario": scenario}, seed=3)
    sparse = driver({"preset": "h100-sxm", "scenario": scenario}, seed=3)
    read(dense, 0, T0_NS)
    read(sparse, 0, T0_NS)
    dense_at_probes = []
    t = T0_NS
    for p in probes:
        while t + 100_000 < p:
            t += 100_000
            read(dense, 0, t)
        t = p
        dense_at_probes.append(read(dense, 0, p))
    assert_same(dense_at_probes, readings(sparse, 0, probes))


def test_start_time_does_not_matter_only_time_since_first_read() -> None:
    a = driver({"scenario": "inference"}, seed=5)
    b = driver({"scenario": "inference"}, seed=5)
    offsets = [i * 3_000_000 for i in range(100)]
    assert_same(readings(a, 0, [10**9 + o for o in offsets]), readings(b, 0, [77 * 10**9 + o for o in offsets]))


def test_different_seed_different_values() -> None:
    times = [T0_NS + i * 5_000_000 for i in range(100)]
    a = readings(driver({"scenario": "inference"}, seed=1), 0, times)
    b = readings(driver({"scenario": "inference"}, seed=2), 0, times)
    assert any(not np.array_equal(x["active"], y["active"]) for x, y in zip(a, b))


def test_devices_of_one_driver_are_independent_but_reproducible() -> None:
    spec = {"preset": "h100-sxm", "scenario": "inference"}
    times = [T0_NS + i * 5_000_000 for i in range(100)]
    drv = driver(spec, spec, seed=9)
    d0, d1 = readings(drv, 0, times), readings(drv, 1, times)
    assert any(not np.array_equal(x["active"], y["active"]) for x, y in zip(d0, d1))
    # Device 1's values do not depend on whether device 0 was read at all.
    alone = driver(spec, spec, seed=9)
    assert_same(readings(alone, 1, times), d1)


def test_read_errors_are_deterministic_too() -> None:
    spec = {"scenario": "training", "read_error_rate": 0.3}
    times = [T0_NS + i * 1_000_000 for i in range(400)]
    outcomes = []
    for _ in range(2):
        drv = driver(spec, seed=11)
        outcomes.append([_core.mock_read(drv, 0, t)[0] for t in times])
    assert outcomes[0] == outcomes[1]
    errors = outcomes[0].count("error")
    assert 0.2 * len(times) < errors < 0.4 * len(times)
