"""The rocm_smi driver against the fake librocm_smi64 and fake KFD trees (no AMD GPU here)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from cuagent import _core
from cuagent.backends.rocm_smi import make_driver
from fakes.rocm import (
    LAYOUT_V13,
    LAYOUT_V16,
    LAYOUT_V17,
    LAYOUT_V18,
    RSMI_STATUS_BUSY,
    RSMI_STATUS_INIT_ERROR,
    RSMI_STATUS_NOT_SUPPORTED,
    FakeAmdHost,
)
from fakes.rocm_fixtures import amd_host, rocm_library, rocm_library_without_socket_power  # noqa: F401

BUSY = [90.0, 0.0, 0.0, 10.0, 50.0, 60.0, 70.0, 100.0]  # distinct per XCD: a wrong stride shows


def open_driver(host: FakeAmdHost, **options):
    return make_driver(None, 0, library=str(host.library), kfd_root=str(host.kfd_root), **options)


def counters(desc) -> dict:
    return {c.name: c for c in desc.counters}


def read(driver, index: int = 0) -> tuple[str, dict, str]:
    """One read: (status, {counter: float32 values}, detail)."""
    return _core.driver_read(driver, index, 0)


# ---- topology ------------------------------------------------------------------------

def test_mi300x_spx_is_one_whole_device_of_8_xcds_32_ses_304_cus(amd_host):
    amd_host.add_mi300x()
    driver = open_driver(amd_host)
    assert driver.name == "rocm_smi" and driver.device_count == 1
    d = driver.device(0)
    assert (d.vendor, d.backend, d.unit_kind, d.layout_source) == ("amd", "rocm_smi", "cu", "vendor")
    assert d.model == "AMD Instinct MI300X"
    assert d.id == "amd-7e3d2a1f00000000"
    assert d.pci == "0000:11:00.0" and d.numa == 0
    assert d.levels == ["xcd", "se", "cu"] and d.counts == [8, 32, 304] and d.units == 304
    xcd, se = (np.asarray(a) for a in d.layout)
    assert np.bincount(xcd).tolist() == [38] * 8
    assert np.bincount(se).tolist() == [10, 9, 10, 9] * 8
    for s in range(32):  # every shader engine sits inside one XCD, four per XCD
        assert set(xcd[se == s]) == {s // 4}
    assert [(p.id, p.kind, p.units, p.profile) for p in d.partitions] == [("0", "whole", 304, "SPX NPS1")]
    assert d.memory_bytes == 192 << 30
    d.validate()


@pytest.mark.parametrize("mode, parts", [("DPX", 2), ("QPX", 4), ("CPX", 8)])
def test_mi300x_compute_partitions_become_xcp_partitions(amd_host, mode, parts):
    amd_host.add_mi300x(compute=mode, memory="NPS4")
    driver = open_driver(amd_host)
    assert driver.device_count == 1  # the partitions' rsmi devices are one GPU
    d = driver.device(0)
    assert d.counts == [8, 32, 304]
    assert [p.kind for p in d.partitions] == ["xcp"] * parts
    assert [p.units for p in d.partitions] == [304 // parts] * parts
    assert {p.profile for p in d.partitions} == {f"{mode} NPS4"}
    ids = np.concatenate([np.asarray(p.unit_ids) for p in d.partitions])
    assert sorted(ids.tolist()) == list(range(304))
    xcd = np.asarray(d.layout[0])
    for i, p in enumerate(d.partitions):  # partition i holds XCDs i*k .. i*k+k-1
        per = 8 // parts
        assert set(xcd[np.asarray(p.unit_ids)]) == set(range(i * per, i * per + per))
    c = counters(d)
    assert c["gr_active"].level == "partition" and c["mem_used"].level == "partition"
    assert c["active"].level == "xcd"


def test_mi210_has_one_xcd_of_8_engines_and_no_xcd_counter(amd_host):
    amd_host.add_mi210()
    d = open_driver(amd_host).device(0)
    assert d.model == "AMD Instinct MI210"
    assert d.counts == [1, 8, 104]
    assert "active" not in counters(d)  # its table (1.3) has no per-XCD data
    assert {"gr_active", "power", "temp", "throttle"} <= set(counters(d))


def test_devices_are_filtered_by_index_or_id(amd_host):
    amd_host.add_mi300x()
    second = amd_host.add_mi210()
    driver = make_driver(["1"], 0, library=str(amd_host.library), kfd_root=str(amd_host.kfd_root))
    assert [driver.device(i).model for i in range(driver.device_count)] == ["AMD Instinct MI210"]
    by_id = make_driver([f"amd-{second.unique_id:016x}"], 0, library=str(amd_host.library),
                        kfd_root=str(amd_host.kfd_root))
    assert by_id.device_count == 1 and by_id.device(0).index == 1
    with pytest.raises(ValueError, match="no AMD device 'amd-nope'"):
        make_driver(["amd-nope"], 0, library=str(amd_host.library), kfd_root=str(amd_host.kfd_root))


def test_missing_kfd_topology_is_one_clear_error(amd_host, tmp_path):
    amd_host.add_mi300x()
    with pytest.raises(RuntimeError, match=r"no KFD topology node for device 0 \(PCI 0000:11:00.0\)"):
        make_driver(None, 0, library=str(amd_host.library), kfd_root=str(tmp_path / "nowhere"))


def test_missing_library_is_one_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="cannot load the ROCm SMI library.*librocm_smi64.so"):
        make_driver(None, 0, library=str(tmp_path / "librocm_smi64.so"))


def test_failed_init_is_one_clear_error(amd_host):
    amd_host.add_mi300x()
    amd_host.fake.set_init_status(RSMI_STATUS_INIT_ERROR)
    with pytest.raises(RuntimeError, match=r"rsmi_init\(0\) failed.*INIT_ERROR"):
        open_driver(amd_host)


def test_the_library_is_shut_down_when_the_driver_goes(amd_host):
    amd_host.add_mi300x()
    before = amd_host.fake.initialized()
    driver = open_driver(amd_host)
    assert amd_host.fake.initialized() == before + 1
    del driver
    assert amd_host.fake.initialized() == before


# ---- values --------------------------------------------------------------------------

def test_device_counters_in_base_units(amd_host):
    gpu = amd_host.add_mi300x()
    dev = gpu.metrics_device
    for key, value in {"power_w": 612.0, "temp_c": 71.0, "vram_used": 40 << 30, "busy_pct": 87.0,
                       "sclk_mhz": 2100.0, "mclk_mhz": 1300.0}.items():
        amd_host.fake.set_value(dev, key, value)
    status, v, _ = read(open_driver(amd_host))
    assert status == "ok"
    assert v["power"][0] == pytest.approx(612.0)
    assert v["temp"][0] == pytest.approx(71.0)
    assert v["mem_used"][0] == pytest.approx(40 << 30, rel=1e-6)
    assert v["gr_active"][0] == pytest.approx(0.87)
    assert v["sm_clock"][0] == pytest.approx(2.1e9)
    assert v["mem_clock"][0] == pytest.approx(1.3e9)
    units = {c.name: c.unit for c in open_driver(amd_host).device(0).counters}
    assert units["power"] == "W" and units["temp"] == "C" and units["sm_clock"] == "Hz"


@pytest.mark.parametrize("layout, revision", [(LAYOUT_V16, 6), (LAYOUT_V17, 6), (LAYOUT_V17, 7),
                                              (LAYOUT_V18, 6), (LAYOUT_V18, 7), (LAYOUT_V18, 8)])
def test_xcd_activity_is_read_from_every_library_layout(rocm_library, tmp_path, layout, revision):
    host = FakeAmdHost(rocm_library, tmp_path / "kfd", layout=layout)
    gpu = host.add_mi300x(metrics_revision=revision)
    host.set_xcd_busy(gpu, BUSY)
    status, v, _ = read(open_driver(host))
    assert status == "ok"
    np.testing.assert_allclose(v["active"], np.array(BUSY) / 100, atol=1e-6)


def test_metrics_1_4_has_no_xcd_counter_but_keeps_device_counters(amd_host):
    amd_host.add_mi300x(metrics_revision=4)
    d = open_driver(amd_host).device(0)
    names = set(counters(d))
    assert "active" not in names and "power_violation" not in names
    assert {"gr_active", "power", "temp", "sm_clock", "throttle"} <= names


def test_an_old_library_with_a_new_table_reports_no_xcd_data(rocm_library, tmp_path):
    # A 1.6-era library does not know table 1.8 and refuses it: no table at all.
    host = FakeAmdHost(rocm_library, tmp_path / "kfd", layout=LAYOUT_V16)
    host.add_mi300x(metrics_revision=8)
    names = set(counters(open_driver(host).device(0)))
    assert "active" not in names
    assert {"gr_active", "power", "temp"} <= names  # from the other calls


def test_xcd_activity_averages_the_firmware_accumulators_between_tables(amd_host):
    gpu = amd_host.add_mi300x()
    driver = open_driver(amd_host)
    read(driver)  # first table: baseline
    amd_host.set_xcd_busy(gpu, [100.0] * 8)
    amd_host.tick(gpu, 5)
    amd_host.set_xcd_busy(gpu, [0.0] * 4 + [100.0] * 4)
    amd_host.tick(gpu, 5)
    status, v, _ = read(driver)
    assert status == "ok"
    # Half the ticks busy on XCDs 0-3, all busy on 4-7; gfx_busy_inst would say 0 and 1.
    np.testing.assert_allclose(v["active"], [0.5] * 4 + [1.0] * 4, atol=1e-6)


def test_a_stale_table_is_not_republished(amd_host):
    gpu = amd_host.add_mi300x()
    amd_host.set_xcd_busy(gpu, BUSY)
    driver = open_driver(amd_host)
    _, first, _ = read(driver)
    assert np.isfinite(first["active"]).all()
    status, again, _ = read(driver)  # firmware_timestamp unchanged
    assert status == "ok"
    assert np.isnan(again["active"]).all() and np.isnan(again["sm_clock"]).all()
    assert np.isfinite(again["power"]).all()  # from its own call, always fresh
    amd_host.tick(gpu)
    _, fresh, _ = read(driver)
    np.testing.assert_allclose(fresh["active"], np.array(BUSY) / 100, atol=1e-6)


def test_the_table_refreshes_on_the_firmware_cadence(amd_host):
    gpu = amd_host.add_mi300x(fw_period_ns=1_000_000)
    amd_host.set_xcd_busy(gpu, BUSY)
    driver = open_driver(amd_host)
    read(driver)
    time.sleep(0.02)  # many firmware periods: the next table is new data
    _, v, _ = read(driver)
    np.testing.assert_allclose(v["active"], np.array(BUSY) / 100, atol=0.011)


def test_violation_residency_ratios(amd_host):
    gpu = amd_host.add_mi300x()
    driver = open_driver(amd_host)
    read(driver)
    amd_host.fake.set_value(gpu.metrics_device, "ppt_violation", 0.25)
    amd_host.fake.set_value(gpu.metrics_device, "thermal_violation", 1.0)
    amd_host.tick(gpu, 8)
    _, v, _ = read(driver)
    assert v["power_violation"][0] == pytest.approx(0.25)
    assert v["thermal_violation"][0] == pytest.approx(1.0)


def test_cpx_maps_each_partitions_xcp_stats_to_its_xcd(amd_host):
    gpu = amd_host.add_mi300x(compute="CPX")
    amd_host.set_xcd_busy(gpu, BUSY)
    for p, dev in enumerate(gpu.rsmi_devices):
        amd_host.fake.set_value(dev, "busy_pct", 10.0 * p)
    status, v, _ = read(open_driver(amd_host))
    assert status == "ok"
    np.testing.assert_allclose(v["active"], np.array(BUSY) / 100, atol=1e-6)
    np.testing.assert_allclose(v["gr_active"], np.arange(8) / 10, atol=1e-6)


# ---- ROCm 5.x releases: a 96-byte table, rsmi_frequencies_t without has_deep_sleep ------
# (what Debian's librocm-smi64-1 5.2.3 does; test_rocm_real.py runs that library itself)

@pytest.fixture
def rocm5_host(rocm_library, tmp_path):  # noqa: F811
    return FakeAmdHost(rocm_library, tmp_path / "kfd", layout=LAYOUT_V13)


def test_a_rocm5_table_of_96_bytes_feeds_the_clocks(rocm5_host):
    gpu = rocm5_host.add_mi210()  # table 1.3
    rocm5_host.fake.set_value(gpu.metrics_device, "sclk_mhz", 1650.0)
    rocm5_host.fake.set_value(gpu.metrics_device, "mclk_mhz", 1550.0)
    rocm5_host.fake.set_unsupported(gpu.metrics_device, "rsmi_dev_gpu_clk_freq_get")  # the table alone
    driver = open_driver(rocm5_host)
    names = set(counters(driver.device(0)))
    assert {"sm_clock", "mem_clock", "power", "temp", "gr_active", "mem_used"} <= names
    assert "throttle" not in names  # indep_throttle_status lies beyond 96 bytes
    status, v, _ = read(driver)
    assert status == "ok"
    assert v["sm_clock"][0] == pytest.approx(1.65e9) and v["mem_clock"][0] == pytest.approx(1.55e9)


def test_a_rocm5_table_is_new_when_its_system_clock_counter_moves(rocm5_host):
    gpu = rocm5_host.add_mi210()  # firmware ticks only when the test says
    rocm5_host.fake.set_unsupported(gpu.metrics_device, "rsmi_dev_gpu_clk_freq_get")
    driver = open_driver(rocm5_host)
    assert not np.isnan(read(driver)[1]["sm_clock"][0])
    assert np.isnan(read(driver)[1]["sm_clock"][0])  # the same table again
    rocm5_host.tick(gpu)
    assert not np.isnan(read(driver)[1]["sm_clock"][0])


def test_a_rocm5_frequency_struct_reads_the_current_level(rocm5_host):
    gpu = rocm5_host.add_mi210(metrics_revision=0)  # no table: the clocks come from the call
    rocm5_host.fake.set_value(gpu.metrics_device, "sclk_mhz", 1700.0)
    rocm5_host.fake.set_value(gpu.metrics_device, "mclk_mhz", 1600.0)
    _, v, _ = read(open_driver(rocm5_host))
    assert v["sm_clock"][0] == pytest.approx(1.7e9) and v["mem_clock"][0] == pytest.approx(1.6e9)


# ---- failures ------------------------------------------------------------------------

def test_an_unsupported_call_leaves_its_counter_absent(amd_host):
    gpu = amd_host.add_mi300x()
    amd_host.fake.set_unsupported(gpu.metrics_device, "rsmi_dev_busy_percent_get")
    amd_host.fake.set_unsupported(gpu.metrics_device, "rsmi_dev_memory_usage_get")
    d = open_driver(amd_host).device(0)
    names = set(counters(d))
    assert "gr_active" not in names and "mem_used" not in names
    assert {"active", "power", "temp"} <= names


def test_an_unsupported_call_falls_back_to_the_table_where_it_has_the_value(amd_host):
    gpu = amd_host.add_mi300x()
    amd_host.fake.set_unsupported(gpu.metrics_device, "rsmi_dev_temp_metric_get")
    amd_host.fake.set_value(gpu.metrics_device, "temp_c", 64.0)
    _, v, _ = read(open_driver(amd_host))
    assert v["temp"][0] == pytest.approx(64.0)  # gpu_metrics temperature_hotspot


def test_a_missing_symbol_uses_the_next_source(rocm_library_without_socket_power, tmp_path):
    host = FakeAmdHost(rocm_library_without_socket_power, tmp_path / "kfd")
    gpu = host.add_mi300x()
    host.fake.set_value(gpu.metrics_device, "power_w", 333.0)
    _, v, _ = read(open_driver(host))
    assert v["power"][0] == pytest.approx(333.0)  # rsmi_dev_power_ave_get


def test_a_lost_device_reads_lost_and_the_others_go_on(amd_host):
    first = amd_host.add_mi300x()
    amd_host.add_mi300x()
    driver = open_driver(amd_host)
    amd_host.set_lost(first)
    status, sample, detail = _core.driver_read(driver, 0, 0)
    assert status == "lost"
    assert "RSMI_STATUS_FILE_ERROR" in detail
    assert all(np.isnan(values).all() for values in sample.values())
    assert _core.driver_read(driver, 1, 0)[0] == "ok"
    amd_host.set_back(first)
    assert _core.driver_read(driver, 0, 0)[0] == "ok"


def test_a_vanished_sysfs_reads_as_lost(amd_host):
    # A device that fell off the bus takes its sysfs files with it; rocm_smi
    # maps ENOENT to NOT_SUPPORTED on every call.
    gpu = amd_host.add_mi300x()
    driver = open_driver(amd_host)
    amd_host.set_lost(gpu, RSMI_STATUS_NOT_SUPPORTED)
    assert _core.driver_read(driver, 0, 0)[0] == "lost"


def test_a_busy_library_is_a_read_error_not_a_lost_device(amd_host):
    gpu = amd_host.add_mi300x()
    driver = open_driver(amd_host)
    amd_host.set_lost(gpu, RSMI_STATUS_BUSY)
    status, _, detail = _core.driver_read(driver, 0, 0)
    assert status == "error" and "BUSY" in detail


def test_bad_options_are_named(amd_host):
    amd_host.add_mi300x()
    with pytest.raises(TypeError, match="unknown option.*rate"):
        open_driver(amd_host, rate=5)
    with pytest.raises(ValueError, match="min_read_interval_ms"):
        open_driver(amd_host, min_read_interval_ms=-1)
    driver = open_driver(amd_host, min_read_interval_ms=2.5)
    assert driver.min_read_interval_ns(0) == 2_500_000


def test_kfd_tree_is_read_from_the_configured_root(amd_host, tmp_path: Path):
    amd_host.add_mi300x()
    props = next((amd_host.kfd_root / "topology" / "nodes").glob("1/properties"))
    text = props.read_text().replace("simd_per_cu 4", "simd_per_cu 3")
    props.write_text(text)
    with pytest.raises(RuntimeError, match="simd_count=1216 is not a positive multiple of simd_per_cu=3"):
        open_driver(amd_host)


# ---- library and kernel generations -------------------------------------------------

def test_an_unknown_newer_layout_keeps_the_common_prefix_and_drops_xcd_fields(rocm_library, tmp_path):
    # A release after the 4544-byte one: its xcp_stats entries may have grown
    # again, so the driver does not guess their offsets.
    host = FakeAmdHost(rocm_library, tmp_path / "kfd", layout=5120)
    gpu = host.add_mi300x(metrics_revision=9)
    host.set_xcd_busy(gpu, BUSY)
    host.fake.set_unsupported(gpu.metrics_device, "rsmi_dev_temp_metric_get")
    host.fake.set_value(gpu.metrics_device, "temp_c", 66.0)
    driver = open_driver(host)
    names = set(counters(driver.device(0)))
    assert "active" not in names
    assert {"power_violation", "sm_clock"} <= names
    _, v, _ = read(driver)
    assert v["temp"][0] == pytest.approx(66.0)  # temperature_hotspot, from the prefix


def test_a_library_older_than_rocm_6_3_shows_a_cpx_gpu_once(amd_host):
    # One rsmi device for the whole GPU; KFD still has a node per partition.
    gpu = amd_host.add_mi300x(compute="CPX", enumerate_partitions=False)
    amd_host.set_xcd_busy(gpu, BUSY)
    driver = open_driver(amd_host)
    d = driver.device(0)
    assert [p.units for p in d.partitions] == [38] * 8
    c = counters(d)
    assert c["gr_active"].level == "device" and c["mem_used"].level == "device"
    _, v, _ = read(driver)
    np.testing.assert_allclose(v["active"], np.array(BUSY) / 100, atol=1e-6)


def test_kernels_that_put_the_partition_in_the_function_bits_group_the_same(amd_host):
    amd_host.add_mi300x(compute="QPX", kernel_partition_bits="function")
    amd_host.add_mi210()
    driver = open_driver(amd_host)
    assert driver.device_count == 2
    assert [p.units for p in driver.device(0).partitions] == [76] * 4
    assert driver.device(0).pci == "0000:11:00.0"
    assert driver.device(1).counts == [1, 8, 104]
