"""Compiling a fake vendor library (one C file, tests/fakes) into a shared object, for the AMD
fake hosts (rocm.py, amdsmi.py) and the fake libcuda (test_sm_layout_probe.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Sequence


def build_fake_library(source: Path, out: Path, omit: Sequence[str] = (), includes: Sequence[Path] = ()) -> Path:
    """cc -shared -fPIC `source` into `out`; `omit` names the FAKE_OMIT_* guards to define (functions
    the emulated release lacks); `includes` are header folders (a vendor's real headers)."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise RuntimeError(f"no C compiler (cc, gcc or clang) on PATH to build {out.name}")
    out.parent.mkdir(parents=True, exist_ok=True)
    defines = [f"-DFAKE_OMIT_{name}" for name in omit]
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-Wall", *defines, *(f"-I{path}" for path in includes),
                    "-o", str(out), str(source), "-lpthread"], check=True)
    return out
