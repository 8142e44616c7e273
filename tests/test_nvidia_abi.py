"""The NVIDIA vendor API slices cuagent declares by hand, against NVIDIA's real headers.

The nvml driver, the SM-layout probe and the CUPTI PM-sampling source declare the
NVML, CUDA driver API and CUPTI functions, structs and constants they use
(cpp/src/drivers/nvml/nvml_api.hpp, nvml_library.hpp, cuda_api.hpp,
cpp/src/drivers/cupti/cupti_api.hpp, cupti_library.hpp), so that cuagent builds
without the CUDA toolkit. A wrong declaration would show only on a real GPU.
cpp/tests/abi/nvidia_abi_check.cpp and cupti_abi_check.cpp compare each of them
with nvml.h, cuda.h and the CUPTI 12.9 headers at compile time; the headers come
from NVIDIA's nvidia-nvml-dev-cu12, nvidia-cuda-runtime-cu12 and
nvidia-cuda-cupti-cu12 wheels (test dependencies), so no GPU, driver or toolkit
is needed.
"""
from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
ABI = ROOT / "cpp" / "tests" / "abi"
DRIVERS = ROOT / "cpp" / "src" / "drivers"


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


def compile_check(check: str, drivers: pathlib.Path = DRIVERS) -> subprocess.CompletedProcess[str]:
    includes = [wheel_include("nvidia.nvml_dev", "nvidia-nvml-dev-cu12"),
                wheel_include("nvidia.cuda_runtime", "nvidia-cuda-runtime-cu12"),
                wheel_include("nvidia.cuda_cupti", "nvidia-cuda-cupti-cu12"), ABI, drivers]
    command = [compiler(), "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror",
               *(f"-I{path}" for path in includes), str(ABI / check)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("check", ["nvidia_abi_check.cpp", "cupti_abi_check.cpp"])
def test_our_declarations_equal_the_real_headers(check):
    built = compile_check(check)
    assert built.returncode == 0, built.stderr


# (header under cpp/src/drivers, text, replacement, what the compiler must say)
BREAKAGES = [
    # A field of another size (the next field's offset stays: padding).
    ("nvml/nvml_api.hpp", "char busIdLegacy[16];", "char busIdLegacy[15];",
     "ours::PciInfo.busIdLegacy: another size"),
    # A field moved.
    ("nvml/nvml_api.hpp", "unsigned long long total, reserved, free, used;",
     "unsigned long long reserved, total, free, used;", "ours::MemoryV2.total: at another offset"),
    # A constant off by one.
    ("nvml/nvml_api.hpp", "kGpmSmOccupancy = 3;", "kGpmSmOccupancy = 4;", "kGpmSmOccupancy differs from the real"),
    # A parameter of the wrong width.
    ("nvml/nvml_library.hpp", "X(nvmlDeviceGetPowerUsage, Return, (Device, unsigned int*))",
     "X(nvmlDeviceGetPowerUsage, Return, (Device, unsigned long long*))",
     "nvmlDeviceGetPowerUsage: a parameter or the return type differs"),
    # A parameter dropped.
    ("nvml/nvml_library.hpp", "X(nvmlDeviceGetClockInfo, Return, (Device, int, unsigned int*))",
     "X(nvmlDeviceGetClockInfo, Return, (Device, unsigned int*))",
     "nvmlDeviceGetClockInfo: our declaration has another parameter count"),
    # The launch attribute losing cuda.h's 8-byte alignment.
    ("nvml/cuda_api.hpp", "union alignas(8) CUlaunchAttributeValue", "union CUlaunchAttributeValue",
     "ours_cuda::CUlaunchAttributeValue: another size"),
    # CUPTI: two fields of one size swapped (structSize, which test_cupti_real compares, stays).
    ("cupti/cupti_api.hpp", "std::size_t configSize;\n    const std::uint8_t* pConfig;",
     "const std::uint8_t* pConfig;\n    std::size_t configSize;", "ours::PmSetConfigParams.pConfig: at another offset"),
    # CUPTI: enum values.
    ("cupti/cupti_api.hpp", "kKeepOldest = 0, kKeepLatest = 1", "kKeepOldest = 1, kKeepLatest = 0",
     "static_cast<int>(ours::kKeepOldest) differs from the real"),
    # CUPTI: a function given another params struct.
    ("cupti/cupti_library.hpp", "X(PmStart, cuptiPmSamplingStart, Result, (PmObjectParams*))",
     "X(PmStart, cuptiPmSamplingStart, Result, (PmEnableParams*))",
     "cuptiPmSamplingStart: a parameter or the return type differs"),
]


@pytest.mark.parametrize("header, text, replacement, message", BREAKAGES)
def test_a_declaration_that_differs_from_the_header_fails_the_check(tmp_path, header, text, replacement, message):
    # The check can fail: a copy of our declarations with one of them broken.
    drivers = tmp_path / "drivers"
    shutil.copytree(DRIVERS, drivers)
    path = drivers / header
    source = path.read_text()
    assert source.count(text) == 1, f"{text!r} is not in {header} once: the test is out of date"
    path.write_text(source.replace(text, replacement))
    check = "cupti_abi_check.cpp" if header.startswith("cupti/") else "nvidia_abi_check.cpp"
    built = compile_check(check, drivers)
    assert built.returncode != 0
    assert message in built.stderr
