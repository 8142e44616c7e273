"""Rollups are decided once, by CounterSpec.rollup: the aggregator computes exactly those,
the topology declares each at "partition" level, and the encoder sends every one of them.
Nothing the engine computes for the partition and device sections is dropped on the wire."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cuagent import _core, protocol
from cuagent.topology import DeviceState, DeviceTopology
from device_descriptions import flat_device

WINDOW_NS = 100_000_000


def description(rollups: dict[str, str]) -> _core.DeviceDescription:
    return flat_device("test", 4, [_core.CounterSpec(name, "sm", "ratio", "", _core.Aggregation.mean, rollup)
                                   for name, rollup in rollups.items()])


def test_a_rollup_named_like_its_own_counter_is_refused() -> None:
    # Published under "issue" at partition level, it would contradict "issue" declared at "sm".
    with pytest.raises(ValueError, match="rollup name 'issue' of counter 'issue' is a counter's name"):
        description({"active": "sm_active", "issue": "issue"}).validate()


def test_a_rollup_named_like_another_counter_is_refused() -> None:
    with pytest.raises(ValueError, match="rollup name 'issue' of counter 'active'"):
        description({"active": "issue", "issue": ""}).validate()


def mock_window(scenario: str) -> tuple[DeviceTopology, DeviceState]:
    driver = _core.make_mock_driver([{"preset": "h100-sxm", "scenario": scenario}], 3)
    desc = driver.device(0)
    harness = _core.AggregatorHarness(desc, _core.StateThresholds(), WINDOW_NS, 0)
    for t in range(0, 250_000_000, 1_000_000):
        status, values, _ = _core.driver_read(driver, 0, t)
        assert status == "ok"
        row = np.full((1, harness.values), np.nan, dtype=np.float32)
        for name, offset, elements in harness.counter_slots():
            row[0, offset:offset + elements] = values[name]
        harness.add(np.asarray([t], dtype=np.int64), row)
    harness.poll(10**9, 0)
    topo = DeviceTopology.from_description(desc)
    return topo, DeviceState.from_window(topo, harness.latest())


@pytest.mark.parametrize("scenario", ["training", "mig"])
def test_the_encoder_sends_every_rollup_the_engine_computes(scenario: str) -> None:
    topo, state = mock_window(scenario)
    declared = {c.rollup for c in _core.make_mock_driver([{"scenario": scenario}], 3).device(0).counters if c.rollup}
    assert declared == {"sm_active", "sm_occupancy", "tensor_active"}
    for rollup in declared:
        assert topo.counters[rollup].level == "partition"
    body = protocol.encode_state_body(state, topo.counters)
    measured = {k for k, v in state.device.items() if not math.isnan(v)}
    assert set(body["device"]) == measured  # nothing computed is dropped
    assert declared <= measured
    for pid, values in state.partition.items():
        # Partition sections hold the rollups and nothing else (the mock has no
        # partition-level counters).
        assert set(values) == declared, pid
        assert set(body["partition"][pid]) == {k for k, v in values.items() if not math.isnan(v)}
