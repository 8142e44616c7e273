"""Cost of one device sample through the amdsmi driver (C++) against a ctypes loop.

Both read the same fake libamd_smi (tests/fakes) in the same run and take the same values
per sample: the gpu_metrics table (8 XCD activities from the accumulators, power, hotspot
temperature, clocks, violation residencies), engine activity (gfx, umc) and VRAM used per
partition processor, and the ECC counts at most once a second. The fake's firmware refreshes
every 1 µs, so every read decodes a fresh table on both paths. The fake's own cost (a mutex,
a per-function call count and a 4.5 KB copy per table) is in both figures; a real library adds sysfs and DRM reads on
top, the same for both. The table decoding of the ctypes path is bench/rocm_read.py's: both
libraries fill the same table.

    .venv/bin/python bench/amdsmi_read.py [--reads N]
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cuagent import _core  # noqa: E402
from cuagent.backends.amdsmi import make_driver  # noqa: E402
from fakes.amdsmi import FakeAmdSmiGpu, FakeAmdSmiHost, build_fake_amdsmi  # noqa: E402
from machine import time_reads  # noqa: E402
from rocm_read import CtypesTable  # noqa: E402

BUSY = [90.0, 0.0, 0.0, 10.0, 50.0, 60.0, 70.0, 100.0]


class EngineUsage(ctypes.Structure):  # amdsmi_engine_usage_t
    _fields_ = [("gfx_activity", ctypes.c_uint32), ("umc_activity", ctypes.c_uint32),
                ("mm_activity", ctypes.c_uint32), ("reserved", ctypes.c_uint32 * 13)]


class ErrorCount(ctypes.Structure):  # amdsmi_error_count_t
    _fields_ = [("correctable_count", ctypes.c_uint64), ("uncorrectable_count", ctypes.c_uint64),
                ("deferred_count", ctypes.c_uint64), ("reserved", ctypes.c_uint64 * 5)]


def processor_handles(lib: ctypes.CDLL) -> list[list[int]]:
    """Every socket's processor handles, in the library's order."""
    u32, handle = ctypes.c_uint32, ctypes.c_void_p
    count = u32(0)
    lib.amdsmi_get_socket_handles(ctypes.byref(count), None)
    sockets = (handle * count.value)()
    lib.amdsmi_get_socket_handles(ctypes.byref(count), sockets)
    out = []
    for socket in sockets:
        n = u32(0)
        lib.amdsmi_get_processor_handles(handle(socket), ctypes.byref(n), None)
        procs = (handle * n.value)()
        lib.amdsmi_get_processor_handles(handle(socket), ctypes.byref(n), procs)
        out.append(list(procs))
    return out


class CtypesReader:
    """The baseline: what a Python agent would do per sample with ctypes (the library is
    already initialised by the driver in this process; amdsmi_init is not reference counted)."""

    def __init__(self, library: Path, handles: list[int], xcp: int, xcc: int, ecc_interval_s: float = 1.0):
        lib = ctypes.CDLL(str(library))
        handle, u32, u64 = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64
        self.metrics = lib.amdsmi_get_gpu_metrics_info
        self.metrics.argtypes = [handle, ctypes.c_void_p]
        self.activity = lib.amdsmi_get_gpu_activity
        self.activity.argtypes = [handle, ctypes.POINTER(EngineUsage)]
        self.used = lib.amdsmi_get_gpu_memory_usage
        self.used.argtypes = [handle, u32, ctypes.POINTER(u64)]
        self.ecc = lib.amdsmi_get_gpu_total_ecc_count
        self.ecc.argtypes = [handle, ctypes.POINTER(ErrorCount)]
        self.table = CtypesTable(xcp, xcc, power_temp=True)
        self.handles = [handle(h) for h in handles]
        self.usage, self.u64, self.errors = EngineUsage(), u64(), ErrorCount()
        self.ecc_interval_s = ecc_interval_s
        self.ecc_due = 0.0
        self.ecc_counts = (np.nan, np.nan)

    def read(self) -> np.ndarray:
        n = len(self.handles)
        out = np.full(8 + 3 * n + 2 + 6, np.nan, dtype=np.float32)
        if self.metrics(self.handles[0], self.table.buffer) == 0:
            self.table.decode(out)
        for k, h in enumerate(self.handles):
            if self.activity(h, ctypes.byref(self.usage)) == 0:
                out[8 + k] = self.usage.gfx_activity / 100
                out[8 + n + k] = self.usage.umc_activity / 100
            if self.used(h, 0, ctypes.byref(self.u64)) == 0:
                out[8 + 2 * n + k] = self.u64.value
        now = time.monotonic()
        if now >= self.ecc_due:
            self.ecc_due = now + self.ecc_interval_s
            if self.ecc(self.handles[0], ctypes.byref(self.errors)) == 0:
                self.ecc_counts = (self.errors.correctable_count, self.errors.uncorrectable_count)
        out[8 + 3 * n:8 + 3 * n + 2] = self.ecc_counts
        return out


def measure(label: str, host: FakeAmdSmiHost, gpu: FakeAmdSmiGpu, reads: int) -> tuple[float, float]:
    driver = make_driver(None, 0, library=str(host.library), kfd_root=str(host.kfd_root))
    index = [i for i in range(driver.device_count) if driver.device(i).id.endswith(f"{gpu.unique_id:016x}")][0]
    handles = processor_handles(ctypes.CDLL(str(host.library)))[gpu.index]  # partition order, as created
    partitions = len(handles)
    reader = CtypesReader(host.library, handles, partitions, 8 // partitions)

    # Same values on both paths (a sanity check, not a benchmark step).
    status, sample, _ = _core.driver_read(driver, index, 0)
    assert status == "ok"
    reader.read()
    time.sleep(0.001)
    ours = reader.read()
    np.testing.assert_allclose(ours[:8], np.array(BUSY) / 100, atol=1e-6)
    np.testing.assert_allclose(sample["active"][:8], np.array(BUSY) / 100, atol=1e-6)
    np.testing.assert_allclose(ours[8:8 + partitions], sample["gr_active"], atol=1e-6)
    np.testing.assert_allclose(ours[-6], sample["power"][0])

    return time_reads(label, driver, index, reader.read, reads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=20000, help="samples per path and device (default 20000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        library = build_fake_amdsmi(Path(tmp) / "lib")
        host = FakeAmdSmiHost(library, Path(tmp) / "kfd")
        spx = host.add_mi300x(fw_period_ns=1000)
        cpx = host.add_mi300x(compute="CPX", memory="NPS4", fw_period_ns=1000)
        for gpu in (spx, cpx):
            host.set_xcd_busy(gpu, BUSY)
        print(f"amdsmi device sample, fake libamd_smi, {args.reads} reads per path")
        measure("MI300X SPX (3 calls)", host, spx, args.reads)
        measure("MI300X CPX (17 calls)", host, cpx, args.reads)


if __name__ == "__main__":
    main()
