"""The CUPTI PM-sampling source against the real CUPTI 12.9 host library, offline.

No GPU is needed: the host half of CUPTI (chip tables, config images, pass
counts) runs on any Linux machine. Everything goes through the source's own
config-building code (cuagent._core.cupti_offline_check), so a metric renamed
or dropped by NVIDIA, or a set that stops fitting one pass, fails here. The
params structs the source compiles with are compared with the real headers'.
"""
from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import subprocess

import pytest

from cuagent import _core

spec = importlib.util.find_spec("nvidia.cuda_cupti")
if spec is None or not spec.submodule_search_locations:
    pytest.skip("nvidia-cuda-cupti-cu12 (a test dependency) is not installed", allow_module_level=True)
WHEEL = pathlib.Path(list(spec.submodule_search_locations)[0])
LIBCUPTI = str(WHEEL / "lib" / "libcupti.so.12")


def test_every_metric_exists_on_gh100_and_the_set_is_one_pass():
    report = _core.cupti_offline_check([LIBCUPTI], "GH100")
    assert report["library"] == LIBCUPTI
    names = [name for name, _ in report["metrics"]]
    assert names == _core.cupti_metric_names()
    assert [name for name, ok in report["metrics"] if not ok] == []
    assert report["passes"] == 1
    assert report["error"] == ""


@pytest.mark.parametrize("chip", ["GA100", "AD102"])
def test_chips_without_the_triage_metrics_are_refused_by_name(chip):
    # The TPC.TriageCompute group is Hopper's; on Ampere/Ada the host library
    # rejects those names, so the source refuses the device (NVML goes on alone)
    # instead of configuring a subset nobody checked.
    report = _core.cupti_offline_check([LIBCUPTI], chip)
    rejected = [name for name, ok in report["metrics"] if not ok]
    assert "TPC.TriageCompute.sm__cycles_active.avg" in rejected
    assert report["error"].startswith("cuptiProfilerHostConfigAddMetrics: ")


def test_a_metric_the_host_library_does_not_know_is_reported():
    # The check can fail: a chip name CUPTI has no tables for rejects everything.
    report = _core.cupti_offline_check([LIBCUPTI], "NOT_A_CHIP")
    assert all(not ok for _, ok in report["metrics"])
    assert report["error"]


def compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "c++"))


@pytest.mark.skipif(compiler() is None, reason="no C++ compiler")
def test_struct_sizes_equal_the_real_headers(tmp_path):
    ours = dict(_core.cupti_struct_sizes())
    # The headers include the toolkit's <cuda.h>; the structs compared use
    # none of its types, the range profiler's (not compared) CUcontext and CUdevice.
    (tmp_path / "cuda.h").write_text("typedef struct CUctx_st* CUcontext;\ntypedef int CUdevice;\n")
    lines = ["#include <cstdio>", "#include <cupti_target.h>", "#include <cupti_profiler_target.h>",
             "#include <cupti_profiler_host.h>", "#include <cupti_pmsampling.h>", "int main() {"]
    for name in ours:
        lines.append(f'  std::printf("%s %zu\\n", "{name}", (size_t){name}_STRUCT_SIZE);')
    lines.append("  return 0;\n}")
    source = tmp_path / "sizes.cpp"
    source.write_text("\n".join(lines) + "\n")
    exe = tmp_path / "sizes"
    built = subprocess.run([compiler(), "-std=c++17", f"-I{tmp_path}", f"-I{WHEEL / 'include'}", str(source),
                            "-o", str(exe)], capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True, timeout=30).stdout
    real = {name: int(size) for name, size in (line.split() for line in out.splitlines())}
    assert len(ours) == 21
    assert ours == real
