"""The SM-layout probe's whole CUDA path, against a fake libcuda built with NVIDIA's real cuda.h.

tests/fakes/fake_cuda.c places each launch's thread-block clusters the way the H100 measured
in tests/data/h100-sxm-layout.json did, reading the probe's launch config, attributes and
kernel parameters in cuda.h's real layout. So this runs what test_nvml_gpu.py runs on a GPU:
the library lookups, the primary context (pushed, then popped: the caller's current context
is current again), the cluster-size sweep (with the non-portable
opt-in above 8), and the grouping of what the "kernel" wrote.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from fakes.build import build_fake_library
from isolated import last_json, run_python

HERE = Path(__file__).parent
LAYOUT = json.loads((HERE / "data" / "h100-sxm-layout.json").read_text())
BUS = "00000000:18:00.0"


def cuda_include() -> Path:
    spec = importlib.util.find_spec("nvidia.cuda_runtime")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("nvidia-cuda-runtime-cu12 (a test dependency, for cuda.h) is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "include"


@pytest.fixture(scope="module")
def fake_cuda(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fake_cuda") / "libcuda.so.1"
    return build_fake_library(HERE / "fakes" / "fake_cuda.c", out, includes=[cuda_include()])


def h100(tmp_path: Path, *extra: str) -> Path:
    """The measured H100 as the fake's layout script, plus `extra` directives."""
    lines = [f"units {LAYOUT['units']}", f"bus {BUS}"]
    lines += ["group 16 " + " ".join(map(str, g)) for g in LAYOUT["gpc_groups_cluster16"]]
    lines.append("group 8 " + " ".join(map(str, LAYOUT["group_max_cluster_8"])))
    script = tmp_path / "layout.txt"
    script.write_text("\n".join([*lines, *extra]) + "\n")
    return script


# In a fresh interpreter: a probe whose structs drifted from cuda.h can crash (it would hand the
# fake a count where cuda.h has a pointer), which must fail one test, not the run.
PROBE = """
import ctypes, json, os, sys
from cuagent import _core
fake, bus, launches, script = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
library = ctypes.CDLL(fake)  # held open, so the fake's state outlives the probe's dlclose
library.fake_cuda_current.restype = ctypes.c_void_p
# The caller's own context, current on this thread before the probe: current again after it.
library.cuInit(0)
mine = 0x5EED
assert library.cuCtxPushCurrent_v2(ctypes.c_void_p(mine)) == 0
os.environ["FAKE_CUDA_LAYOUT"] = script  # read at the probe's cuInit: its faults are the probe's only
layout, why = _core.probe_sm_layout(bus, cuda_library=fake, launches_per_size=launches)
print(json.dumps([layout, why, library.fake_cuda_leaks(), library.fake_cuda_current() == mine]))
"""


def probe(fake_cuda: Path, script: Path, bus: str = BUS, launches: int = 20):
    env = {k: v for k, v in os.environ.items() if k != "FAKE_CUDA_LAYOUT"}
    return last_json(run_python(PROBE, fake_cuda, bus, launches, script, env=env, what="SM-layout probe"))


def test_the_probe_finds_the_measured_h100_layout(fake_cuda, tmp_path):
    layout, why, leaks, restored = probe(fake_cuda, h100(tmp_path))
    assert layout is not None, why
    assert leaks == 0  # context released and popped, module unloaded
    assert restored  # the caller's context is current again
    gpc, tpc = layout["gpc"], layout["tpc"]
    assert layout["units"] == 132 and layout["tpcs"] == 66
    assert all(tpc[2 * k] == tpc[2 * k + 1] for k in range(66))
    groups = [set(g) for g in LAYOUT["gpc_groups_cluster16"]] + [set(LAYOUT["group_max_cluster_8"])]
    ids = [{gpc[s] for s in g} for g in groups]
    assert all(len(i) == 1 for i in ids) and len({next(iter(i)) for i in ids}) == 8
    # SMs 124-131 only ever ran clusters of 2: one group per TPC, never guessed into a GPC.
    assert len({gpc[s] for s in LAYOUT["never_in_cluster_above_2"]}) == 4
    assert layout["gpcs"] == 12


def test_without_the_non_portable_opt_in_the_sweep_stops_at_8(fake_cuda, tmp_path):
    # The attribute call fails: clusters of 9 are refused, and the probe keeps what sizes 2-8 showed.
    layout, why, leaks, restored = probe(fake_cuda, h100(tmp_path, "fail cuFuncSetAttribute 1"))
    assert layout is not None, why
    assert leaks == 0
    assert any(n.startswith("clusters of 9 could not launch: cuLaunchKernelEx: invalid cluster size (912)")
               for n in layout["notes"]), layout["notes"]
    assert layout["tpcs"] == 66


def test_a_gpu_before_hopper_is_refused_by_its_compute_capability(fake_cuda, tmp_path):
    layout, why, leaks, restored = probe(fake_cuda, h100(tmp_path, "major 8"))
    assert layout is None
    assert why == "compute capability 8.x has no thread-block clusters (needs 9.0+)"
    assert leaks == 0


def test_a_bus_id_cuda_does_not_know_is_named(fake_cuda, tmp_path):
    layout, why, _, _ = probe(fake_cuda, h100(tmp_path), bus="00000000:3B:00.0")
    assert layout is None
    assert why == "cuDeviceGetByPCIBusId(00000000:3B:00.0): invalid device ordinal (101)"


@pytest.mark.parametrize("function, code, says", [
    ("cuDevicePrimaryCtxRetain", 2, "cuDevicePrimaryCtxRetain: CUDA error (2)"),
    ("cuCtxPushCurrent", 201, "cuCtxPushCurrent: invalid device context (201)"),
    ("cuModuleLoadData", 218, "cuModuleLoadData (probe PTX): CUDA error (218)"),
    ("cuLaunchKernelEx", 719, "cuLaunchKernelEx: CUDA error (719)"),
    ("cuCtxSynchronize", 700, "probe kernel: CUDA error (700)"),
])
def test_a_failing_call_is_named_and_the_context_released(fake_cuda, tmp_path, function, code, says):
    layout, why, leaks, restored = probe(fake_cuda, h100(tmp_path, f"fail {function} {code}"))
    assert layout is None
    assert why == says
    assert leaks == 0 and restored
