"""The mock's counters follow from its block-scheduler model and the H100 trace calibration."""

from __future__ import annotations

import numpy as np
import pytest


from mock_support import T0_NS, driver, group_means, read, window

# Figures of the traced H100 under a bf16 matmul loop (tests/data/h100-nvml-trace.json).
TRACE_MATMUL = {"sm_active": 0.93, "tensor_active": 0.90, "sm_occupancy": 0.136, "dram_active": 0.23}


def test_idle_device_is_idle_and_parked() -> None:
    m = window(driver({"scenario": "idle"}), 0, 0.0, 0.2)
    for name in ("active", "occupancy", "issue", "tensor", "mem_stall"):
        assert not m[name].any(), name
    assert m["power"][0] == pytest.approx(76.4, abs=0.5)  # trace: idle 76 W at 345 MHz
    assert m["sm_clock"][0] == pytest.approx(345e6)
    assert m["temp"][0] == pytest.approx(51.0, abs=0.5)
    assert m["throttle"][0] == 1  # GPU idle


def test_training_matches_the_traced_matmul() -> None:
    m = window(driver({"scenario": "training"}), 0, 0.5, 0.5)
    assert m["active"].mean() == pytest.approx(TRACE_MATMUL["sm_active"], abs=0.03)
    assert m["tensor"].mean() == pytest.approx(TRACE_MATMUL["tensor_active"], abs=0.04)
    assert m["occupancy"].mean() == pytest.approx(TRACE_MATMUL["sm_occupancy"], abs=0.02)
    assert m["dram_active"][0] == pytest.approx(TRACE_MATMUL["dram_active"], abs=0.04)
    # Pinned at the 700 W cap, clocks pulled to ~1.45-1.5 GHz.
    assert 650 <= m["power"][0] <= 710
    assert 1.40e9 <= m["sm_clock"][0] <= 1.56e9
    assert 67 <= m["temp"][0] <= 90


def test_training_clock_is_power_capped() -> None:
    drv = driver({"scenario": "training"})
    read(drv, 0, T0_NS)
    masks = {int(read(drv, 0, T0_NS + k * 10_000_000)["throttle"][0]) for k in range(1, 50)}
    assert masks == {4}  # software power cap, as in the trace


def test_unit_counters_follow_resident_blocks() -> None:
    # Instantaneous per-SM values must be what resident blocks make them:
    # active is 0/1, occupancy a whole number of warps, nothing without warps.
    drv = driver({"scenario": "inference"}, {"scenario": "thrashing"}, {"scenario": "training"})
    for device in range(3):
        read(drv, device, T0_NS)
        for k in range(1, 200):
            v = read(drv, device, T0_NS + k * 997_000)
            assert set(np.unique(v["active"])) <= {0.0, 1.0}
            warps = v["occupancy"] * 64
            np.testing.assert_allclose(warps, np.round(warps), atol=1e-4)
            idle = v["active"] == 0
            assert not v["occupancy"][idle].any() and not v["tensor"][idle].any()
            assert (v["occupancy"][~idle] > 0).all()
            for name in ("issue", "tensor", "mem_stall", "occupancy"):
                assert ((v[name] >= 0) & (v[name] <= 1)).all(), name


def test_thrashing_is_memory_bound() -> None:
    m = window(driver({"scenario": "thrashing"}), 0, 0.5, 0.3)
    assert m["active"].mean() > 0.85
    assert m["mem_stall"].mean() > 0.7
    assert m["tensor"].max() == 0
    assert m["dram_active"][0] > 0.8
    assert 0.5 < m["occupancy"].mean() < 0.9  # below the saturated threshold


def test_fragmented_pins_some_gpcs_and_leaves_whole_gpcs_idle() -> None:
    drv = driver({"preset": "h100-sxm", "scenario": "fragmented"})
    gpc = drv.device(0).layout[0]
    m = window(drv, 0, 0.5, 0.2, rate_hz=200)
    per_gpc = group_means(m["active"], gpc, 9)
    assert (per_gpc == 0).sum() >= 3
    assert (per_gpc > 0.8).sum() >= 2


def test_inference_is_bursty() -> None:
    drv = driver({"scenario": "inference"})
    read(drv, 0, T0_NS)
    busy = [read(drv, 0, T0_NS + k * 1_000_000)["active"].mean() for k in range(1, 1000)]
    busy = np.array(busy)
    assert (busy == 0).mean() > 0.2  # gaps between requests
    assert (busy > 0).mean() > 0.2  # and bursts of kernels
    assert busy.max() < 1.0 or (busy > 0.9).mean() < 0.5  # small grids: rarely the whole device


def test_mig_partitions_run_their_own_load() -> None:
    drv = driver({"preset": "h100-sxm", "scenario": "mig"})
    d = drv.device(0)
    m = window(drv, 0, 0.5, 0.3, rate_hz=500)
    by_part = {p.profile + "#" + p.id: m["active"][np.asarray(p.unit_ids)].mean() for p in d.partitions}
    tensor = {p.id: m["tensor"][np.asarray(p.unit_ids)].mean() for p in d.partitions}
    stall = {p.id: m["mem_stall"][np.asarray(p.unit_ids)].mean() for p in d.partitions}
    assert by_part["MIG 3g.40gb#0"] > 0.85 and tensor["0"] > 0.7  # training
    assert stall["2"] > 0.6  # thrashing
    assert by_part["MIG 1g.10gb#3"] == 0  # idle slice
    # SMs outside every MIG instance run nothing.
    owned = np.zeros(132, bool)
    for p in d.partitions:
        owned[np.asarray(p.unit_ids)] = True
    assert not m["active"][~owned].any()


def test_mi300x_training_spreads_over_all_xcds() -> None:
    drv = driver({"preset": "mi300x", "scenario": "training"})
    m = window(drv, 0, 0.5, 0.1)
    per_xcd = group_means(m["active"], drv.device(0).layout[0], 8)
    assert (per_xcd > 0.85).all()
    assert m["occupancy"].max() <= 1.0


def test_generic_tiny_device_runs() -> None:
    m = window(driver({"preset": "generic", "units": 1, "scenario": "training"}), 0, 0.2, 0.1)
    assert m["active"][0] > 0.8


def test_power_and_temperature_react_with_lag_after_warm_up() -> None:
    # The device has already run its load for a while when first read: power
    # and temperature are at their working level from the start.
    drv = driver({"scenario": "training"})
    first = read(drv, 0, T0_NS)
    assert first["power"][0] > 600 and first["temp"][0] > 67
    assert read(drv, 0, T0_NS + 10**9)["mem_used"][0] > 10e9
