"""`cuagent run --driver rocm_smi` on the *real* ROCm SMI library (Debian's librocm-smi64-1,
5.2.3), which finds a synthetic AMD Instinct MI210 in sysfs: a tree laid out as the amdgpu
driver lays it out (fakes.amd_sysfs), bind-mounted over /sys/class, /sys/devices and
/sys/module in a private mount namespace (root, `unshare -m`; CI runs as root and
scripts/ci-system-deps installs the library). What the agent publishes must equal what the
files say. This checks our dlopen, symbol set, struct layouts and gpu_metrics decoding
against the vendor's code rather than our fake of it.

What 5.2.3 can and cannot exercise: it parses gpu_metrics format 1 content revisions 0-3
(1.0 translated, 1.1 copied, 1.2 and 1.3 copied with firmware_timestamp x 10 as
system_clock_counter) into a 96-byte public table, and aborts the process (an assertion)
on 1.4 and later. So MI300 tables, per-XCD activity and partitions (metrics >= 1.6,
ROCm 6.x) are beyond it and stay covered by the fake library only.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import pytest

from fakes.amd_sysfs import AmdSysfs, SysfsGpu, namespace_unavailable
from fakes.amd_sysfs_agent import PCI_IDS
from feed_support import CheckedFeed, Proc, start_real_agent

FAKES = Path(__file__).resolve().parent / "fakes"
LIBRARY_PATHS = ("/usr/lib/librocm_smi64.so.1", "/usr/lib/x86_64-linux-gnu/librocm_smi64.so.1")


@pytest.fixture(scope="module")
def real_library() -> str:
    if sys.platform != "linux":
        pytest.skip("the amdgpu sysfs and mount namespaces are Linux")
    found = next((p for p in LIBRARY_PATHS if Path(p).exists()), None)
    if found is None:
        pytest.skip("the real ROCm SMI library is not installed (scripts/ci-system-deps installs "
                    "librocm-smi64-1, as root)")
    why = namespace_unavailable()
    if why is not None:
        pytest.skip(why)
    return found


def _pci_ids_name(vendor: int, device: int) -> Optional[str]:
    """The device's name in the first PCI id database the library would read."""
    for path in PCI_IDS:
        if not Path(path).exists():
            continue
        in_vendor = False
        for line in Path(path).read_text(errors="replace").splitlines():
            if line and not line.startswith(("\t", "#")):
                in_vendor = line.lower().startswith(f"{vendor:04x} ")
            elif in_vendor and line.startswith("\t") and not line.startswith("\t\t"):
                ident, _, name = line.strip().partition(" ")
                if ident.lower() == f"{device:04x}":
                    return name.strip()
        return None
    return None


def _start(tmp_path: Path, sysfs: AmdSysfs, library: str, *pre: str) -> tuple[Proc, CheckedFeed]:
    launcher = [str(FAKES / "amd_sysfs_agent.py"), str(sysfs.root), *pre]
    proc = start_real_agent(tmp_path, "amd-real", ["--driver", "rocm_smi", "--rocm-smi-library", library],
                            launcher=launcher)
    return proc, CheckedFeed(proc)


def _expected_device(gpu: SysfsGpu) -> dict[str, float]:
    """Each published device counter as the files say it, in the feed's units."""
    table = gpu.metrics_revision is not None
    return {
        "gr_active": gpu.busy_percent / 100,                       # gpu_busy_percent
        "mem_used": float(gpu.vram_used),                          # mem_info_vram_used, bytes
        "power": gpu.power_uw / 1e6,                               # hwmon power1_average, W
        "temp": gpu.temp_junction_mc / 1000,                       # hwmon temp2 (junction), C
        # Clocks: the gpu_metrics table when there is one, else pp_dpm_* (the * level), Hz.
        "sm_clock": (gpu.current_gfxclk if table else gpu.sclk_mhz[gpu.sclk_level]) * 1e6,
        "mem_clock": (gpu.current_uclk if table else gpu.mclk_mhz[gpu.mclk_level]) * 1e6,
    }


def _matches(device: dict, expected: dict[str, float]) -> bool:
    return all(k in device and device[k] == pytest.approx(v, rel=1e-6) for k, v in expected.items())


# gpu_metrics content revisions 5.2.3 parses (1.0 .. 1.3), and a device without the file
# (older kernels, or a board whose SMU firmware has no table).
@pytest.mark.parametrize("revision", [0, 1, 2, 3, None], ids=["v1.0", "v1.1", "v1.2", "v1.3", "no-gpu_metrics"])
def test_published_values_equal_the_sysfs_files(real_library, tmp_path, revision):
    sysfs = AmdSysfs(tmp_path / "sys", SysfsGpu(metrics_revision=revision))
    gpu = sysfs.gpu
    with sysfs.firmware():
        _check_published_values(tmp_path, sysfs, real_library, gpu, revision)


def _check_published_values(tmp_path: Path, sysfs: AmdSysfs, real_library: str, gpu: SysfsGpu,
                            revision: Optional[int]) -> None:
    proc, feed = _start(tmp_path, sysfs, real_library)
    try:
        expected = _expected_device(gpu)
        feed.wait(lambda f: any(_matches(m[4].get("device", {}), expected) for m in f.of("state")),
                  f"a state equal to the files {expected}")
        (d,) = feed.of("topo")[-1][4]["devices"]
        assert (d["vendor"], d["backend"]) == ("amd", "rocm_smi")
        assert d["model"] == (_pci_ids_name(0x1002, gpu.model.device_id) or f"AMD GPU (device 0x{gpu.model.device_id:04x})")
        assert d["id"] == f"amd-{gpu.unique_id:016x}"      # unique_id
        assert d["pci"] == gpu.bdf                          # the card link's path
        assert d["numa"] == 1                               # numa_node
        assert d["memory_bytes"] == gpu.vram_total          # mem_info_vram_total
        # The KFD node: 104 CUs (simd_count / simd_per_cu) in 8 engines of one XCD.
        assert (d["unit"], d["units"], d["counts"]) == ("cu", 104, {"xcd": 1, "se": 8, "cu": 104})
        assert [(p["kind"], p["units"]) for p in d["partitions"]] == [("whole", 104)]
        # A 96-byte table has no indep_throttle_status and no accumulators: those counters
        # are not declared, rather than read from beyond what the library wrote.
        assert set(d["counters"]) == set(expected)
        for _, _, _, _, body in feed.of("state"):
            for name, value in body.get("device", {}).items():  # no state ever says otherwise
                assert value == pytest.approx(expected[name], rel=1e-6), (name, body["device"])

        # The files change; the feed follows.
        moved = _expected_device(sysfs.update(
            busy_percent=81, vram_used=gpu.vram_used + (1 << 30), power_uw=251_500_000, temp_junction_mc=52_000,
            sclk_level=2, mclk_level=0, current_gfxclk=1200, current_uclk=1600))
        feed.wait(lambda f: any(_matches(m[4].get("device", {}), moved) for m in f.of("state")),
                  f"a state equal to the changed files {moved}")
    finally:
        feed.close()
        assert proc.stop() == 0, proc.log()


def test_a_device_without_pci_ids_is_named_by_its_device_id(real_library, tmp_path):
    # Without a PCI id database 5.2.3 names every device "0x1002" (the vendor id): not a model.
    sysfs = AmdSysfs(tmp_path / "sys", SysfsGpu())
    proc, feed = _start(tmp_path, sysfs, real_library, "--hide-pci-ids")
    try:
        (d,) = feed.of("topo")[-1][4]["devices"]
        assert d["model"] == "AMD GPU (device 0x740f)"
    finally:
        feed.close()
        assert proc.stop() == 0, proc.log()
