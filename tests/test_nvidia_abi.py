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

The fake libnvidia-ml the tests run the driver against (tests/fakes/fake_nvml.c)
is compiled against nvml.h too: each function it exports must have NVML's exact
signature, and each struct it fills is nvml.h's.
"""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest

import nvml_fake

ROOT = pathlib.Path(__file__).resolve().parents[1]
ABI = ROOT / "cpp" / "tests" / "abi"
DRIVERS = ROOT / "cpp" / "src" / "drivers"


def wheel_include(module: str, wheel: str) -> pathlib.Path:
    include = nvml_fake.wheel_include(module)
    if include is None:
        pytest.skip(f"{wheel} (a test dependency) is not installed")
    return include


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


# The fake libnvidia-ml against nvml.h. -Wmissing-prototypes: an exported function that
# nvml.h does not declare (a misspelt or invented NVML name) fails too, not only one that
# conflicts with the header's declaration.
FAKE_STRICT = ["-Wextra", "-Wmissing-prototypes", "-Werror"]


def compile_fake(variant: str, source: pathlib.Path, out: pathlib.Path) -> subprocess.CompletedProcess[str]:
    wheel_include("nvidia.nvml_dev", "nvidia-nvml-dev-cu12")
    if nvml_fake.compiler() is None:
        pytest.skip("no C compiler (cc) to build the fake libnvidia-ml")
    command = nvml_fake.build_command(variant, out, source)
    assert "-DFAKE_NVML_REAL_HEADER" in command, command
    # C-locale messages: the names in them are quoted the same everywhere.
    return subprocess.run([*command, *FAKE_STRICT], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "LC_ALL": "C"})


@pytest.mark.parametrize("variant", sorted(nvml_fake.VARIANTS))
def test_the_fake_nvml_compiles_against_the_real_header(tmp_path, variant):
    built = compile_fake(variant, nvml_fake.SOURCE, tmp_path / "libnvidia-ml.so.1")
    assert built.returncode == 0, built.stderr
    # And nvml.h is what it compiled against, not the fake's own declarations.
    command = nvml_fake.build_command(variant, tmp_path / "unused", nvml_fake.SOURCE)
    deps = subprocess.run([command[0], "-M", *(a for a in command if a.startswith(("-D", "-I"))),
                           str(nvml_fake.SOURCE)], capture_output=True, text=True, timeout=120)
    assert deps.returncode == 0, deps.stderr
    assert str(nvml_fake.nvml_include() / "nvml.h") in deps.stdout.replace("\\\n", " ")


# (text in fake_nvml.c, replacement, what the compiler's errors must name)
FAKE_BREAKAGES = [
    # An enum parameter declared int (nvml.h's enums are unsigned int to GCC and Clang).
    ("nvmlDeviceGetTemperature(nvmlDevice_t d, nvmlTemperatureSensors_t sensor,",
     "nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor,", ["'nvmlDeviceGetTemperature'"]),
    # An out-parameter of another width.
    ("nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned* mw)",
     "nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned long long* mw)", ["'nvmlDeviceGetPowerUsage'"]),
    # The struct of another version (its fields the fake fills exist in both).
    ("nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t* mem)",
     "nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_v2_t* mem)", ["'nvmlDeviceGetMemoryInfo'"]),
    # A struct filled with a field the real one lacks (nvmlProcessDetail_v1_t has it).
    (".computeInstanceId = 0xFFFFFFFFu};",
     ".computeInstanceId = 0xFFFFFFFFu, .usedGpuCcProtectedMemory = 0};",
     ["nvmlProcessInfo_t", "usedGpuCcProtectedMemory"]),
    # An exported NVML name that nvml.h does not declare.
    ("API nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(", "API nvmlReturn_t nvmlDeviceGetMemoryInfo_v9(",
     ["'nvmlDeviceGetMemoryInfo_v9'"]),
]


@pytest.mark.parametrize("text, replacement, names", FAKE_BREAKAGES)
def test_a_fake_nvml_that_differs_from_the_header_does_not_compile(tmp_path, text, replacement, names):
    # The check can fail: a copy of the fake with one signature or struct use broken.
    source = nvml_fake.SOURCE.read_text()
    assert source.count(text) == 1, f"{text!r} is not in fake_nvml.c once: the test is out of date"
    broken = tmp_path / "fake_nvml.c"
    broken.write_text(source.replace(text, replacement))
    built = compile_fake("full", broken, tmp_path / "libnvidia-ml.so.1")
    assert built.returncode != 0
    errors = [line for line in built.stderr.splitlines() if "error" in line]
    assert any(all(name in line for name in names) for line in errors), built.stderr
