"""What both AMD drivers (rocm_smi, amdsmi) must do alike, each against its fake library and
fake KFD trees (no AMD GPU here): the same topology, ids and counters for the same hardware,
the same gpu_metrics decoding, the same failures. What one library does its own way is in
test_rocm_smi_driver.py and test_amdsmi_driver.py."""

from __future__ import annotations

import numpy as np
import pytest

from fakes.amd_backends import AMDSMI, ROCM_SMI, counters, read
from fakes.amd_fixtures import amd, amd_host, amd_library, amdsmi_library, rocm_library  # noqa: F401
from fakes.amd_host import LAYOUT_V16, LAYOUT_V17, LAYOUT_V18

BUSY = [90.0, 0.0, 0.0, 10.0, 50.0, 60.0, 70.0, 100.0]  # distinct per XCD: a wrong stride shows
#: The counters both serve for an MI300X in SPX with a 1.8 table.
COMMON = {"active", "gr_active", "mem_used", "power", "temp", "sm_clock", "mem_clock", "power_violation",
          "thermal_violation"}


# ---- topology ------------------------------------------------------------------------

def test_mi300x_spx_is_one_whole_device_of_8_xcds_32_ses_304_cus(amd, amd_host):
    amd_host.add_mi300x()
    driver = amd.open(amd_host)
    assert driver.name == amd.name and driver.device_count == 1
    d = driver.device(0)
    assert (d.vendor, d.backend, d.unit_kind, d.layout_source) == ("amd", amd.name, "cu", "vendor")
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
    c = counters(d)
    assert c["active"].level == "xcd" and c["active"].unit == "ratio"
    assert set(c) == COMMON | amd.own_counters
    d.validate()


def test_mi300x_cpx_is_one_gpu_of_8_partitions_read_per_partition(amd, amd_host):
    gpu = amd_host.add_mi300x(compute="CPX", memory="NPS4")
    amd_host.set_xcd_busy(gpu, BUSY)
    for p in range(8):
        amd_host.set_partition_value(gpu, p, "busy_pct", 10.0 * p)
        amd_host.set_partition_value(gpu, p, "vram_used", (p + 1) << 30)
    driver = amd.open(amd_host)
    assert driver.device_count == 1  # the partitions' library devices are one GPU
    d = driver.device(0)
    assert d.counts == [8, 32, 304]
    assert [(p.kind, p.units, p.profile) for p in d.partitions] == [("xcp", 38, "CPX NPS4")] * 8
    assert d.memory_bytes == 192 << 30  # NPS4: the partitions' shares summed
    c = counters(d)
    assert c["gr_active"].level == c["mem_used"].level == "partition" and c["active"].level == "xcd"
    status, v, _ = read(driver)
    assert status == "ok"
    np.testing.assert_allclose(v["active"], np.array(BUSY) / 100, atol=1e-6)
    np.testing.assert_allclose(v["gr_active"], np.arange(8) / 10, atol=1e-6)
    np.testing.assert_allclose(v["mem_used"], [(p + 1) << 30 for p in range(8)], rtol=1e-6)


def test_kernels_that_put_the_partition_in_the_function_bits_group_the_same(amd, amd_host):
    amd_host.add_mi300x(compute="QPX", kernel_partition_bits="function")
    amd_host.add_mi210()
    driver = amd.open(amd_host)
    assert driver.device_count == 2
    assert [p.units for p in driver.device(0).partitions] == [76] * 4
    assert driver.device(0).pci == "0000:11:00.0"
    assert driver.device(1).counts == [1, 8, 104]


def test_mi210_has_one_xcd_of_8_engines_and_no_xcd_counter(amd, amd_host):
    amd_host.add_mi210()
    d = amd.open(amd_host).device(0)
    assert d.model == "AMD Instinct MI210" and d.counts == [1, 8, 104]
    assert "active" not in counters(d)  # its table (1.3) has no per-XCD data
    assert {"gr_active", "power", "temp", "throttle"} <= set(counters(d))


def test_devices_are_filtered_by_index_or_id(amd, amd_host):
    amd_host.add_mi300x()
    second = amd_host.add_mi210()
    driver = amd.open(amd_host, ["1"])
    assert [driver.device(i).model for i in range(driver.device_count)] == ["AMD Instinct MI210"]
    by_id = amd.open(amd_host, [f"amd-{second.unique_id:016x}"])
    assert by_id.device_count == 1 and by_id.device(0).index == 1
    with pytest.raises(ValueError, match="no AMD device 'amd-nope'"):
        amd.open(amd_host, ["amd-nope"])


def test_the_same_hardware_is_described_as_the_rocm_smi_backend_describes_it(amdsmi_library, rocm_library,  # noqa: F811
                                                                             tmp_path):
    for compute in ("SPX", "CPX"):
        amd_smi = AMDSMI.host(amdsmi_library, tmp_path / f"amd-{compute}")
        rocm = ROCM_SMI.host(rocm_library, tmp_path / f"rocm-{compute}")
        amd_smi.add_mi300x(compute=compute, memory="NPS1")
        rocm.add_mi300x(compute=compute, memory="NPS1")
        a = AMDSMI.open(amd_smi).device(0)
        r = ROCM_SMI.open(rocm).device(0)
        assert (a.id, a.model, a.pci, a.numa, a.memory_bytes) == (r.id, r.model, r.pci, r.numa, r.memory_bytes)
        assert (a.levels, a.counts, a.units, a.layout) == (r.levels, r.counts, r.units, r.layout)
        assert [(p.id, p.kind, p.units, list(p.unit_ids), p.profile, p.memory_bytes) for p in a.partitions] == \
            [(p.id, p.kind, p.units, list(p.unit_ids), p.profile, p.memory_bytes) for p in r.partitions]
        ca, cr = counters(a), counters(r)
        assert set(cr) <= set(ca)  # AMD SMI adds dram_active and ECC
        assert {n: (ca[n].level, ca[n].unit) for n in cr} == {n: (c.level, c.unit) for n, c in cr.items()}


# ---- library loading -------------------------------------------------------------------

def test_missing_library_is_one_clear_error(amd, tmp_path):
    with pytest.raises(RuntimeError, match=f"cannot load the {amd.library_title}.*{amd.soname}") as e:
        amd.make_driver(None, 0, library=str(tmp_path / amd.soname))
    assert "\n" not in str(e.value) and f"install {amd.package} or pass library=<path>" in str(e.value)


def test_failed_init_is_one_clear_error(amd, amd_host):
    amd_host.add_mi300x()
    amd_host.fake.set_init_status(amd.init_error)
    with pytest.raises(RuntimeError, match=f"{amd.init_call} failed.*INIT_ERROR"):
        amd.open(amd_host)


# ---- values ----------------------------------------------------------------------------

def test_device_counters_in_base_units(amd, amd_host):
    gpu = amd_host.add_mi300x()
    for key, value in {"power_w": 612.0, "temp_c": 71.0, "sclk_mhz": 2100.0, "mclk_mhz": 1300.0}.items():
        amd_host.set_gpu_value(gpu, key, value)
    amd_host.set_partition_value(gpu, 0, "vram_used", 40 << 30)
    amd_host.set_partition_value(gpu, 0, "busy_pct", 87.0)
    driver = amd.open(amd_host)
    status, v, _ = read(driver)
    assert status == "ok"
    assert v["power"][0] == pytest.approx(612.0)
    assert v["temp"][0] == pytest.approx(71.0)
    assert v["mem_used"][0] == pytest.approx(40 << 30, rel=1e-6)
    assert v["gr_active"][0] == pytest.approx(0.87)
    assert v["sm_clock"][0] == pytest.approx(2.1e9)
    assert v["mem_clock"][0] == pytest.approx(1.3e9)
    c = counters(driver.device(0))
    assert (c["power"].unit, c["temp"].unit, c["sm_clock"].unit, c["mem_used"].unit) == ("W", "C", "Hz", "bytes")


@pytest.mark.parametrize("layout, revision", [(LAYOUT_V16, 6), (LAYOUT_V17, 6), (LAYOUT_V17, 7),
                                              (LAYOUT_V18, 6), (LAYOUT_V18, 7), (LAYOUT_V18, 8)])
def test_xcd_activity_is_read_from_every_library_layout(amd, amd_library, tmp_path, layout, revision):
    host = amd.host(amd_library, tmp_path / "kfd", layout=layout)
    gpu = host.add_mi300x(metrics_revision=revision)
    host.set_xcd_busy(gpu, BUSY)
    status, v, _ = read(amd.open(host))
    assert status == "ok"
    np.testing.assert_allclose(v["active"], np.array(BUSY) / 100, atol=1e-6)


def test_xcd_activity_averages_the_firmware_accumulators_between_tables(amd, amd_host):
    gpu = amd_host.add_mi300x()
    driver = amd.open(amd_host)
    read(driver)  # first table: baseline
    amd_host.set_xcd_busy(gpu, [100.0] * 8)
    amd_host.tick(gpu, 5)
    amd_host.set_xcd_busy(gpu, [0.0] * 4 + [100.0] * 4)
    amd_host.tick(gpu, 5)
    status, v, _ = read(driver)
    assert status == "ok"
    # Half the ticks busy on XCDs 0-3, all busy on 4-7; gfx_busy_inst would say 0 and 1.
    np.testing.assert_allclose(v["active"], [0.5] * 4 + [1.0] * 4, atol=1e-6)


def test_a_stale_table_is_not_republished(amd, amd_host):
    gpu = amd_host.add_mi300x()
    amd_host.set_xcd_busy(gpu, BUSY)
    driver = amd.open(amd_host)
    _, first, _ = read(driver)
    assert np.isfinite(first["active"]).all()
    status, again, _ = read(driver)  # firmware_timestamp unchanged
    assert status == "ok"
    # What the table feeds goes absent; what the driver reads through its own calls stays.
    assert {name for name, values in again.items() if np.isnan(values).all()} == amd.table_fed
    assert all(np.isfinite(values).all() for name, values in again.items() if name not in amd.table_fed)
    amd_host.tick(gpu)
    _, fresh, _ = read(driver)
    np.testing.assert_allclose(fresh["active"], np.array(BUSY) / 100, atol=1e-6)


def test_violation_residency_ratios(amd, amd_host):
    gpu = amd_host.add_mi300x()
    driver = amd.open(amd_host)
    read(driver)
    amd_host.set_gpu_value(gpu, "ppt_violation", 0.25)
    amd_host.set_gpu_value(gpu, "thermal_violation", 1.0)
    amd_host.tick(gpu, 8)
    _, v, _ = read(driver)
    assert v["power_violation"][0] == pytest.approx(0.25)
    assert v["thermal_violation"][0] == pytest.approx(1.0)


# ---- failures --------------------------------------------------------------------------

def test_a_lost_device_reads_lost_and_the_others_go_on(amd, amd_host):
    first = amd_host.add_mi300x()
    amd_host.add_mi300x()
    driver = amd.open(amd_host)
    amd_host.set_lost(first)
    status, sample, detail = read(driver, 0)
    assert status == "lost"
    assert f"{amd.status_prefix}FILE_ERROR" in detail
    assert all(np.isnan(values).all() for values in sample.values())
    assert read(driver, 1)[0] == "ok"
    amd_host.set_back(first)
    assert read(driver, 0)[0] == "ok"


def test_a_vanished_device_answering_not_supported_reads_lost(amd, amd_host):
    # A device that fell off the bus takes its sysfs files with it; both libraries map ENOENT
    # to NOT_SUPPORTED on every call.
    gpu = amd_host.add_mi300x()
    driver = amd.open(amd_host)
    amd_host.set_lost(gpu, amd.not_supported)
    assert read(driver)[0] == "lost"


def test_a_busy_library_is_a_read_error_not_a_lost_device(amd, amd_host):
    gpu = amd_host.add_mi300x()
    driver = amd.open(amd_host)
    amd_host.set_lost(gpu, amd.busy)
    status, _, detail = read(driver)
    assert status == "error" and "BUSY" in detail


def test_missing_kfd_topology_is_one_clear_error(amd, amd_host, tmp_path):
    amd_host.add_mi300x()
    with pytest.raises(RuntimeError, match=rf"{amd.name}: no KFD topology node for device 0 \(PCI 0000:11:00.0\)"):
        amd.make_driver(None, 0, library=str(amd_host.library), kfd_root=str(tmp_path / "nowhere"))


def test_a_bad_kfd_node_names_its_file(amd, amd_host):
    amd_host.add_mi300x()
    props = amd_host.kfd_root / "topology" / "nodes" / "1" / "properties"
    props.write_text(props.read_text().replace("simd_per_cu 4", "simd_per_cu 3"))
    with pytest.raises(RuntimeError, match=f"{amd.name}: KFD node .*simd_count=1216 is not a positive multiple "
                                           "of simd_per_cu=3"):
        amd.open(amd_host)


def test_bad_options_are_named(amd, amd_host):
    amd_host.add_mi300x()
    with pytest.raises(TypeError, match=f"{amd.name}: unknown option.*rate"):
        amd.open(amd_host, rate=5)
    with pytest.raises(ValueError, match="min_read_interval_ms"):
        amd.open(amd_host, min_read_interval_ms=-1)
    assert amd.open(amd_host, min_read_interval_ms=2.5).min_read_interval_ns(0) == 2_500_000
