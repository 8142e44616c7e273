"""The C++ aggregator against the numpy reference, on random sample streams."""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cuagent import _core

from aggregation_reference import Counter, ReferenceAggregator, Thresholds

WINDOW_NS = 1000

COUNTERS = [
    Counter("active", "sm", rollup="sm_active"),
    Counter("occupancy", "sm", rollup="sm_occupancy"),
    Counter("mem_stall", "sm"),
    Counter("gr_active", "partition"),
    Counter("power", "device"),
    Counter("throttle", "device", aggregation="bit_or"),
    Counter("ecc_uncorrected", "device", aggregation="last"),
]


def describe(units: int, gpcs: int, ancestor: np.ndarray, partitions: List[Optional[np.ndarray]]):
    d = _core.DeviceDescription()
    d.id, d.vendor, d.model, d.backend, d.unit_kind = "ref-0", "mock", "reference", "mock", "sm"
    d.units = units
    d.levels = ["gpc", "sm"]
    d.counts = [gpcs, units]
    d.layout = [ancestor.tolist()]
    parts = []
    for i, ids in enumerate(partitions):
        p = _core.Partition()
        p.id, p.kind = str(i), "whole" if len(partitions) == 1 else "mig"
        p.units = units if ids is None else len(ids)
        p.unit_ids = [] if ids is None else ids.tolist()
        parts.append(p)
    d.partitions = parts
    agg = {"mean": _core.Aggregation.mean, "bit_or": _core.Aggregation.bit_or, "last": _core.Aggregation.last}
    d.counters = [
        _core.CounterSpec(c.name, c.level, "ratio", "", agg[c.aggregation], c.rollup) for c in COUNTERS
    ]
    return d


@st.composite
def streams(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    units = draw(st.integers(1, 24))
    gpcs = draw(st.integers(1, 4))
    ancestor = rng.integers(0, gpcs, units).astype(np.uint16)
    if units > 1 and draw(st.booleans()):
        cut = int(rng.integers(1, units))
        order = rng.permutation(units).astype(np.uint16)
        partitions: List[Optional[np.ndarray]] = [np.sort(order[:cut]), np.sort(order[cut:])]
    else:
        partitions = [None]
    n = draw(st.integers(1, 80))
    # Timestamps spread over a few windows, some exactly on boundaries.
    t = np.sort(rng.integers(0, 6 * WINDOW_NS, n)).astype(np.int64)
    if n > 2:
        t[rng.integers(0, n)] = (t[-1] // WINDOW_NS) * WINDOW_NS
        t = np.sort(t)
    nan_rate = draw(st.sampled_from([0.0, 0.1, 0.6]))
    width = 3 * units + len(partitions) + 3
    # Per-unit levels that persist across samples, so states get exercised
    # (and near-threshold values, where hysteresis matters).
    base = rng.choice([0.0, 0.03, 0.07, 0.5, 0.62, 0.88, 0.93, 1.0], size=width)
    values = np.clip(base + rng.normal(0, 0.05, size=(n, width)), 0, 1).astype(np.float32)
    values[rng.random((n, width)) < nan_rate] = np.nan
    dev = 3 * units + len(partitions)
    values[:, dev] = rng.uniform(70, 700, n)  # power
    values[:, dev + 1] = rng.choice([0, 1, 4, 8, 5], n)  # throttle mask
    values[:, dev + 2] = np.cumsum(rng.integers(0, 2, n))  # ecc count
    values[rng.random(n) < nan_rate / 2, dev + 1] = np.nan
    return units, gpcs, ancestor, partitions, t, values


def close(a, b, tol=1e-5):
    return np.allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol=tol, atol=tol,
                       equal_nan=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_aggregator_matches_numpy_reference(stream):
    units, gpcs, ancestor, partitions, t, values = stream
    thresholds = Thresholds()
    harness = _core.AggregatorHarness(describe(units, gpcs, ancestor, partitions), _core.StateThresholds(),
                                      WINDOW_NS, 0)
    assert harness.values == values.shape[1]
    ref = ReferenceAggregator(units, gpcs, ancestor, partitions, COUNTERS, WINDOW_NS, thresholds)
    ref.run(t, values)

    # Feed window by window so every finished window can be compared.
    seen: Dict[int, dict] = {}
    for i in range(len(t)):
        harness.add(t[i:i + 1], values[i:i + 1])
        w = harness.latest()
        if w is not None:
            seen[w["seq"]] = w
    assert harness.windows == len(ref.windows)
    assert sorted(seen) == list(range(1, len(ref.windows) + 1))

    for expected in ref.windows:
        got = seen[expected["seq"]]
        assert got["t_ns"] == expected["t_ns"]
        assert got["samples"] == expected["samples"]
        assert set(got["levels"].get("sm", {})) - {"state"} == set(expected["sm"])
        for name, (mean, mx) in expected["sm"].items():
            assert close(got["levels"]["sm"][name][0], mean), name
            assert close(got["levels"]["sm"][name][1], mx), name
            assert close(got["groups"]["gpc"][name][0], expected["gpc"][name][0]), name
            assert close(got["groups"]["gpc"][name][1], expected["gpc"][name][1]), name
        if "active" in expected["sm"]:
            np.testing.assert_array_equal(got["levels"]["sm"]["state"], expected["sm_state"])
            np.testing.assert_array_equal(got["groups"]["gpc"]["state"], expected["gpc_state"])
        assert set(got["device"]) == set(expected["device"])
        for name, v in expected["device"].items():
            assert close(got["device"][name], v, 1e-4), name
        for p, part in enumerate(expected["partition"]):
            assert set(got["partition"][str(p)]) == set(part)
            for name, v in part.items():
                assert close(got["partition"][str(p)][name], v, 1e-4), name
        if expected["idle_units"] is None:
            assert got["idle_units"] is None
        else:
            assert got["idle_units"] == pytest.approx(expected["idle_units"], rel=1e-4, abs=1e-4)


def test_hysteresis_keeps_a_hovering_unit_from_flapping():
    """A unit whose activity hovers around the idle threshold changes state once, not every window."""
    d = describe(1, 1, np.zeros(1, dtype=np.uint16), [None])
    harness = _core.AggregatorHarness(d, _core.StateThresholds(), WINDOW_NS, 0)
    width = harness.values
    states = []
    for k, active in enumerate([0.0, 0.04, 0.06, 0.04, 0.06, 0.2, 0.08, 0.06, 0.2, 0.0]):
        row = np.full((1, width), np.nan, dtype=np.float32)
        row[0, 0] = active
        harness.add(np.array([k * WINDOW_NS], dtype=np.int64), row)
        w = harness.latest()
        if w is not None:
            states.append(int(w["levels"]["sm"]["state"][0]))
    # windows 0..8 finished: idle while < 0.10, active from 0.2, stays active above 0.05
    assert states == [0, 0, 0, 0, 0, 1, 1, 1, 1]


def test_thresholds_are_configurable():
    d = describe(1, 1, np.zeros(1, dtype=np.uint16), [None])
    strict = _core.StateThresholds(idle_active=0.5, hysteresis=0.0)
    harness = _core.AggregatorHarness(d, strict, WINDOW_NS, 0)
    row = np.full((1, harness.values), np.nan, dtype=np.float32)
    row[0, 0] = 0.3
    harness.add(np.array([0, WINDOW_NS], dtype=np.int64), np.repeat(row, 2, axis=0))
    assert harness.latest()["levels"]["sm"]["state"][0] == 0  # 0.3 < 0.5: idle


def test_absent_counters_stay_absent():
    """A counter with no value in a window is absent from it: never zero."""
    d = describe(2, 1, np.zeros(2, dtype=np.uint16), [None])
    harness = _core.AggregatorHarness(d, _core.StateThresholds(), WINDOW_NS, 0)
    rows = np.full((2, harness.values), np.nan, dtype=np.float32)
    rows[:, 0:2] = 0.5  # only `active`
    harness.add(np.array([0, WINDOW_NS], dtype=np.int64), rows)
    w = harness.latest()
    assert set(w["levels"]["sm"]) == {"active", "state"}
    assert "power" not in w["device"] and "throttle" not in w["device"]
    assert w["device"]["sm_active"] == pytest.approx(0.5)


def test_bad_descriptions_are_rejected_with_the_reason():
    d = describe(4, 2, np.array([0, 1, 1, 5], dtype=np.uint16), [None])
    with pytest.raises(ValueError, match="past its count"):
        _core.AggregatorHarness(d, _core.StateThresholds(), WINDOW_NS, 0)
    d = describe(4, 2, np.array([0, 1, 1, 0], dtype=np.uint16), [None])
    d.counters = list(d.counters) + [_core.CounterSpec("power", "device", "W")]
    with pytest.raises(ValueError, match="declared twice"):
        _core.AggregatorHarness(d, _core.StateThresholds(), WINDOW_NS, 0)


def slot_of(harness, name):
    return {n: (offset, elements) for n, offset, elements in harness.counter_slots()}[name]


def test_non_finite_values_are_no_data():
    """An infinity from a driver is no value: it must not poison a window's sum, max or last value
    (the protocol has no infinities: an unmeasured counter is absent)."""
    d = describe(2, 1, np.zeros(2, dtype=np.uint16), [None])
    harness = _core.AggregatorHarness(d, _core.StateThresholds(), WINDOW_NS, 0)
    active, _ = slot_of(harness, "active")
    power, _ = slot_of(harness, "power")
    ecc, _ = slot_of(harness, "ecc_uncorrected")
    rows = np.full((4, harness.values), np.nan, dtype=np.float32)
    rows[:2, active] = [0.5, np.inf]
    rows[:2, active + 1] = [-np.inf, 0.25]
    rows[:2, power] = [np.inf, 300.0]
    rows[:2, ecc] = [2.0, np.inf]
    rows[2, power] = np.inf  # the second window's only power reading
    rows[3, power] = 1.0
    windows = []
    for k, t in enumerate([0, 1, WINDOW_NS, 2 * WINDOW_NS]):
        harness.add(np.array([t], dtype=np.int64), rows[k : k + 1])
        w = harness.latest()
        if w is not None and (not windows or windows[-1]["seq"] != w["seq"]):
            windows.append(w)
    first, second = windows
    sm = first["levels"]["sm"]["active"]
    np.testing.assert_array_equal(sm[0], np.array([0.5, 0.25], dtype=np.float32))  # mean
    np.testing.assert_array_equal(sm[1], np.array([0.5, 0.25], dtype=np.float32))  # max
    assert first["device"]["power"] == 300.0
    assert first["device"]["ecc_uncorrected"] == 2.0
    assert first["device"]["sm_active"] == pytest.approx(0.375)
    assert "power" not in second["device"]  # only an infinity: absent, not inf


def test_a_long_window_mean_keeps_its_precision():
    """Two million samples in one window (20 s at 100 kHz): a float32 running sum
    reaches 2^20 and then rounds every 0.93 added to a multiple of 1/8."""
    d = describe(1, 1, np.zeros(1, dtype=np.uint16), [None])
    harness = _core.AggregatorHarness(d, _core.StateThresholds(), WINDOW_NS, 0)
    active, _ = slot_of(harness, "active")
    chunk = np.full((250_000, harness.values), np.nan, dtype=np.float32)
    chunk[:, active] = 0.93
    t = np.zeros(len(chunk), dtype=np.int64)
    for _ in range(8):
        harness.add(t, chunk)
    harness.add(np.array([WINDOW_NS], dtype=np.int64), chunk[:1])
    w = harness.latest()
    assert w["samples"] == 2_000_000
    assert w["levels"]["sm"]["active"][0][0] == pytest.approx(0.93, rel=1e-5)
