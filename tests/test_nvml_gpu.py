"""On a real NVIDIA GPU (skipped elsewhere): the driver agrees with pynvml, and
the SM layout probe runs.

Each test body runs in a fresh interpreter: other tests load the fake
libnvidia-ml, whose soname would satisfy a later dlopen("libnvidia-ml.so.1")
in the same process.
"""
from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
import time

import pytest

_core = pytest.importorskip("cuagent._core")
pynvml = pytest.importorskip("pynvml")


def _real_gpu() -> bool:
    code = "import pynvml\ntry:\n    pynvml.nvmlInit()\nexcept pynvml.NVMLError:\n    raise SystemExit(1)\nraise SystemExit(0 if pynvml.nvmlDeviceGetCount() > 0 else 1)\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60).returncode == 0


def _in_subprocess(fn):
    """Run the test function's body in a fresh interpreter."""
    def wrapper():
        src = textwrap.dedent(inspect.getsource(fn)).split("\n", 2)[2]  # drop decorator and def
        head = "import math, time, pytest, pynvml\nfrom cuagent import _core\n"
        proc = subprocess.run([sys.executable, "-c", head + textwrap.dedent(src)],
                              capture_output=True, text=True, timeout=300)
        if proc.returncode == 3:
            pytest.skip(proc.stdout.strip())
        assert proc.returncode == 0, proc.stdout + proc.stderr
    wrapper.__name__ = fn.__name__
    return wrapper


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _real_gpu(), reason="no NVIDIA GPU / driver")]


@_in_subprocess
def test_driver_matches_pynvml():
    from cuagent.backends import nvml
    driver = nvml.make_driver([0], 0)
    desc = driver.device(0)
    pynvml.nvmlInit()
    try:
        h = pynvml.nvmlDeviceGetHandleByIndex(0)
        assert desc.id == pynvml.nvmlDeviceGetUUID(h)
        assert desc.model == pynvml.nvmlDeviceGetName(h)
        assert desc.memory_bytes == pynvml.nvmlDeviceGetMemoryInfo(h).total
        assert desc.pci == pynvml.nvmlDeviceGetPciInfo(h).busId
        names = [c.name for c in desc.counters]
        status, values, detail = _core.driver_read(driver, 0, -1)
        assert status == "ok", detail
        v = {name: float(a[0]) for name, a in values.items()}  # no MIG: one float per counter
        temp = pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU)
        mem_clock = pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_MEM) * 1e6
        assert abs(v["temp"] - temp) <= 2
        assert v["mem_clock"] == pytest.approx(mem_clock, rel=0.05)
        assert v["power"] == pytest.approx(pynvml.nvmlDeviceGetPowerUsage(h) / 1000, rel=0.3, abs=30)
        if "sm_active" in names:
            time.sleep(0.2)
            _, values, _ = _core.driver_read(driver, 0, -1)
            assert 0.0 <= float(values["sm_active"][0]) <= 1.0
    finally:
        pynvml.nvmlShutdown()


@_in_subprocess
def test_sm_layout_probe_runs():
    pynvml.nvmlInit()
    try:
        h = pynvml.nvmlDeviceGetHandleByIndex(0)
        pci = pynvml.nvmlDeviceGetPciInfo(h).busId
        if pynvml.nvmlDeviceGetCudaComputeCapability(h)[0] < 9:
            print("thread-block clusters need compute capability 9.0+")
            raise SystemExit(3)
    finally:
        pynvml.nvmlShutdown()
    layout, why = _core.probe_sm_layout(pci)
    assert layout is not None, why
    assert layout["tpcs"] == layout["units"] // 2
    assert 1 < layout["gpcs"] < layout["units"]
    assert len(layout["gpc"]) == layout["units"]
    print(layout["gpcs"], layout["tpcs"], layout["notes"])
