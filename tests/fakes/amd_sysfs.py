"""A synthetic amdgpu sysfs for the real librocm_smi64: one AMD Instinct device laid out
the way the amdgpu kernel driver lays it out, to bind-mount over /sys/class, /sys/devices
and /sys/module inside a private mount namespace (root, `unshare -m`).

    sysfs = AmdSysfs(tmp / "sys", SysfsGpu(metrics_revision=3))
    sysfs.mounts()            # [(source, target), ...] to bind in the namespace
    sysfs.update(busy_percent=80, current_gfxclk=1500)   # rewrite files atomically
    with sysfs.firmware(period_s=0.05):  # the table's timestamps move, as on a real board
        ...

What it writes (the files ROCm SMI 5.2.3 reads; /work/shared/data/rocm-smi-sysfs-notes.md):

    class/drm/card0, class/drm/renderD128   -> ../../devices/<root port>/<BDF>/drm/<name>
    class/hwmon/hwmon3                      -> ../../devices/<root port>/<BDF>/hwmon/hwmon3
    class/kfd/kfd/topology/nodes/{0,1}/     (fakes.kfd_tree.write_kfd_tree)
    devices/<root port>/<BDF>/              vendor, device, subsystem_*, vbios_version,
        gpu_busy_percent, mem_info_vram_{total,used}, unique_id, pp_dpm_{sclk,mclk},
        numa_node, gpu_metrics (binary, kernel layout of the chosen v1.x revision),
        hwmon/hwmon3/{name, power1_average, temp[123]_{input,label}, device}
    module/amdgpu/version

The library binds a device to its hwmon by comparing the inodes of `<card>/device` and
`<hwmon>/device`, and derives the PCI address from the card link's path, so both links
resolve into the one BDF directory, as on a real host.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Iterator, Optional

from .kfd_tree import MI210, GpuModel, KfdGpu, write_kfd_tree

NO_DATA16 = 0xFFFF

# Kernel gpu_metrics v1.x tables (drivers/gpu/drm/amd/include/kgd_pp_interface.h), as
# struct formats. 1.0 moved system_clock_counter to the front and had a 32-bit energy
# accumulator and 8-bit link fields; 1.1 is the shape every later 1.x table starts with;
# 1.2 appends firmware_timestamp, 1.3 voltages and indep_throttle_status.
_V10 = "<HBB4xQ6H3HHI7H7HIHBB4x"                    # 80 bytes
_V11 = "<HBB6H3HHQQ7H7HIHHHHII4H"                   # 96 bytes
_V12 = _V11 + "Q"                                   # 104 bytes
_V13 = _V12 + "4HQ"                                 # 120 bytes
METRICS_FORMATS = {0: _V10, 1: _V11, 2: _V12, 3: _V13}
assert [struct.calcsize(f) for f in METRICS_FORMATS.values()] == [80, 96, 104, 120]


@dataclass(frozen=True)
class SysfsGpu:
    """What the files of the synthetic device say: the values the agent must publish."""

    model: GpuModel = MI210
    domain: int = 0
    bus: int = 0xC1
    unique_id: int = 0x4E6C1A2B3C4D5E6F
    subsystem_device: int = 0x0C34
    vram_used: int = 17_179_869_184 + 123 * 4096
    busy_percent: int = 37
    power_uw: int = 212_000_000              # hwmon power1_average, microwatts
    temp_edge_mc: int = 38_000               # hwmon temp1 (edge), millidegrees
    temp_junction_mc: int = 41_000           # hwmon temp2 (junction)
    temp_mem_mc: int = 35_000                # hwmon temp3 (mem)
    sclk_mhz: tuple[int, ...] = (500, 800, 1700)
    sclk_level: int = 1
    mclk_mhz: tuple[int, ...] = (400, 1600)
    mclk_level: int = 1
    # gpu_metrics: content revision of a format-1 table, or None for no file.
    metrics_revision: Optional[int] = 3
    # Table fields, chosen unlike the pp_dpm levels and hwmon values above so that a
    # published value shows which source it came from.
    temperature_hotspot: int = 44
    average_gfx_activity: int = 36
    average_socket_power: int = 205          # W
    current_gfxclk: int = 1650               # MHz
    current_uclk: int = 1550
    firmware_timestamp: int = 1_000_000      # 10 ns units (1.2+)
    system_clock_counter: int = 5_000_000_000  # ns

    @property
    def bdf(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:00.0"

    @property
    def root_port(self) -> str:
        return f"pci{self.domain:04x}:{self.bus & 0xF0:02x}"

    @property
    def vram_total(self) -> int:
        return self.model.vram_bytes


def gpu_metrics_bytes(gpu: SysfsGpu) -> bytes:
    """The binary gpu_metrics file of `gpu.metrics_revision`, as the kernel writes it
    (fields a real Aldebaran table leaves unset are all-ones)."""
    rev = gpu.metrics_revision
    if rev not in METRICS_FORMATS:
        raise ValueError(f"gpu_metrics v1.{rev} is not a table this builder writes (1.0-1.3)")
    fmt = METRICS_FORMATS[rev]
    size = struct.calcsize(fmt)
    header = (size, 1, rev)
    temps = (38, gpu.temperature_hotspot, 35, NO_DATA16, NO_DATA16, NO_DATA16)
    activity = (gpu.average_gfx_activity, 5, NO_DATA16)
    average_clocks = (1600, 1090, 1550, NO_DATA16, NO_DATA16, NO_DATA16, NO_DATA16)
    current_clocks = (gpu.current_gfxclk, 1090, gpu.current_uclk, NO_DATA16, NO_DATA16, NO_DATA16, NO_DATA16)
    if rev == 0:
        values = (*header, gpu.system_clock_counter, *temps, *activity, gpu.average_socket_power,
                  123_456, *average_clocks, *current_clocks, 0, NO_DATA16, 16, 160)
        return struct.pack(fmt, *values)
    values = [*header, *temps, *activity, gpu.average_socket_power, 123_456_789, gpu.system_clock_counter,
              *average_clocks, *current_clocks, 0, NO_DATA16, 16, 160, 0, 1_000, 2_000, *(NO_DATA16,) * 4]
    if rev >= 2:
        values.append(gpu.firmware_timestamp)
    if rev >= 3:
        values += [850, 900, 1_200, 0, 0]  # voltages (mV), padding, indep_throttle_status
    return struct.pack(fmt, *values)


def _levels(mhz: tuple[int, ...], current: int) -> str:
    # amdgpu_get_pp_dpm_clock: "%d: %uMhz %s\n", with "*" on the current level.
    return "".join(f"{i}: {f}Mhz {'*' if i == current else ''}\n" for i, f in enumerate(mhz))


@dataclass
class AmdSysfs:
    """The synthetic tree under `root` (class/, devices/, module/) for one device."""

    root: Path
    gpu: SysfsGpu = field(default_factory=SysfsGpu)
    card: int = 0
    hwmon: int = 3

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.root = Path(self.root)
        if self.root.exists():
            shutil.rmtree(self.root)
        self._write_tree()

    @property
    def device_dir(self) -> Path:
        return self.root / "devices" / self.gpu.root_port / self.gpu.bdf

    @property
    def hwmon_dir(self) -> Path:
        return self.device_dir / "hwmon" / f"hwmon{self.hwmon}"

    @property
    def kfd_root(self) -> Path:
        return self.root / "class" / "kfd" / "kfd"

    def mounts(self) -> list[tuple[Path, str]]:
        """(source, target) bind mounts that put this tree in place of the host's."""
        return [(self.root / "class", "/sys/class"), (self.root / "devices", "/sys/devices"),
                (self.root / "module", "/sys/module")]

    def update(self, **changes: object) -> SysfsGpu:
        """Change some SysfsGpu fields and rewrite the files; each file is replaced whole
        (write, then rename), so a reader never sees half a file."""
        unknown = set(changes) - {f.name for f in fields(SysfsGpu)}
        if unknown:
            raise TypeError(f"no SysfsGpu field {sorted(unknown)}")
        with self._lock:
            self.gpu = replace(self.gpu, **changes)  # type: ignore[arg-type]
            self._write_values()
            return self.gpu

    @contextmanager
    def firmware(self, period_s: float = 0.05) -> Iterator[None]:
        """A new gpu_metrics table every period_s while inside: firmware_timestamp (10 ns
        units) and system_clock_counter (ns) advance by the period, other fields stay. A
        static table would be the same data again, which the driver rightly skips."""
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(period_s):
                with self._lock:
                    g = self.gpu
                    self.gpu = replace(g, firmware_timestamp=g.firmware_timestamp + int(period_s * 1e8),
                                       system_clock_counter=g.system_clock_counter + int(period_s * 1e9))
                    if g.metrics_revision is not None:
                        self._write(self.device_dir / "gpu_metrics", gpu_metrics_bytes(self.gpu))

        thread = threading.Thread(target=run, name="amd-sysfs-firmware", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(5)

    # ---- writing ------------------------------------------------------------

    def _write_tree(self) -> None:
        gpu = self.gpu
        dev = self.device_dir
        dev.mkdir(parents=True)
        ids = {"vendor": 0x1002, "device": gpu.model.device_id, "subsystem_vendor": 0x1002,
               "subsystem_device": gpu.subsystem_device, "revision": 0x02, "class": 0x038000}
        for name, value in ids.items():
            (dev / name).write_text(f"0x{value:04x}\n" if name != "class" else f"0x{value:06x}\n")
        (dev / "vbios_version").write_text("113-D67301-063\n")
        (dev / "mem_info_vram_total").write_text(f"{gpu.vram_total}\n")
        (dev / "unique_id").write_text(f"{gpu.unique_id:x}\n")
        (dev / "numa_node").write_text("1\n")
        (dev / "power_dpm_force_performance_level").write_text("auto\n")

        drm_class = self.root / "class" / "drm"
        drm_class.mkdir(parents=True)
        (drm_class / "version").write_text("drm 1.1.0 20060810\n")
        for name in (f"card{self.card}", f"renderD{128 + self.card}"):
            node = dev / "drm" / name
            node.mkdir(parents=True)
            (node / "device").symlink_to("../../../" + gpu.bdf)
            (node / "dev").write_text(f"226:{self.card if name.startswith('card') else 128 + self.card}\n")
            (drm_class / name).symlink_to(f"../../devices/{gpu.root_port}/{gpu.bdf}/drm/{name}")

        mon = self.hwmon_dir
        mon.mkdir(parents=True)
        (mon / "device").symlink_to("../../../" + gpu.bdf)
        (mon / "name").write_text("amdgpu\n")
        for i, label in enumerate(("edge", "junction", "mem"), start=1):
            (mon / f"temp{i}_label").write_text(f"{label}\n")
            (mon / f"temp{i}_crit").write_text("100000\n")
        (mon / "in0_label").write_text("vddgfx\n")  # the library maps voltage labels at init
        (mon / "in0_input").write_text("850\n")
        (mon / "power1_cap").write_text("300000000\n")
        hwmon_class = self.root / "class" / "hwmon"
        hwmon_class.mkdir(parents=True)
        (hwmon_class / f"hwmon{self.hwmon}").symlink_to(
            f"../../devices/{gpu.root_port}/{gpu.bdf}/hwmon/hwmon{self.hwmon}")

        module = self.root / "module" / "amdgpu"
        module.mkdir(parents=True)
        (module / "version").write_text("5.18.2\n")

        fake = KfdGpu(gpu.model, compute="SPX", memory="NPS1", domain=gpu.domain, bus=gpu.bus,
                       unique_id=gpu.unique_id)
        write_kfd_tree(self.kfd_root, [fake])
        self._write_values()

    def _write_values(self) -> None:
        gpu, dev, mon = self.gpu, self.device_dir, self.hwmon_dir
        files: dict[Path, bytes] = {
            dev / "gpu_busy_percent": f"{gpu.busy_percent}\n".encode(),
            dev / "mem_info_vram_used": f"{gpu.vram_used}\n".encode(),
            dev / "pp_dpm_sclk": _levels(gpu.sclk_mhz, gpu.sclk_level).encode(),
            dev / "pp_dpm_mclk": _levels(gpu.mclk_mhz, gpu.mclk_level).encode(),
            mon / "power1_average": f"{gpu.power_uw}\n".encode(),
            mon / "temp1_input": f"{gpu.temp_edge_mc}\n".encode(),
            mon / "temp2_input": f"{gpu.temp_junction_mc}\n".encode(),
            mon / "temp3_input": f"{gpu.temp_mem_mc}\n".encode(),
        }
        if gpu.metrics_revision is not None:
            files[dev / "gpu_metrics"] = gpu_metrics_bytes(gpu)
        elif (dev / "gpu_metrics").exists():
            (dev / "gpu_metrics").unlink()
        for path, data in files.items():
            self._write(path, data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        tmp = path.with_name(path.name + ".new")
        tmp.write_bytes(data)
        os.replace(tmp, path)


def namespace_unavailable() -> Optional[str]:
    """Why a private mount namespace with bind mounts cannot be had here, or None."""
    if os.geteuid() != 0:
        return "needs root to bind-mount a synthetic sysfs (CI runs as root)"
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "needs unshare(1) and mount(8) (util-linux)"
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "--", "mount", "-t", "tmpfs",
                            "none", "/dev/shm"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return f"unshare -m / mount refused here: {(probe.stderr or probe.stdout).strip()[:200]}"
    return None
