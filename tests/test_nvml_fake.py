"""The fake libnvidia-ml behaves like the real one where the driver relies on it.

These run the fake in-process through ctypes with real NVML signatures and
struct layouts (mirrored here from nvml.h) and through pynvml, the official
binding, which would break on an ABI mismatch.
"""
from __future__ import annotations

import ctypes
import time

import pytest

import nvml_fake

NVML_SUCCESS = 0
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_GPU_IS_LOST = 15


class GpmMetric(ctypes.Structure):
    _fields_ = [("metricId", ctypes.c_uint), ("nvmlReturn", ctypes.c_int),
                ("value", ctypes.c_double), ("names", ctypes.c_char_p * 3)]


class GpmMetricsGet(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint), ("numMetrics", ctypes.c_uint),
                ("sample1", ctypes.c_void_p), ("sample2", ctypes.c_void_p),
                ("metrics", GpmMetric * 8)]


class ProcessUtilizationSample(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_uint), ("timeStamp", ctypes.c_ulonglong),
                ("smUtil", ctypes.c_uint), ("memUtil", ctypes.c_uint),
                ("encUtil", ctypes.c_uint), ("decUtil", ctypes.c_uint)]


@pytest.fixture
def nvml(fake_nvml):
    """The fake loaded in this process, initialised; shut down afterwards."""
    def start(script_text: str = ""):
        lib = fake_nvml.load(fake_nvml.script(script_text) if script_text else None)
        assert lib.nvmlInit_v2() == NVML_SUCCESS
        started.append(lib)
        return lib
    started: list = []
    yield start
    for lib in started:
        lib.nvmlShutdown()


def handle(lib, index=0):
    h = ctypes.c_void_p()
    assert lib.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(h)) == NVML_SUCCESS
    return h


def gpm_sample(lib, h):
    s = ctypes.c_void_p()
    assert lib.nvmlGpmSampleAlloc(ctypes.byref(s)) == NVML_SUCCESS
    assert lib.nvmlGpmSampleGet(h, s) == NVML_SUCCESS
    return s


def gpm_metrics(lib, a, b, ids):
    m = GpmMetricsGet(version=1, numMetrics=len(ids), sample1=a, sample2=b)
    for i, metric in enumerate(ids):
        m.metrics[i].metricId = metric
    assert lib.nvmlGpmMetricsGet(ctypes.byref(m)) == NVML_SUCCESS
    return [m.metrics[i].value for i in range(len(ids))]


def test_gpm_samples_within_one_refresh_read_zero(nvml):
    lib = nvml("set 0 sm_active 0.5\nset 0 tensor_active 0.25\n")
    h = handle(lib)
    # Take the pair right after a refresh boundary so both land in one period.
    a = gpm_sample(lib, h)
    b = gpm_sample(lib, h)
    first = gpm_metrics(lib, a, b, [2, 5])
    time.sleep(0.25)  # at least two refresh periods later
    c = gpm_sample(lib, h)
    later = gpm_metrics(lib, b, c, [2, 5])
    assert later == pytest.approx([50.0, 25.0])  # GPM reports percent
    # The first pair was either in one period (zeros) or straddled a refresh.
    assert first in ([0.0, 0.0], pytest.approx([50.0, 25.0]))
    for s in (a, b, c):
        assert lib.nvmlGpmSampleFree(s) == NVML_SUCCESS


def test_trace_replay_starts_at_the_first_row(nvml, trace_table):
    lib = nvml(f"trace * {trace_table}\n")
    h = handle(lib)
    mw = ctypes.c_uint()
    assert lib.nvmlDeviceGetPowerUsage(h, ctypes.byref(mw)) == NVML_SUCCESS
    first = nvml_fake.trace_rows()[0]
    # Within the first 100 ms the first row shows (allow the next row if slow).
    second = nvml_fake.trace_rows()[1]
    assert mw.value in (round(first["power_w"] * 1000), round(second["power_w"] * 1000))


def test_process_utilization_sizes_then_fills_and_reports_not_found(nvml):
    lib = nvml("devices 2\nprocess 0 4242 81 25 1073741824\n")
    count = ctypes.c_uint(0)
    assert lib.nvmlDeviceGetProcessUtilization(handle(lib, 0), None, ctypes.byref(count),
                                               ctypes.c_ulonglong(0)) == NVML_ERROR_INSUFFICIENT_SIZE
    assert count.value == 1
    samples = (ProcessUtilizationSample * count.value)()
    assert lib.nvmlDeviceGetProcessUtilization(handle(lib, 0), samples, ctypes.byref(count),
                                               ctypes.c_ulonglong(0)) == NVML_SUCCESS
    assert (samples[0].pid, samples[0].smUtil, samples[0].memUtil) == (4242, 81, 25)
    # Like the real library: no process in the window reads NOT_FOUND.
    assert lib.nvmlDeviceGetProcessUtilization(handle(lib, 1), None, ctypes.byref(count),
                                               ctypes.c_ulonglong(0)) == NVML_ERROR_NOT_FOUND


def test_lost_gpu_fails_every_call_with_gpu_is_lost(nvml):
    lib = nvml("devices 2\nlost 1 calls 3\n")
    h1 = handle(lib, 1)
    mw = ctypes.c_uint()
    codes = [lib.nvmlDeviceGetPowerUsage(h1, ctypes.byref(mw)) for _ in range(5)]
    assert codes == [0, 0, 0, NVML_ERROR_GPU_IS_LOST, NVML_ERROR_GPU_IS_LOST]
    temp = ctypes.c_uint()
    assert lib.nvmlDeviceGetTemperature(h1, 0, ctypes.byref(temp)) == NVML_ERROR_GPU_IS_LOST
    # The other GPU goes on.
    assert lib.nvmlDeviceGetPowerUsage(handle(lib, 0), ctypes.byref(mw)) == NVML_SUCCESS


def test_scripted_failure_after_successes(nvml):
    lib = nvml("fail * nvmlDeviceGetTemperature 3 2\n")
    h = handle(lib)
    temp = ctypes.c_uint()
    codes = [lib.nvmlDeviceGetTemperature(h, 0, ctypes.byref(temp)) for _ in range(4)]
    assert codes == [0, 0, NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_NOT_SUPPORTED]


def test_attributes_only_on_mig_handles(nvml):
    lib = nvml("mig 0 1 3g.40gb 60 40320 0 4 1\nmig 0 2 2g.20gb 32 20096 4 2 1\n")
    h = handle(lib)
    class Attributes(ctypes.Structure):
        _fields_ = [("u", ctypes.c_uint * 8), ("memorySizeMB", ctypes.c_ulonglong)]
    attrs = Attributes()
    assert lib.nvmlDeviceGetAttributes_v2(h, ctypes.byref(attrs)) == NVML_ERROR_NOT_SUPPORTED
    mig = ctypes.c_void_p()
    assert lib.nvmlDeviceGetMigDeviceHandleByIndex(h, 1, ctypes.byref(mig)) == NVML_SUCCESS
    assert lib.nvmlDeviceGetAttributes_v2(mig, ctypes.byref(attrs)) == NVML_SUCCESS
    assert (attrs.u[0], attrs.memorySizeMB) == (32, 20096)
    assert lib.nvmlDeviceGetMigDeviceHandleByIndex(h, 2, ctypes.byref(mig)) == NVML_ERROR_NOT_FOUND


def test_no_gpm_variant_lacks_the_symbols(fake_nvml_variant):
    lib = fake_nvml_variant("no_gpm").cdll()
    assert not hasattr(lib, "nvmlGpmSampleGet")
    assert hasattr(lib, "nvmlDeviceGetPowerUsage")
    assert not hasattr(fake_nvml_variant("no_power").cdll(), "nvmlDeviceGetPowerUsage")
    assert not hasattr(fake_nvml_variant("broken").cdll(), "nvmlInit_v2")


def test_pynvml_reads_the_fake(fake_nvml):
    """pynvml (ctypes mirror of nvml.h) agrees with the fake's ABI."""
    from cuagent.backends._pynvml_loader import use_library
    pynvml = use_library(str(fake_nvml.library))
    fake_nvml.load(fake_nvml.script("devices 2\nset 1 name NVIDIA A100-SXM4-80GB\n"
                                    "mig 0 1 3g.40gb 60 40320 0 4 1\n"))
    pynvml.nvmlInit()
    try:
        assert pynvml.nvmlDeviceGetCount() == 2
        h0, h1 = (pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(2))
        assert pynvml.nvmlDeviceGetName(h1) == "NVIDIA A100-SXM4-80GB"
        assert pynvml.nvmlDeviceGetPciInfo(h0).busId == "00000000:18:00.0"
        mem = pynvml.nvmlDeviceGetMemoryInfo(h0, version=pynvml.nvmlMemory_v2)
        assert (mem.total, mem.used) == (85520809984, 503316480)
        assert pynvml.nvmlDeviceGetMigMode(h0) == [1, 1]
        mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(h0, 0)
        assert pynvml.nvmlDeviceGetAttributes(mig).multiprocessorCount == 60
        assert pynvml.nvmlDeviceGetName(mig).endswith("MIG 3g.40gb")
        gi = pynvml.nvmlDeviceGetGpuInstanceById(h0, 1)
        assert pynvml.nvmlGpuInstanceGetInfo(gi).placement.size == 4
        assert pynvml.nvmlGpmQueryDeviceSupport(h0).isSupportedDevice == 1
    finally:
        pynvml.nvmlShutdown()
