"""Cost of one device sample through the rocm_smi driver (C++) against a ctypes loop.

Both read the same fake librocm_smi64 (tests/fakes) in the same run and take the
same values per sample: the gpu_metrics table (8 XCD activities from the
accumulators, clocks, violation residencies), busy percent, VRAM used, socket
power and junction temperature. The fake's firmware refreshes every 1 µs, so
every read decodes a fresh table on both paths. The fake's own cost (a mutex
and a 4.5 KB copy per table) is in both figures; a real library adds sysfs
reads on top, the same for both.

    .venv/bin/python bench/rocm_read.py [--reads N]
"""

from __future__ import annotations

import argparse
import ctypes
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from cuagent import _core  # noqa: E402
from cuagent.backends.rocm_smi import make_driver  # noqa: E402
from fakes.rocm import FakeAmdHost, FakeGpu, build_fake_rocm_smi  # noqa: E402
from machine import time_reads  # noqa: E402

BUSY = [90.0, 0.0, 0.0, 10.0, 50.0, 60.0, 70.0, 100.0]
NO64 = 0xFFFFFFFFFFFFFFFF


class CtypesTable:
    """What a Python agent would do per table with struct: the 1.8 public layout decoded as the
    C++ TableDecoder does (clocks, accumulators, per-XCD busy), the previous table's
    accumulators kept. Shared with bench/amdsmi_read.py: both libraries fill the same table."""

    def __init__(self, xcp: int, xcc: int, power_temp: bool):
        self.power_temp = power_temp  # ROCm SMI reads them by call, AMD SMI from the table
        self.buffer = ctypes.create_string_buffer(16384)
        self.view = memoryview(self.buffer).cast("B")
        self.xcp, self.xcc = xcp, xcc
        self.last_fw = None
        self.last_acc_counter = NO64
        self.last_busy = [NO64] * 64
        self.last_ppt = self.last_thm = NO64

    def decode(self, out: np.ndarray) -> None:
        """XCD activity into out[:8]; violations and clocks (and power, temp) into out[-6:]."""
        raw = self.view  # no copy of the 16 KiB buffer
        (fw,) = struct.unpack_from("<Q", raw, 96)
        if fw == self.last_fw:
            return
        self.last_fw = fw
        if self.power_temp:
            out[-6] = struct.unpack_from("<H", raw, 120)[0]  # current_socket_power
            out[-5] = struct.unpack_from("<H", raw, 6)[0]    # temperature_hotspot
        clocks = [c for c in struct.unpack_from("<8H", raw, 312) if c != 0xFFFF]
        out[-2] = np.mean(clocks) * 1e6 if clocks else np.nan
        out[-1] = struct.unpack_from("<H", raw, 58)[0] * 1e6
        acc_counter, ppt, thm = struct.unpack_from("<Q8xQQ", raw, 424)
        ticks = acc_counter - self.last_acc_counter if self.last_acc_counter != NO64 else 0
        for p in range(self.xcp):
            entry = 480 + p * 504
            inst = struct.unpack_from("<8I", raw, entry)
            accs = struct.unpack_from("<8Q", raw, entry + 120)
            for x in range(self.xcc):
                i = p * self.xcc + x
                value = np.nan
                if ticks > 0 and accs[x] != NO64 and self.last_busy[i] != NO64:
                    value = (accs[x] - self.last_busy[i]) / ticks / 100
                if value != value and inst[x] != 0xFFFFFFFF:
                    value = inst[x] / 100
                out[i] = value
                self.last_busy[i] = accs[x]
        if ticks > 0:
            out[-4] = (ppt - self.last_ppt) / ticks
            out[-3] = (thm - self.last_thm) / ticks
        self.last_acc_counter, self.last_ppt, self.last_thm = acc_counter, ppt, thm


class CtypesReader:
    """The baseline: what a Python agent would do per sample with ctypes."""

    def __init__(self, library: Path, devices: list[int], xcp: int, xcc: int):
        lib = ctypes.CDLL(str(library))
        u32, u64 = ctypes.c_uint32, ctypes.c_uint64
        self.metrics = lib.rsmi_dev_gpu_metrics_info_get
        self.metrics.argtypes = [u32, ctypes.c_void_p]
        self.busy = lib.rsmi_dev_busy_percent_get
        self.busy.argtypes = [u32, ctypes.POINTER(u32)]
        self.used = lib.rsmi_dev_memory_usage_get
        self.used.argtypes = [u32, u32, ctypes.POINTER(u64)]
        self.power = lib.rsmi_dev_current_socket_power_get
        self.power.argtypes = [u32, ctypes.POINTER(u64)]
        self.temp = lib.rsmi_dev_temp_metric_get
        self.temp.argtypes = [u32, u32, u32, ctypes.POINTER(ctypes.c_int64)]
        self.table = CtypesTable(xcp, xcc, power_temp=False)
        self.devices = devices
        self.u32, self.u64, self.i64 = u32(), u64(), ctypes.c_int64()

    def read(self) -> np.ndarray:
        out = np.full(8 + 2 * len(self.devices) + 6, np.nan, dtype=np.float32)
        primary = self.devices[0]
        if self.metrics(primary, self.table.buffer) == 0:
            self.table.decode(out)
        for k, dev in enumerate(self.devices):
            if self.busy(dev, ctypes.byref(self.u32)) == 0:
                out[8 + k] = self.u32.value / 100
            if self.used(dev, 0, ctypes.byref(self.u64)) == 0:
                out[8 + len(self.devices) + k] = self.u64.value
        if self.power(primary, ctypes.byref(self.u64)) == 0:
            out[-6] = self.u64.value * 1e-6
        if self.temp(primary, 1, 0, ctypes.byref(self.i64)) == 0:
            out[-5] = self.i64.value / 1000
        return out


def measure(label: str, host: FakeAmdHost, gpu: FakeGpu, reads: int) -> tuple[float, float]:
    driver = make_driver(None, 0, library=str(host.library), kfd_root=str(host.kfd_root))
    index = [i for i in range(driver.device_count) if driver.device(i).id.endswith(f"{gpu.unique_id:016x}")][0]
    partitions = len(gpu.rsmi_devices)
    reader = CtypesReader(host.library, gpu.rsmi_devices, partitions, 8 // partitions)

    # Same values on both paths (a sanity check, not a benchmark step).
    status, sample, _ = _core.driver_read(driver, index, 0)
    assert status == "ok"
    reader.read()
    time.sleep(0.001)
    np.testing.assert_allclose(reader.read()[:8], np.array(BUSY) / 100, atol=1e-6)
    np.testing.assert_allclose(sample["active"][:8], np.array(BUSY) / 100, atol=1e-6)

    return time_reads(label, driver, index, reader.read, reads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=20000, help="samples per path and device (default 20000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        library = build_fake_rocm_smi(Path(tmp) / "lib")
        host = FakeAmdHost(library, Path(tmp) / "kfd")
        spx = host.add_mi300x(fw_period_ns=1000)
        cpx = host.add_mi300x(compute="CPX", memory="NPS4", fw_period_ns=1000)
        for gpu in (spx, cpx):
            host.set_xcd_busy(gpu, BUSY)
        print(f"rocm_smi device sample, fake librocm_smi64, {args.reads} reads per path")
        measure("MI300X SPX (5 calls)", host, spx, args.reads)
        measure("MI300X CPX (19 calls)", host, cpx, args.reads)


if __name__ == "__main__":
    main()
