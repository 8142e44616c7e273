"""The rocm_smi driver against the fake librocm_smi64 and fake KFD trees (no AMD GPU here): what
ROCm SMI does its own way (ROCm 5.x layouts, its sources of power and temperature, releases
before per-partition devices). What both AMD drivers do alike is in test_amd_drivers.py."""

from __future__ import annotations

import time

import numpy as np
import pytest

from fakes.amd_backends import ROCM_SMI, counters, read
from fakes.amd_fixtures import rocm_host, rocm_library, rocm_library_without_socket_power  # noqa: F401
from fakes.amd_host import LAYOUT_V13, LAYOUT_V16
from fakes.rocm import FakeAmdHost

BUSY = [90.0, 0.0, 0.0, 10.0, 50.0, 60.0, 70.0, 100.0]  # distinct per XCD: a wrong stride shows
open_driver = ROCM_SMI.open


# ---- topology ------------------------------------------------------------------------

@pytest.mark.parametrize("mode, parts", [("DPX", 2), ("QPX", 4), ("CPX", 8)])
def test_mi300x_compute_partitions_become_xcp_partitions(rocm_host, mode, parts):
    rocm_host.add_mi300x(compute=mode, memory="NPS4")
    driver = open_driver(rocm_host)
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


def test_the_library_is_shut_down_when_the_driver_goes(rocm_host):
    rocm_host.add_mi300x()
    before = rocm_host.fake.initialized()
    driver = open_driver(rocm_host)
    assert rocm_host.fake.initialized() == before + 1
    del driver
    assert rocm_host.fake.initialized() == before


# ---- values --------------------------------------------------------------------------

def test_metrics_1_4_has_no_xcd_counter_but_keeps_device_counters(rocm_host):
    rocm_host.add_mi300x(metrics_revision=4)
    d = open_driver(rocm_host).device(0)
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


def test_the_table_refreshes_on_the_firmware_cadence(rocm_host):
    gpu = rocm_host.add_mi300x(fw_period_ns=1_000_000)
    rocm_host.set_xcd_busy(gpu, BUSY)
    driver = open_driver(rocm_host)
    read(driver)
    time.sleep(0.02)  # many firmware periods: the next table is new data
    _, v, _ = read(driver)
    np.testing.assert_allclose(v["active"], np.array(BUSY) / 100, atol=0.011)


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

def test_an_unsupported_call_leaves_its_counter_absent(rocm_host):
    gpu = rocm_host.add_mi300x()
    rocm_host.fake.set_unsupported(gpu.metrics_device, "rsmi_dev_busy_percent_get")
    rocm_host.fake.set_unsupported(gpu.metrics_device, "rsmi_dev_memory_usage_get")
    d = open_driver(rocm_host).device(0)
    names = set(counters(d))
    assert "gr_active" not in names and "mem_used" not in names
    assert {"active", "power", "temp"} <= names


def test_an_unsupported_call_falls_back_to_the_table_where_it_has_the_value(rocm_host):
    gpu = rocm_host.add_mi300x()
    rocm_host.fake.set_unsupported(gpu.metrics_device, "rsmi_dev_temp_metric_get")
    rocm_host.fake.set_value(gpu.metrics_device, "temp_c", 64.0)
    _, v, _ = read(open_driver(rocm_host))
    assert v["temp"][0] == pytest.approx(64.0)  # gpu_metrics temperature_hotspot


def test_a_missing_symbol_uses_the_next_source(rocm_library_without_socket_power, tmp_path):
    host = FakeAmdHost(rocm_library_without_socket_power, tmp_path / "kfd")
    gpu = host.add_mi300x()
    host.fake.set_value(gpu.metrics_device, "power_w", 333.0)
    _, v, _ = read(open_driver(host))
    assert v["power"][0] == pytest.approx(333.0)  # rsmi_dev_power_ave_get


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


def test_a_library_older_than_rocm_6_3_shows_a_cpx_gpu_once(rocm_host):
    # One rsmi device for the whole GPU; KFD still has a node per partition.
    gpu = rocm_host.add_mi300x(compute="CPX", enumerate_partitions=False)
    rocm_host.set_xcd_busy(gpu, BUSY)
    driver = open_driver(rocm_host)
    d = driver.device(0)
    assert [p.units for p in d.partitions] == [38] * 8
    c = counters(d)
    assert c["gr_active"].level == "device" and c["mem_used"].level == "device"
    _, v, _ = read(driver)
    np.testing.assert_allclose(v["active"], np.array(BUSY) / 100, atol=1e-6)
