"""Build and script the fake libnvidia-ml (tests/fakes/fake_nvml.c).

The fake is compiled once per variant per test session with the system C
compiler; each test scripts it with a small text file (see the header of
fake_nvml.c for the directives) passed through $FAKE_NVML_SCRIPT or loaded
in-process with fake_nvml_load(). Where NVIDIA's nvml.h is installed (the
nvidia-nvml-dev-cu12 wheel, a test dependency) the fake is compiled against it,
so a signature or struct of the fake that differs from NVML's does not build.
"""
from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "fakes" / "fake_nvml.c"
TRACE_JSON = HERE / "data" / "h100-nvml-trace.json"

# Build variants: name -> preprocessor flags (see fake_nvml.c).
VARIANTS = {
    "full": [],
    "no_gpm": ["-DFAKE_NO_GPM"],
    "no_power": ["-DFAKE_OMIT_POWER"],
    "old_driver": ["-DFAKE_OMIT_EVENT_REASONS", "-DFAKE_NO_GPM"],
    "broken": ["-DFAKE_NO_INIT"],
}

# Columns of the replayed trace, as the fake names its keys.
TRACE_KEYS = [
    "util_gpu", "util_mem", "mem_used", "power_w", "temp_c", "sm_clock_hz", "mem_clock_hz",
    "throttle_mask", "sm_active", "sm_occupancy", "tensor_active", "dram_active", "gr_active",
    "pcie_tx_mib_s", "pcie_rx_mib_s",
]


def compiler() -> str | None:
    return shutil.which(os.environ.get("CC", "cc"))


def wheel_include(module: str) -> Path | None:
    """The include folder of an NVIDIA headers wheel (e.g. nvidia.nvml_dev), None if not installed."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "include"


def nvml_include() -> Path | None:
    """Where nvml.h is: the nvidia-nvml-dev-cu12 wheel's include folder, None without it."""
    include = wheel_include("nvidia.nvml_dev")
    return include if include is not None and (include / "nvml.h").is_file() else None


def build_command(variant: str, target: Path, source: Path = SOURCE) -> list[str]:
    """The compiler command for one variant; against the real nvml.h where it is installed."""
    include = nvml_include()
    header = ["-DFAKE_NVML_REAL_HEADER", f"-I{include}"] if include is not None else []
    return [compiler() or "cc", "-shared", "-fPIC", "-O2", "-fvisibility=hidden",
            "-Wall", "-Wno-format-truncation", "-Wl,-soname,libnvidia-ml.so.1",
            *header, *VARIANTS[variant], "-o", str(target), str(source)]


def build(variant: str, out_dir: Path) -> Path:
    """Compile one variant into out_dir/<variant>/libnvidia-ml.so.1."""
    target_dir = out_dir / variant
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / "libnvidia-ml.so.1"
    built = subprocess.run(build_command(variant, target), capture_output=True, text=True)
    if built.returncode != 0:
        # The compiler's words (a signature that conflicts with nvml.h, say) belong in the failure.
        raise RuntimeError(f"building the fake libnvidia-ml ({variant}) failed:\n{built.stderr}")
    return target


def trace_table(path: Path) -> Path:
    """Write the real H100 trace as the fake's replay table (one row per 100 ms)."""
    rows = json.loads(TRACE_JSON.read_text())["rows"]
    lines = [" ".join(TRACE_KEYS)]
    lines += [" ".join(repr(float(row[k])) for k in TRACE_KEYS) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def trace_rows() -> list[dict]:
    return json.loads(TRACE_JSON.read_text())["rows"]


@dataclass
class FakeNvml:
    """One compiled variant plus a directory for scripts."""

    library: Path
    work: Path

    def script(self, text: str, name: str = "script.txt") -> Path:
        path = self.work / name
        path.write_text(text)
        return path

    def env(self, script: Path | None) -> dict[str, str]:
        """Environment for a subprocess that should see this fake (pynvml included)."""
        env = dict(os.environ)
        env["FAKE_NVML_SCRIPT"] = str(script) if script else ""
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            [str(self.library.parent), env.get("LD_LIBRARY_PATH", "")]).rstrip(os.pathsep)
        return env

    def cdll(self) -> ctypes.CDLL:
        return ctypes.CDLL(str(self.library))

    def load(self, script: Path | None) -> ctypes.CDLL:
        """Re-script the copy of the fake loaded in this process."""
        lib = self.cdll()
        lib.fake_nvml_load.argtypes = [ctypes.c_char_p]
        rc = lib.fake_nvml_load(str(script).encode() if script else None)
        assert rc == 0, f"fake_nvml_load({script}) failed"
        return lib

    def calls(self, function: str) -> int:
        lib = self.cdll()
        lib.fake_nvml_calls.restype = ctypes.c_long
        lib.fake_nvml_calls.argtypes = [ctypes.c_char_p]
        return int(lib.fake_nvml_calls(function.encode()))
