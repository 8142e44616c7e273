"""The amdsmi driver against the fake libamd_smi and fake KFD trees (no AMD GPU here): what AMD
SMI does its own way (partition order from KFD info, one init per process, ABI versions, its
own counters, falling back from the table to a call, the slow path). What both AMD drivers do
alike is in test_amd_drivers.py."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from cuagent import _core
from cuagent.backends.amdsmi import make_driver
from fakes.amd_backends import AMDSMI, counters, read
from test_driver_library import places_named
from fakes.amd_fixtures import amdsmi_host, amdsmi_library, amdsmi_library_without_activity  # noqa: F401
from fakes.amdsmi import FakeAmdSmiHost, build_fake_amdsmi

BUSY = [90.0, 0.0, 0.0, 10.0, 50.0, 60.0, 70.0, 100.0]  # distinct per XCD: a wrong stride shows
open_driver = AMDSMI.open


# ---- topology ------------------------------------------------------------------------

def test_partitions_are_ordered_by_their_kfd_partition_id_not_enumeration(amdsmi_host):
    gpu = amdsmi_host.add_mi300x(compute="QPX", reversed_order=True)
    for p, proc in enumerate(gpu.processors):
        amdsmi_host.fake.set_value(proc, "busy_pct", 20.0 * p)
    status, v, _ = read(open_driver(amdsmi_host))
    assert status == "ok"
    np.testing.assert_allclose(v["gr_active"], [0.0, 0.2, 0.4, 0.6], atol=1e-6)


# ---- library loading -------------------------------------------------------------------

def test_the_default_search_names_every_place_tried():
    try:
        _core.make_amdsmi_driver(library="")
    except RuntimeError as e:
        text = str(e)
    else:  # pragma: no cover - a machine with AMD SMI and a GPU
        pytest.skip("an AMD SMI library is installed and initialised here")
    if "cannot load" not in text:  # pragma: no cover
        pytest.skip(f"an AMD SMI library is installed here (the search stopped at it): {text}")
    names = ["libamd_smi.so", "libamd_smi.so.27", "libamd_smi.so.26", "libamd_smi.so.25", "libamd_smi.so.24",
             "/opt/rocm/lib/libamd_smi.so", "/opt/rocm/lib/libamd_smi.so.27", "/opt/rocm/lib/libamd_smi.so.26"]
    places = places_named(text)
    positions = [places.index(name) for name in names]
    assert positions == sorted(positions) and text.count("\n") == 0


def test_a_library_without_amdsmi_init_is_not_an_amd_smi_library(tmp_path):
    library = build_fake_amdsmi(tmp_path / "noinit", omit=["INIT"])
    with pytest.raises(RuntimeError, match=r"does not export amdsmi_init; it is not an AMD SMI library"):
        make_driver(None, 0, library=str(library), kfd_root=str(tmp_path))


def test_one_init_for_every_user_and_shut_down_after_the_last(amdsmi_host):
    # AMD SMI's init is not reference counted: the driver and the slow path share it.
    gc.collect()  # no driver of an earlier test still holds the library
    amdsmi_host.add_mi300x()
    fake = amdsmi_host.fake
    driver = open_driver(amdsmi_host)
    queries = _core.make_amdsmi_slow_queries(library=str(amdsmi_host.library), kfd_root=str(amdsmi_host.kfd_root))
    assert (fake.init_calls(), fake.initialized()) == (1, 1)
    del queries
    assert fake.shutdown_calls() == 0
    assert read(driver)[0] == "ok"  # still initialised for the driver
    del driver
    assert (fake.shutdown_calls(), fake.initialized()) == (1, 0)


# ---- values --------------------------------------------------------------------------

def test_memory_activity_and_ecc_counts_in_base_units(amdsmi_host):
    # AMD SMI's own counters; the common ones are checked in test_amd_drivers.py.
    gpu = amdsmi_host.add_mi300x()
    amdsmi_host.fake.set_gpu_value(gpu.index, "ecc_corrected", 12)
    amdsmi_host.fake.set_gpu_value(gpu.index, "ecc_uncorrected", 1)
    amdsmi_host.fake.set_value(gpu.processors[0], "umc_pct", 41.0)
    driver = open_driver(amdsmi_host)
    status, v, _ = read(driver)
    assert status == "ok"
    assert v["dram_active"][0] == pytest.approx(0.41)
    assert (v["ecc_corrected"][0], v["ecc_uncorrected"][0]) == (12.0, 1.0)
    c = counters(driver.device(0))
    assert (c["dram_active"].unit, c["ecc_uncorrected"].unit) == ("ratio", "count")


def test_throttle_status_of_an_old_table_is_folded(amdsmi_host):
    gpu = amdsmi_host.add_mi210()
    amdsmi_host.fake.set_gpu_value(gpu.index, "throttle_mask", float((1 << 33) | 1))
    _, v, _ = read(open_driver(amdsmi_host))
    assert v["throttle"][0] == 5.0  # power (1) and temperature (4)


def test_ecc_counts_are_reread_once_per_interval_and_carried_between(amdsmi_host):
    gpu = amdsmi_host.add_mi300x()
    fake = amdsmi_host.fake
    fake.set_gpu_value(gpu.index, "ecc_uncorrected", 2)
    driver = open_driver(amdsmi_host, ecc_interval_s=1.0)
    before = fake.calls_of("amdsmi_get_gpu_total_ecc_count")
    for k in range(10):  # 10 reads 10 ms apart: one ECC read
        assert read(driver, t_ns=k * 10_000_000)[1]["ecc_uncorrected"][0] == 2.0
    assert fake.calls_of("amdsmi_get_gpu_total_ecc_count") - before == 1
    fake.set_gpu_value(gpu.index, "ecc_uncorrected", 3)
    assert read(driver, t_ns=900_000_000)[1]["ecc_uncorrected"][0] == 2.0  # the carried count
    assert read(driver, t_ns=1_000_000_000)[1]["ecc_uncorrected"][0] == 3.0  # re-read
    assert fake.calls_of("amdsmi_get_gpu_total_ecc_count") - before == 2


# ---- failures ------------------------------------------------------------------------

def test_an_unsupported_call_leaves_its_counter_absent_or_takes_the_table(amdsmi_host):
    gpu = amdsmi_host.add_mi300x()
    proc = gpu.processors[0]
    amdsmi_host.fake.set_unsupported(proc, "amdsmi_get_gpu_memory_usage")
    amdsmi_host.fake.set_unsupported(proc, "amdsmi_get_gpu_total_ecc_count")
    amdsmi_host.fake.set_unsupported(proc, "amdsmi_get_gpu_activity")
    amdsmi_host.set_xcd_busy(gpu, BUSY)
    driver = open_driver(amdsmi_host)
    c = counters(driver.device(0))
    assert "mem_used" not in c and "ecc_uncorrected" not in c and "ecc_corrected" not in c
    assert c["gr_active"].level == "device"  # the table's average_gfx_activity
    _, v, _ = read(driver)
    assert v["gr_active"][0] == pytest.approx(np.mean(BUSY) / 100, abs=0.006)
    assert v["dram_active"][0] == pytest.approx(0.03)  # average_umc_activity


def test_a_missing_symbol_uses_the_next_source(amdsmi_library_without_activity, tmp_path):
    host = FakeAmdSmiHost(amdsmi_library_without_activity, tmp_path / "kfd")
    gpu = host.add_mi300x(compute="CPX")
    host.set_xcd_busy(gpu, BUSY)
    driver = open_driver(host)
    c = counters(driver.device(0))
    assert c["gr_active"].level == "device" and c["mem_used"].level == "partition"
    _, v, _ = read(driver)
    assert v["gr_active"][0] == pytest.approx(np.mean(BUSY) / 100, abs=0.006)


def test_the_table_missing_a_field_falls_back_to_its_call(amdsmi_host):
    gpu = amdsmi_host.add_mi300x(metrics_revision=0)  # no gpu_metrics at all
    amdsmi_host.fake.set_gpu_value(gpu.index, "temp_c", 64.0)
    amdsmi_host.fake.set_gpu_value(gpu.index, "power_w", 333.0)
    driver = open_driver(amdsmi_host)
    c = counters(driver.device(0))
    assert "active" not in c and "power_violation" not in c
    _, v, _ = read(driver)
    assert v["temp"][0] == pytest.approx(64.0)    # amdsmi_get_temp_metric(HOTSPOT), in °C
    assert v["power"][0] == pytest.approx(333.0)  # amdsmi_get_power_info
    assert v["sm_clock"][0] == pytest.approx(132e6)  # amdsmi_get_clock_info


def test_a_library_of_another_abi_passes_no_struct(amdsmi_host, caplog):
    # AMD bumps the major version for every ABI break: 27's structs are not ours to read.
    gpu = amdsmi_host.add_mi300x(compute="CPX")
    amdsmi_host.fake.set_version(27, 1, 0)
    amdsmi_host.set_xcd_busy(gpu, BUSY)
    with caplog.at_level("INFO", logger="cuagent.backends.amdsmi"):
        driver = open_driver(amdsmi_host)
    assert "AMD SMI 27.1.0 is not major version 26" in caplog.text
    for fn in ("amdsmi_get_gpu_asic_info", "amdsmi_get_gpu_board_info", "amdsmi_get_gpu_kfd_info",
               "amdsmi_get_gpu_activity", "amdsmi_get_power_info", "amdsmi_get_clock_info",
               "amdsmi_get_gpu_total_ecc_count"):
        assert amdsmi_host.fake.calls_of(fn) == 0, fn
    d = driver.device(0)
    assert d.model == "AMD GPU (device 0x74a1)"  # from KFD, not amdsmi_asic_info_t
    c = counters(d)
    assert "ecc_uncorrected" not in c and c["gr_active"].level == "device"
    status, v, _ = read(driver)  # the table and the scalar calls still serve
    assert status == "ok"
    np.testing.assert_allclose(v["active"], np.array(BUSY) / 100, atol=1e-6)
    assert np.isfinite(v["mem_used"]).all() and v["power"][0] == pytest.approx(140.0)
    queries = _core.make_amdsmi_slow_queries(library=str(amdsmi_host.library), kfd_root=str(amdsmi_host.kfd_root))
    with pytest.raises(RuntimeError, match="amdsmi_proc_info_t of AMD SMI 27.1.0 is unverified"):
        queries.processes(0)


def test_a_bad_ecc_interval_is_named(amdsmi_host):
    amdsmi_host.add_mi300x()
    with pytest.raises(ValueError, match="ecc_interval_s"):
        open_driver(amdsmi_host, ecc_interval_s=float("nan"))


def test_the_kfd_root_and_library_come_from_the_environment(amdsmi_host, monkeypatch):
    amdsmi_host.add_mi300x()
    monkeypatch.setenv("CUAGENT_AMDSMI_LIBRARY", str(amdsmi_host.library))
    monkeypatch.setenv("CUAGENT_KFD_ROOT", str(amdsmi_host.kfd_root))
    assert make_driver(None, 0).device(0).counts == [8, 32, 304]


# ---- slow path -------------------------------------------------------------------------

def test_processes_are_listed_per_device_summed_over_its_partitions(amdsmi_host):
    gpu = amdsmi_host.add_mi300x(compute="CPX")
    other = amdsmi_host.add_mi300x()
    fake = amdsmi_host.fake
    fake.add_process(gpu.processors[0], 101, "train", 1 << 30, gfx_ns=5_000)
    fake.add_process(gpu.processors[3], 101, "train", 2 << 30, gfx_ns=7_000)
    fake.add_process(gpu.processors[5], 202, "infer", 3 << 30, gfx_ns=11)
    queries = _core.make_amdsmi_slow_queries(library=str(amdsmi_host.library), kfd_root=str(amdsmi_host.kfd_root))
    assert queries.devices == [0, 1] and queries.partitions(0) == 8 and queries.partitions(1) == 1
    listed = sorted(queries.processes(0), key=lambda p: p["pid"])
    assert listed == [{"pid": 101, "name": "train", "vram_bytes": 3 << 30, "gfx_ns": 12_000},
                      {"pid": 202, "name": "infer", "vram_bytes": 3 << 30, "gfx_ns": 11}]
    assert queries.processes(1) == []  # listing works, nothing runs: empty, not absent
    assert queries.partition_modes(0) == ("CPX", "NPS1")
    amdsmi_host.set_lost(other)
    with pytest.raises(RuntimeError, match="amdsmi_get_gpu_process_list: AMDSMI_STATUS_FILE_ERROR"):
        queries.processes(1)


def test_a_process_list_longer_than_the_buffer_is_fetched_whole(amdsmi_host):
    gpu = amdsmi_host.add_mi300x()
    queries = _core.make_amdsmi_slow_queries(library=str(amdsmi_host.library), kfd_root=str(amdsmi_host.kfd_root))
    for pid in range(1, 17):  # more than the fake's first answer... and than a list of one
        amdsmi_host.fake.add_process(gpu.processors[0], pid, f"p{pid}", pid << 20)
    assert [p["pid"] for p in queries.processes(0)] == list(range(1, 17))


def test_the_slow_path_gives_sm_as_a_share_of_the_device_and_sees_mode_changes(amdsmi_host):
    from cuagent.backends.amdsmi import AmdSmiSlowPath

    gpu = amdsmi_host.add_mi300x(compute="CPX")
    fake = amdsmi_host.fake
    pid = 4_194_400  # above any pid_max: no such process, so no name from /proc either
    fake.add_process(gpu.processors[2], pid, "", 5 << 30, gfx_ns=0)
    ticks = iter([10.0, 12.0])  # the slow path's clock at its two lists: 2 s apart
    slow = AmdSmiSlowPath(str(amdsmi_host.library), str(amdsmi_host.kfd_root), process_interval_s=1.0,
                          topology_poll_s=5.0, clock=lambda: next(ticks))
    first = slow.processes(0, now=100.0)
    assert first == [{"pid": pid, "mem": 5 << 30, "name": ""}]  # first sight: no sm yet
    assert slow.processes(0, now=100.5) is first  # within the interval: the same list
    fake.add_process(gpu.processors[2], pid, "", 5 << 30, gfx_ns=1_000_000_000)  # 1 s of GFX time
    (entry,) = slow.processes(0, now=102.0)  # over 2 s, on 1 of 8 partitions
    assert entry["sm"] == pytest.approx(1.0 / 2 / 8)
    assert slow.topology_changed(now=100.0) is False
    amdsmi_host.set_partition_modes(gpu, "CPX", "NPS4")
    assert slow.topology_changed(now=101.0) is False  # not due yet
    assert slow.topology_changed(now=106.0) is True
    assert slow.topology_changed(now=112.0) is False  # once per change
    slow.close()
