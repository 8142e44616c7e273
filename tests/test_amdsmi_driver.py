"""The amdsmi driver against the fake libamd_smi and fake KFD trees (no AMD GPU here)."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from cuagent import _core
from cuagent.backends.amdsmi import make_driver
from fakes.amdsmi import (
    AMDSMI_STATUS_BUSY,
    AMDSMI_STATUS_INIT_ERROR,
    AMDSMI_STATUS_NOT_SUPPORTED,
    FakeAmdSmiHost,
    build_fake_amdsmi,
)
from fakes.amdsmi_fixtures import amdsmi_host, amdsmi_library, amdsmi_library_without_activity  # noqa: F401
from fakes.rocm import LAYOUT_V16, LAYOUT_V17, LAYOUT_V18, FakeAmdHost
from fakes.rocm_fixtures import rocm_library  # noqa: F401

BUSY = [90.0, 0.0, 0.0, 10.0, 50.0, 60.0, 70.0, 100.0]  # distinct per XCD: a wrong stride shows


def open_driver(host: FakeAmdSmiHost, **options):
    return make_driver(None, 0, library=str(host.library), kfd_root=str(host.kfd_root), **options)


def counters(desc) -> dict:
    return {c.name: c for c in desc.counters}


def read(driver, index: int = 0, t_ns: int = 0) -> tuple[str, dict, str]:
    """One read: (status, {counter: float32 values}, detail)."""
    return _core.driver_read(driver, index, t_ns)


# ---- topology ------------------------------------------------------------------------

def test_mi300x_spx_is_one_whole_device_of_8_xcds_32_ses_304_cus(amdsmi_host):
    amdsmi_host.add_mi300x()
    driver = open_driver(amdsmi_host)
    assert driver.name == "amdsmi" and driver.device_count == 1
    d = driver.device(0)
    assert (d.vendor, d.backend, d.unit_kind, d.layout_source) == ("amd", "amdsmi", "cu", "vendor")
    assert d.model == "AMD Instinct MI300X"  # amdsmi_get_gpu_asic_info market_name
    assert d.id == "amd-7e3d2a1f00000000"
    assert d.pci == "0000:11:00.0" and d.numa == 0
    assert d.levels == ["xcd", "se", "cu"] and d.counts == [8, 32, 304] and d.units == 304
    xcd = np.asarray(d.layout[0])
    assert np.bincount(xcd).tolist() == [38] * 8
    assert [(p.id, p.kind, p.units, p.profile) for p in d.partitions] == [("0", "whole", 304, "SPX NPS1")]
    assert d.memory_bytes == 192 << 30
    c = counters(d)
    assert c["active"].level == "xcd" and c["active"].unit == "ratio"
    assert {"gr_active", "dram_active", "mem_used", "power", "temp", "sm_clock", "mem_clock", "power_violation",
            "thermal_violation", "ecc_corrected", "ecc_uncorrected"} <= set(c)
    d.validate()


def test_mi300x_cpx_is_one_gpu_of_8_partitions_read_per_processor(amdsmi_host):
    gpu = amdsmi_host.add_mi300x(compute="CPX", memory="NPS4")
    amdsmi_host.set_xcd_busy(gpu, BUSY)
    for p, proc in enumerate(gpu.processors):
        amdsmi_host.fake.set_value(proc, "busy_pct", 10.0 * p)
        amdsmi_host.fake.set_value(proc, "vram_used", (p + 1) << 30)
    driver = open_driver(amdsmi_host)
    assert driver.device_count == 1  # the socket's 8 processors are one GPU
    d = driver.device(0)
    assert d.counts == [8, 32, 304]
    assert [(p.kind, p.units, p.profile) for p in d.partitions] == [("xcp", 38, "CPX NPS4")] * 8
    assert d.memory_bytes == 192 << 30  # NPS4: the partitions' shares summed
    c = counters(d)
    assert c["gr_active"].level == c["dram_active"].level == c["mem_used"].level == "partition"
    status, v, _ = read(driver)
    assert status == "ok"
    np.testing.assert_allclose(v["active"], np.array(BUSY) / 100, atol=1e-6)
    np.testing.assert_allclose(v["gr_active"], np.arange(8) / 10, atol=1e-6)
    np.testing.assert_allclose(v["mem_used"], [(p + 1) << 30 for p in range(8)], rtol=1e-6)


def test_partitions_are_ordered_by_their_kfd_partition_id_not_enumeration(amdsmi_host):
    gpu = amdsmi_host.add_mi300x(compute="QPX", reversed_order=True)
    for p, proc in enumerate(gpu.processors):
        amdsmi_host.fake.set_value(proc, "busy_pct", 20.0 * p)
    status, v, _ = read(open_driver(amdsmi_host))
    assert status == "ok"
    np.testing.assert_allclose(v["gr_active"], [0.0, 0.2, 0.4, 0.6], atol=1e-6)


def test_kernels_that_put_the_partition_in_the_function_bits_group_the_same(amdsmi_host):
    amdsmi_host.add_mi300x(compute="QPX", kernel_partition_bits="function")
    amdsmi_host.add_mi210()
    driver = open_driver(amdsmi_host)
    assert driver.device_count == 2
    assert [p.units for p in driver.device(0).partitions] == [76] * 4
    assert driver.device(0).pci == "0000:11:00.0"
    assert driver.device(1).counts == [1, 8, 104]


def test_mi210_has_one_xcd_of_8_engines_and_no_xcd_counter(amdsmi_host):
    amdsmi_host.add_mi210()
    d = open_driver(amdsmi_host).device(0)
    assert d.model == "AMD Instinct MI210" and d.counts == [1, 8, 104]
    assert "active" not in counters(d)  # its table (1.3) has no per-XCD data
    assert {"gr_active", "power", "temp", "throttle"} <= set(counters(d))


def test_the_same_hardware_is_described_as_the_rocm_smi_backend_describes_it(amdsmi_host, rocm_library, tmp_path):
    from cuagent.backends.rocm_smi import make_driver as make_rocm_driver

    for compute in ("SPX", "CPX"):
        amd = FakeAmdSmiHost(amdsmi_host.library, tmp_path / f"amd-{compute}")
        rocm = FakeAmdHost(rocm_library, tmp_path / f"rocm-{compute}")
        amd.add_mi300x(compute=compute, memory="NPS1")
        rocm.add_mi300x(compute=compute, memory="NPS1")
        a = open_driver(amd).device(0)
        r = make_rocm_driver(None, 0, library=str(rocm.library), kfd_root=str(rocm.kfd_root)).device(0)
        assert (a.id, a.model, a.pci, a.numa, a.memory_bytes) == (r.id, r.model, r.pci, r.numa, r.memory_bytes)
        assert (a.levels, a.counts, a.units, a.layout) == (r.levels, r.counts, r.units, r.layout)
        assert [(p.id, p.kind, p.units, list(p.unit_ids), p.profile, p.memory_bytes) for p in a.partitions] == \
            [(p.id, p.kind, p.units, list(p.unit_ids), p.profile, p.memory_bytes) for p in r.partitions]
        ca, cr = counters(a), counters(r)
        assert set(cr) <= set(ca)  # AMD SMI adds dram_active and ECC
        assert {n: (ca[n].level, ca[n].unit) for n in cr} == {n: (c.level, c.unit) for n, c in cr.items()}


def test_devices_are_filtered_by_index_or_id(amdsmi_host):
    amdsmi_host.add_mi300x()
    second = amdsmi_host.add_mi210()
    driver = make_driver(["1"], 0, library=str(amdsmi_host.library), kfd_root=str(amdsmi_host.kfd_root))
    assert [driver.device(i).model for i in range(driver.device_count)] == ["AMD Instinct MI210"]
    by_id = make_driver([f"amd-{second.unique_id:016x}"], 0, library=str(amdsmi_host.library),
                        kfd_root=str(amdsmi_host.kfd_root))
    assert by_id.device_count == 1 and by_id.device(0).index == 1
    with pytest.raises(ValueError, match="no AMD device 'amd-nope'"):
        make_driver(["amd-nope"], 0, library=str(amdsmi_host.library), kfd_root=str(amdsmi_host.kfd_root))


# ---- library loading -------------------------------------------------------------------

def test_missing_library_is_one_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="cannot load the AMD SMI library.*libamd_smi.so") as e:
        make_driver(None, 0, library=str(tmp_path / "libamd_smi.so"))
    assert "\n" not in str(e.value) and "install amd-smi-lib or pass library=<path>" in str(e.value)


def test_the_default_search_names_every_place_tried():
    try:
        _core.make_amdsmi_driver(library="")
    except RuntimeError as e:
        text = str(e)
    else:  # pragma: no cover - a machine with AMD SMI and a GPU
        pytest.skip("an AMD SMI library is installed and initialised here")
    if "tried" not in text:  # pragma: no cover
        pytest.skip(f"an AMD SMI library is installed here (the search stopped at it): {text}")
    names = ["libamd_smi.so", "libamd_smi.so.27", "libamd_smi.so.26", "libamd_smi.so.25", "libamd_smi.so.24",
             "/opt/rocm/lib/libamd_smi.so", "/opt/rocm/lib/libamd_smi.so.27", "/opt/rocm/lib/libamd_smi.so.26"]
    positions = [text.index(f"{name} (") for name in names]
    assert positions == sorted(positions) and text.count("\n") == 0


def test_a_library_without_amdsmi_init_is_not_an_amd_smi_library(tmp_path):
    library = build_fake_amdsmi(tmp_path / "noinit", omit=["INIT"])
    with pytest.raises(RuntimeError, match=r"does not export amdsmi_init; it is not an AMD SMI library"):
        make_driver(None, 0, library=str(library), kfd_root=str(tmp_path))


def test_failed_init_is_one_clear_error(amdsmi_host):
    amdsmi_host.add_mi300x()
    amdsmi_host.fake.set_init_status(AMDSMI_STATUS_INIT_ERROR)
    with pytest.raises(RuntimeError, match=r"amdsmi_init\(AMDSMI_INIT_AMD_GPUS\) failed.*INIT_ERROR"):
        open_driver(amdsmi_host)


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

def test_device_counters_in_base_units(amdsmi_host):
    gpu = amdsmi_host.add_mi300x()
    for key, value in {"power_w": 612.0, "temp_c": 71.0, "sclk_mhz": 2100.0, "mclk_mhz": 1300.0,
                       "ecc_corrected": 12, "ecc_uncorrected": 1}.items():
        amdsmi_host.fake.set_gpu_value(gpu.index, key, value)
    proc = gpu.processors[0]
    amdsmi_host.fake.set_value(proc, "vram_used", 40 << 30)
    amdsmi_host.fake.set_value(proc, "busy_pct", 87.0)
    amdsmi_host.fake.set_value(proc, "umc_pct", 41.0)
    driver = open_driver(amdsmi_host)
    status, v, _ = read(driver)
    assert status == "ok"
    assert v["power"][0] == pytest.approx(612.0)
    assert v["temp"][0] == pytest.approx(71.0)
    assert v["mem_used"][0] == pytest.approx(40 << 30, rel=1e-6)
    assert v["gr_active"][0] == pytest.approx(0.87)
    assert v["dram_active"][0] == pytest.approx(0.41)
    assert v["sm_clock"][0] == pytest.approx(2.1e9)
    assert v["mem_clock"][0] == pytest.approx(1.3e9)
    assert (v["ecc_corrected"][0], v["ecc_uncorrected"][0]) == (12.0, 1.0)
    c = counters(driver.device(0))
    assert (c["power"].unit, c["temp"].unit, c["sm_clock"].unit, c["ecc_uncorrected"].unit) == ("W", "C", "Hz", "count")


@pytest.mark.parametrize("layout, revision", [(LAYOUT_V16, 6), (LAYOUT_V17, 7), (LAYOUT_V18, 6), (LAYOUT_V18, 8)])
def test_xcd_activity_is_read_from_every_library_layout(amdsmi_library, tmp_path, layout, revision):
    host = FakeAmdSmiHost(amdsmi_library, tmp_path / "kfd", layout=layout)
    gpu = host.add_mi300x(metrics_revision=revision)
    host.set_xcd_busy(gpu, BUSY)
    status, v, _ = read(open_driver(host))
    assert status == "ok"
    np.testing.assert_allclose(v["active"], np.array(BUSY) / 100, atol=1e-6)


def test_xcd_activity_averages_the_firmware_accumulators_between_tables(amdsmi_host):
    gpu = amdsmi_host.add_mi300x()
    driver = open_driver(amdsmi_host)
    read(driver)  # first table: baseline
    amdsmi_host.set_xcd_busy(gpu, [100.0] * 8)
    amdsmi_host.tick(gpu, 5)
    amdsmi_host.set_xcd_busy(gpu, [0.0] * 4 + [100.0] * 4)
    amdsmi_host.tick(gpu, 5)
    status, v, _ = read(driver)
    assert status == "ok"
    # Half the ticks busy on XCDs 0-3, all busy on 4-7; gfx_busy_inst would say 0 and 1.
    np.testing.assert_allclose(v["active"], [0.5] * 4 + [1.0] * 4, atol=1e-6)


def test_a_stale_table_is_not_republished(amdsmi_host):
    gpu = amdsmi_host.add_mi300x()
    amdsmi_host.set_xcd_busy(gpu, BUSY)
    driver = open_driver(amdsmi_host)
    _, first, _ = read(driver)
    assert np.isfinite(first["active"]).all()
    status, again, _ = read(driver)  # firmware_timestamp unchanged
    assert status == "ok"
    assert np.isnan(again["active"]).all() and np.isnan(again["power"]).all()  # power comes from the table
    assert np.isfinite(again["gr_active"]).all() and np.isfinite(again["mem_used"]).all()  # their own calls
    amdsmi_host.tick(gpu)
    _, fresh, _ = read(driver)
    np.testing.assert_allclose(fresh["active"], np.array(BUSY) / 100, atol=1e-6)


def test_violation_residency_ratios(amdsmi_host):
    gpu = amdsmi_host.add_mi300x()
    driver = open_driver(amdsmi_host)
    read(driver)
    amdsmi_host.fake.set_gpu_value(gpu.index, "ppt_violation", 0.25)
    amdsmi_host.fake.set_gpu_value(gpu.index, "thermal_violation", 1.0)
    amdsmi_host.tick(gpu, 8)
    _, v, _ = read(driver)
    assert v["power_violation"][0] == pytest.approx(0.25)
    assert v["thermal_violation"][0] == pytest.approx(1.0)


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


def test_a_lost_device_reads_lost_and_the_others_go_on(amdsmi_host):
    first = amdsmi_host.add_mi300x()
    amdsmi_host.add_mi300x()
    driver = open_driver(amdsmi_host)
    amdsmi_host.set_lost(first)
    status, sample, detail = read(driver, 0)
    assert status == "lost"
    assert "AMDSMI_STATUS_FILE_ERROR" in detail
    assert all(np.isnan(values).all() for values in sample.values())
    assert read(driver, 1)[0] == "ok"
    amdsmi_host.set_back(first)
    assert read(driver, 0)[0] == "ok"


def test_a_vanished_device_answering_not_supported_reads_lost(amdsmi_host):
    gpu = amdsmi_host.add_mi300x()
    driver = open_driver(amdsmi_host)
    amdsmi_host.set_lost(gpu, AMDSMI_STATUS_NOT_SUPPORTED)
    assert read(driver)[0] == "lost"


def test_a_busy_library_is_a_read_error_not_a_lost_device(amdsmi_host):
    gpu = amdsmi_host.add_mi300x()
    driver = open_driver(amdsmi_host)
    amdsmi_host.set_lost(gpu, AMDSMI_STATUS_BUSY)
    status, _, detail = read(driver)
    assert status == "error" and "BUSY" in detail


def test_missing_kfd_topology_is_one_clear_error(amdsmi_host, tmp_path):
    amdsmi_host.add_mi300x()
    with pytest.raises(RuntimeError, match=r"amdsmi: no KFD topology node for device 0 \(PCI 0000:11:00.0\)"):
        make_driver(None, 0, library=str(amdsmi_host.library), kfd_root=str(tmp_path / "nowhere"))


def test_a_bad_kfd_node_names_its_file(amdsmi_host):
    amdsmi_host.add_mi300x()
    props = amdsmi_host.kfd_root / "topology" / "nodes" / "1" / "properties"
    props.write_text(props.read_text().replace("simd_per_cu 4", "simd_per_cu 3"))
    with pytest.raises(RuntimeError, match="amdsmi: KFD node .*simd_count=1216 is not a positive multiple"):
        open_driver(amdsmi_host)


def test_bad_options_are_named(amdsmi_host):
    amdsmi_host.add_mi300x()
    with pytest.raises(TypeError, match="unknown option.*rate"):
        open_driver(amdsmi_host, rate=5)
    with pytest.raises(ValueError, match="min_read_interval_ms"):
        open_driver(amdsmi_host, min_read_interval_ms=-1)
    with pytest.raises(ValueError, match="ecc_interval_s"):
        open_driver(amdsmi_host, ecc_interval_s=float("nan"))
    assert open_driver(amdsmi_host, min_read_interval_ms=2.5).min_read_interval_ns(0) == 2_500_000


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
