"""Mock presets describe real parts: levels, counts, layout, partitions, counters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cuagent import _core
from cuagent.topology import DeviceTopology

from mock_support import driver

MEASURED_LAYOUT = Path(__file__).parent / "data" / "h100-sxm-layout.json"


def topology(spec: dict, index: int = 0) -> DeviceTopology:
    return DeviceTopology.from_description(driver(spec).device(index))


def test_names() -> None:
    assert set(_core.mock_presets()) == {"h100-sxm", "a100-sxm", "mi300x", "generic"}
    assert set(_core.mock_scenarios()) == {"idle", "training", "inference", "fragmented", "thrashing", "mig"}


def test_h100_topology() -> None:
    t = topology({"preset": "h100-sxm"})
    assert (t.vendor, t.backend, t.unit, t.units, t.layout_source) == ("mock", "mock", "sm", 132, "mock")
    assert t.levels == ["gpc", "tpc", "sm"]
    assert t.counts == {"gpc": 9, "tpc": 66, "sm": 132}
    assert t.memory_bytes == 85520809984
    gpc, tpc = t.layout["gpc"], t.layout["tpc"]
    assert len(gpc) == len(tpc) == 132
    np.testing.assert_array_equal(tpc, np.arange(132) // 2)  # TPC pairs (2k, 2k+1)
    # GPC sizes as measured: one of 8, five of 16, two of 18, and the 8 unplaced SMs.
    assert sorted(np.bincount(gpc, minlength=9).tolist()) == [8, 8, 16, 16, 16, 16, 16, 18, 18]
    assert len(set(gpc[[0, 1, 16, 17, 32, 33, 48, 49]])) == 1
    assert len(set(gpc[124:132])) == 1 and gpc[124] not in set(gpc[:124])
    # SM ids interleave GPCs, and both SMs of a TPC share a GPC.
    assert gpc[0] != gpc[2]
    assert all(gpc[2 * k] == gpc[2 * k + 1] for k in range(66))
    assert t.id == "mock-0" and len(t.partitions) == 1 and t.partitions[0].kind == "whole"


def test_h100_layout_is_the_measured_one() -> None:
    measured = json.loads(MEASURED_LAYOUT.read_text())
    groups = [*measured["gpc_groups_cluster16"], measured["group_max_cluster_8"], measured["never_in_cluster_above_2"]]
    gpc = topology({"preset": "h100-sxm"}).layout["gpc"]
    shipped = sorted(sorted(np.flatnonzero(gpc == g).tolist()) for g in range(9))
    assert shipped == sorted(sorted(g) for g in groups)


def test_a100_topology() -> None:
    t = topology({"preset": "a100-sxm"})
    assert t.counts == {"gpc": 7, "tpc": 54, "sm": 108}
    assert sorted(np.bincount(t.layout["gpc"]).tolist()) == [14, 14, 16, 16, 16, 16, 16]


def test_mi300x_topology() -> None:
    t = topology({"preset": "mi300x"})
    assert (t.unit, t.units, t.vendor) == ("cu", 304, "mock")
    assert t.levels == ["xcd", "se", "cu"]
    assert t.counts == {"xcd": 8, "se": 32, "cu": 304}
    assert np.bincount(t.layout["xcd"]).tolist() == [38] * 8
    assert sorted(set(np.bincount(t.layout["se"]).tolist())) == [9, 10]
    # Every SE lies inside one XCD.
    se, xcd = t.layout["se"], t.layout["xcd"]
    assert all(len(set(xcd[se == s])) == 1 for s in range(32))
    assert {c for c, info in t.counters.items() if info.level == "cu"} >= {"active", "occupancy", "tensor"}


def test_generic_topology() -> None:
    t = topology({"preset": "generic", "units": 40})
    assert t.levels == ["gpc", "sm"] and t.counts == {"gpc": 3, "sm": 40}
    assert np.bincount(t.layout["gpc"]).tolist() == [16, 16, 8]


def test_counters_and_rollups() -> None:
    d = driver({"preset": "h100-sxm"}).device(0)
    by_name = {c.name: c for c in d.counters}
    for name in ("active", "occupancy", "issue", "tensor", "mem_stall"):
        assert (by_name[name].level, by_name[name].unit) == ("sm", "ratio")
    assert by_name["active"].rollup == "sm_active"
    assert by_name["occupancy"].rollup == "sm_occupancy"
    assert by_name["tensor"].rollup == "tensor_active"
    units = {"power": "W", "temp": "C", "sm_clock": "Hz", "mem_clock": "Hz", "mem_used": "bytes",
             "dram_active": "ratio", "throttle": "mask"}
    for name, unit in units.items():
        assert (by_name[name].level, by_name[name].unit) == ("device", unit)
    assert by_name["throttle"].aggregation == _core.Aggregation.bit_or


@pytest.mark.parametrize("preset", ["h100-sxm", "a100-sxm", "mi300x", "generic"])
def test_mig_partitions_own_disjoint_unit_sets(preset: str) -> None:
    t = topology({"preset": preset, "scenario": "mig", "units": 64 if preset == "generic" else None})
    assert len(t.partitions) >= 2
    seen: set[int] = set()
    for p in t.partitions:
        assert p.kind == ("xcp" if preset == "mi300x" else "mig")
        ids = set(p.unit_ids.tolist())
        assert len(ids) == p.units > 0 and not ids & seen
        seen |= ids
    assert sum(p.memory_bytes for p in t.partitions) <= t.memory_bytes


def test_h100_mig_is_3g_2g_1g_1g_on_whole_gpcs() -> None:
    t = topology({"preset": "h100-sxm", "scenario": "mig"})
    assert [p.profile for p in t.partitions] == ["MIG 3g.40gb", "MIG 2g.20gb", "MIG 1g.10gb", "MIG 1g.10gb"]
    gpc = t.layout["gpc"]
    for p in t.partitions:
        gpcs = set(gpc[p.unit_ids].tolist())
        assert sum(int((gpc == g).sum()) for g in gpcs) == p.units  # whole GPCs only


def test_device_ids_and_indices() -> None:
    drv = driver({"preset": "h100-sxm"}, {"preset": "mi300x", "scenario": "idle"}, {"preset": "a100-sxm"})
    assert drv.device_count == 3
    assert [drv.device(i).id for i in range(3)] == ["mock-0", "mock-1", "mock-2"]
    assert [drv.device(i).index for i in range(3)] == [0, 1, 2]
    assert drv.name == "mock"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"preset": "h200"}, "h200"),
        ({"scenario": "gaming"}, "gaming"),
        ({"preset": "generic"}, "units"),
        ({"preset": "generic", "units": 5000}, "5000"),
        ({"preset": "h100-sxm", "units": 12}, "units"),
        ({"read_error_rate": 1.5}, "read_error_rate"),
        ({"lost_at_s": 2.0, "back_at_s": 1.0}, "back_at_s"),
        ({"back_at_s": 1.0}, "back_at_s"),
        ({"slow_read_ms": 5.0}, "slow_read_ms"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_specs_raise_value_error_naming_the_value(spec: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        driver(spec)


def test_no_devices_is_an_error() -> None:
    with pytest.raises(ValueError, match="no devices"):
        _core.make_mock_driver([], 0)


def test_bound_spec_classes_work_too() -> None:
    faults = _core.MockFaults(read_error_rate=0.5)
    spec = _core.MockDeviceSpec("mi300x", "idle", faults=faults)
    drv = _core.make_mock_driver([spec], 3)
    assert drv.device(0).units == 304
