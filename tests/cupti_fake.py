"""Build the fake libcupti (tests/fakes/fake_cupti.c) and drive the CUPTI source against it.

The fake is dlopen'd by the source in place of the real libcupti; a test steers
it from the same process through ctypes (the loader hands both the same copy).
Runs go in a subprocess with a timeout: the source has a thread of its own.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

from isolated import last_json, run_python

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "fakes" / "fake_cupti.c"
NVPERF_HOST = HERE / "fakes" / "fake_nvperf_host.c"


def compiler() -> str | None:
    return shutil.which(os.environ.get("CC", "cc"))


def build(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "libcupti.so.12"
    subprocess.run([compiler() or "cc", "-shared", "-fPIC", "-O2", "-fvisibility=hidden", "-Wall",
                    "-Wl,-soname,libcupti.so.12", "-o", str(target), str(SOURCE), "-ldl"],
                   check=True, capture_output=True, text=True)
    return target


def build_nvperf_host(out_dir: Path) -> Path:
    """A stand-in libnvperf_host.so in `out_dir` (the fake libcupti reports which one it loaded)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "libnvperf_host.so"
    subprocess.run([compiler() or "cc", "-shared", "-fPIC", "-O2", "-fvisibility=hidden", "-Wall",
                    "-Wl,-soname,libnvperf_host.so", "-o", str(target), str(NVPERF_HOST)],
                   check=True, capture_output=True, text=True)
    return target


# What every run script starts with: the fake under `fake`, the source's
# factory bound to it, and a bounded wait.
PRELUDE = """
import ctypes, json, sys, time
from cuagent import _core
LIB = sys.argv[1]
fake = ctypes.CDLL(LIB) if LOAD_FAKE else None
if fake is not None:
    fake.fake_cupti_fail.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
    fake.fake_cupti_set_active.argtypes = [ctypes.c_double] * 3
    fake.fake_cupti_log.restype = ctypes.c_size_t
    fake.fake_cupti_log.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    fake.fake_cupti_set_phase.argtypes = [ctypes.c_uint64]
    fake.fake_cupti_first_start_unix.restype = ctypes.c_int64
    fake.fake_cupti_nvperf_host.restype = ctypes.c_size_t
    fake.fake_cupti_nvperf_host.argtypes = [ctypes.c_char_p, ctypes.c_size_t]

def nvperf_host():
    buf = ctypes.create_string_buffer(4096)
    fake.fake_cupti_nvperf_host(buf, len(buf))
    return buf.value.decode()

def calls():
    buf = ctypes.create_string_buffer(1 << 16)
    fake.fake_cupti_log(buf, len(buf))
    return buf.value.decode().split()

def fail(name, result, count=-1):
    fake.fake_cupti_fail(name.encode(), result, count)

def source(**kw):
    kw.setdefault("retry_min_ns", 50_000_000)
    kw.setdefault("retry_max_ns", 200_000_000)
    return _core.make_cupti_source(library=[LIB], **kw)

def wait(pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False

def state(src, i=0):
    return src.status()[i]["state"]
"""


def run(library: Path, body: str, timeout: float = 90.0, env: dict[str, str] | None = None,
        load_fake: bool = True) -> Any:
    code = f"LOAD_FAKE = {load_fake!r}\n" + PRELUDE + textwrap.dedent(body)
    return last_json(run_python(code, library, env=env, timeout=timeout, what="cupti source run"))
