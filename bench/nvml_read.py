"""Cost of one device sample on the nvml path, against its floor and pynvml.

    python bench/nvml_read.py [--library PATH] [--reads N] [--rounds K]

Three ways to read the same counters (GPM sample + metrics, memory, power,
temperature, two clocks, clock-event reasons, utilisation, ECC) from device 0:
  native : the C++ nvml driver's read(), looped in C++ (cuagent._core.driver_time_reads)
  floor  : the same NVML calls back to back from a C harness (bench/nvml_floor.c)
  pynvml : the same calls through pynvml in a Python loop
Without --library it builds and uses the fake libnvidia-ml from the tests (no
GPU needed; then the figures measure our overhead around near-free calls). On a
GPU server pass --library libnvidia-ml.so.1. Targets: native <= 1.2x floor,
native >= 2.5x cheaper than pynvml.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_floor(out: Path) -> Path:
    exe = out / "nvml_floor"
    subprocess.run(["cc", "-O2", "-o", str(exe), str(ROOT / "bench" / "nvml_floor.c"), "-ldl"], check=True)
    return exe


def native_ns(library: str, reads: int) -> float:
    from cuagent import _core
    from cuagent.backends import nvml
    driver = nvml.make_driver([0], 0, library=library)
    _core.driver_time_reads(driver, 0, min(reads, 1000))  # warm up
    elapsed, ok = _core.driver_time_reads(driver, 0, reads)
    assert ok == reads, f"only {ok}/{reads} reads succeeded"
    return elapsed / reads


def pynvml_ns(library: str, reads: int) -> float:
    from cuagent.backends._pynvml_loader import use_library
    nv = use_library(library)
    nv.nvmlInit()
    try:
        h = nv.nvmlDeviceGetHandleByIndex(0)
        samples = [nv.nvmlGpmSampleAlloc(), nv.nvmlGpmSampleAlloc()]
        nv.nvmlGpmSampleGet(h, samples[0])
        ids = [nv.NVML_GPM_METRIC_SM_UTIL, nv.NVML_GPM_METRIC_SM_OCCUPANCY, nv.NVML_GPM_METRIC_ANY_TENSOR_UTIL,
               nv.NVML_GPM_METRIC_DRAM_BW_UTIL, nv.NVML_GPM_METRIC_GRAPHICS_UTIL,
               nv.NVML_GPM_METRIC_PCIE_TX_PER_SEC, nv.NVML_GPM_METRIC_PCIE_RX_PER_SEC,
               nv.NVML_GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC, nv.NVML_GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC]
        request = nv.c_nvmlGpmMetricsGet_t()
        t0 = time.perf_counter_ns()
        for i in range(reads):
            cur, prev = samples[(i + 1) & 1], samples[i & 1]
            nv.nvmlGpmSampleGet(h, cur)
            request.version = nv.NVML_GPM_METRICS_GET_VERSION
            request.numMetrics = len(ids)
            request.sample1, request.sample2 = prev, cur
            for k, m in enumerate(ids):
                request.metrics[k].metricId = m
            nv.nvmlGpmMetricsGet(request)
            nv.nvmlDeviceGetMemoryInfo(h, version=nv.nvmlMemory_v2)
            nv.nvmlDeviceGetPowerUsage(h)
            nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)
            nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM)
            nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM)
            nv.nvmlDeviceGetCurrentClocksEventReasons(h)
            nv.nvmlDeviceGetUtilizationRates(h)
            nv.nvmlDeviceGetTotalEccErrors(h, nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nv.NVML_VOLATILE_ECC)
        elapsed = time.perf_counter_ns() - t0
        for s in samples:
            nv.nvmlGpmSampleFree(s)
        return elapsed / reads
    finally:
        nv.nvmlShutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--library", help="libnvidia-ml to read (default: build the test fake)")
    ap.add_argument("--reads", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=7, help="alternating floor/native rounds; best of each kept")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        library = args.library
        if library is None:
            sys.path.insert(0, str(ROOT / "tests"))
            import nvml_fake
            library = str(nvml_fake.build("full", Path(tmp)))
            os.environ["FAKE_NVML_SCRIPT"] = ""
            print(f"library: fake libnvidia-ml ({library}); pass --library for a real GPU")
        floor_exe = build_floor(Path(tmp))
        # Floor and native alternate, and each keeps its best round: on a shared
        # machine a single round of either can be slowed 2x by other load, which
        # swung the ratio between 0.5x and 2x from one run to the next.
        floors, natives = [], []
        for _ in range(args.rounds):
            floors.append(float(subprocess.run([str(floor_exe), library, str(args.reads)], check=True,
                                               capture_output=True, text=True).stdout))
            natives.append(native_ns(library, args.reads))
        floor, native = min(floors), min(natives)
        py = pynvml_ns(library, max(1000, args.reads // 10))
    print(f"per device sample (10 NVML calls incl. one GPM sample + 9 GPM metrics), "
          f"best of {args.rounds} rounds x {args.reads} reads")
    print(f"  floor  (C, raw calls) : {floor / 1000:8.2f} us")
    print(f"  native (C++ driver)   : {native / 1000:8.2f} us   = {native / floor:5.2f}x floor   (target <= 1.2x)")
    print(f"  pynvml (Python loop)  : {py / 1000:8.2f} us   = {py / native:5.2f}x native  (target >= 2.5x)")
    print(f"  8 devices at 10 Hz    : {80 * native / 1e9 * 100:8.4f} % of one core (native reads only)")


if __name__ == "__main__":
    main()
