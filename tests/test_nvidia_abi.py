"""The NVIDIA vendor API slices cuagent declares by hand, against NVIDIA's real headers.

The nvml driver and the SM-layout probe declare the NVML and CUDA driver API
functions, structs and constants they use (cpp/src/drivers/nvml/nvml_api.hpp,
nvml_library.hpp, cuda_api.hpp), so that cuagent builds without the CUDA toolkit.
A wrong declaration would show only on a real GPU. cpp/tests/abi/nvidia_abi_check.cpp
compares each of them with nvml.h and cuda.h at compile time; the headers come
from NVIDIA's nvidia-nvml-dev-cu12 and nvidia-cuda-runtime-cu12 wheels (test
dependencies), so no GPU, driver or toolkit is needed.
"""
from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHECK = ROOT / "cpp" / "tests" / "abi" / "nvidia_abi_check.cpp"


def wheel_include(module: str, wheel: str) -> pathlib.Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{wheel} (a test dependency) is not installed")
    return pathlib.Path(list(spec.submodule_search_locations)[0]) / "include"


def compiler() -> str:
    found = shutil.which(os.environ.get("CXX", "c++"))
    if found is None:
        pytest.skip("no C++ compiler")
    return found


def compile_check(drivers: pathlib.Path = ROOT / "cpp" / "src" / "drivers") -> subprocess.CompletedProcess[str]:
    includes = [wheel_include("nvidia.nvml_dev", "nvidia-nvml-dev-cu12"),
                wheel_include("nvidia.cuda_runtime", "nvidia-cuda-runtime-cu12"),
                ROOT / "cpp" / "tests" / "abi", drivers]
    command = [compiler(), "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror",
               *(f"-I{path}" for path in includes), str(CHECK)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_the_nvml_and_cuda_declarations_equal_the_real_headers():
    built = compile_check()
    assert built.returncode == 0, built.stderr


@pytest.mark.parametrize("breakage, message", [
    # A field of another size (the next field's offset stays: padding).
    ("s/char busIdLegacy\\[16\\]/char busIdLegacy[15]/", "ours::PciInfo.busIdLegacy: another size"),
    # A field moved.
    ("s/unsigned long long total, reserved, free, used;/unsigned long long reserved, total, free, used;/",
     "ours::MemoryV2.total: at another offset"),
    # A constant off by one.
    ("s/kGpmSmOccupancy = 3;/kGpmSmOccupancy = 4;/", "kGpmSmOccupancy differs from the real"),
    # A parameter of the wrong width.
    ("s/X(nvmlDeviceGetPowerUsage, Return, (Device, unsigned int\\*))/"
     "X(nvmlDeviceGetPowerUsage, Return, (Device, unsigned long long*))/",
     "nvmlDeviceGetPowerUsage: a parameter or the return type differs"),
    # A parameter dropped.
    ("s/X(nvmlDeviceGetClockInfo, Return, (Device, int, unsigned int\\*))/"
     "X(nvmlDeviceGetClockInfo, Return, (Device, unsigned int*))/",
     "nvmlDeviceGetClockInfo: our declaration has another parameter count"),
    # The launch attribute losing cuda.h's 8-byte alignment.
    ("s/union alignas(8) CUlaunchAttributeValue/union CUlaunchAttributeValue/",
     "CUlaunchAttributeValue: another size"),
])
def test_a_declaration_that_differs_from_the_header_fails_the_check(tmp_path, breakage, message):
    # The check can fail: a copy of our headers with one declaration broken.
    drivers = tmp_path / "drivers"
    shutil.copytree(ROOT / "cpp" / "src" / "drivers" / "nvml", drivers / "nvml")
    shutil.copytree(ROOT / "cpp" / "src" / "drivers" / "common", drivers / "common")
    edited = 0
    for header in ("nvml_api.hpp", "nvml_library.hpp", "cuda_api.hpp"):
        path = drivers / "nvml" / header
        before = path.read_text()
        subprocess.run(["sed", "-i", breakage, str(path)], check=True)
        edited += path.read_text() != before
    assert edited == 1, f"{breakage!r} matched no header: the test is out of date"
    built = compile_check(drivers)
    assert built.returncode != 0
    assert message in built.stderr
