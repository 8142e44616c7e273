"""Running test code in a fresh interpreter: for code that could deadlock (a hang fails with a
clear message instead of hanging the suite), and for code that must load a fake vendor library
before anything else in the process does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Optional

import pytest


def run_python(code: str, *args: object, env: Optional[Mapping[str, str]] = None, timeout: float = 60.0,
               what: str = "test subprocess") -> subprocess.CompletedProcess:
    """Run `code` with `args` as sys.argv[1:]; fail on a non-zero exit or after `timeout` s."""
    return _run(["-c", code, *map(str, args)], env, timeout, what)


def run_script(script: Path, *args: object, timeout: float = 60.0, what: str = "test script") -> subprocess.CompletedProcess:
    """Run the Python file `script` with `args`, under the same rules as :func:`run_python`."""
    return _run([str(script), *map(str, args)], None, timeout, what)


def _run(argv: list[str], env: Optional[Mapping[str, str]], timeout: float, what: str) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{what} did not finish within {timeout:.0f} s (deadlock?): {exc.stderr!r}")
    assert proc.returncode == 0, f"{what} exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def last_json(proc: subprocess.CompletedProcess) -> Any:
    """The JSON document on the last line the subprocess printed."""
    return json.loads(proc.stdout.strip().splitlines()[-1])
