"""The profiling control socket (`cuagent profiling pause|resume|status`) belongs to the agent
that made it: a second start, or `run --check` of a new configuration, never takes it over,
which left the running agent unreachable when an ncu session needed its counters released."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cuagent import profiling
from feed_support import WAIT_S, _env


def test_a_live_control_socket_is_not_taken_over_and_a_stale_one_is_reused(tmp_path: Path):
    path = str(tmp_path / "prof.sock")
    first = profiling.ControlServer(path)
    try:
        with pytest.raises(RuntimeError, match="in use by a running process"):
            profiling.ControlServer(path)  # was: unlinked the first one's file and bound its own
        assert "sources" in profiling.request(path, "status")  # the first still answers
    finally:
        first.close()
    # A socket file left by a process that died: reused.
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)
    dead.close()
    second = profiling.ControlServer(path)
    try:
        assert "sources" in profiling.request(path, "status")
    finally:
        second.close()


def test_run_check_reports_the_control_socket_without_binding_it(fake_nvml, tmp_path: Path):
    path = str(tmp_path / "prof.sock")
    running = profiling.ControlServer(path)  # the running agent's
    try:
        r = subprocess.run([sys.executable, "-m", "cuagent.cli", "run", "--check", "--log-level", "warning",
                            "--driver", "nvml", "--nvml-library", str(fake_nvml.library), "--profiling-socket", path,
                            "--feed", f"ipc://{tmp_path}/c.feed", "--sync", f"ipc://{tmp_path}/c.sync"],
                           capture_output=True, text=True, timeout=WAIT_S + 10, env=_env())
        assert r.returncode == 0, r.stderr
        assert f"  profiling control socket: {path}, in use by a running process" in r.stdout, r.stdout
        assert "sources" in profiling.request(path, "status")
    finally:
        running.close()
