"""The agent's use of the NVML slow path (cuagent.slow_path) against the fake, in-process:
rate-limited process lists, absent (not empty) when NVML cannot list processes."""
from __future__ import annotations

import os

import pytest

from cuagent import _core  # noqa: E402,F401 — a missing extension fails the suite, never skips it
from cuagent.slow_path import NvmlSlowPathPoller, SlowPath  # noqa: E402


@pytest.fixture
def poller(fake_nvml):
    made = []

    def start(script: str, **kw):
        fake_nvml.load(fake_nvml.script(script))
        p = NvmlSlowPathPoller(str(fake_nvml.library), clock=lambda: 0.0, **kw)
        made.append(p)
        return p

    yield start
    for p in made:
        p.close()


def test_processes_are_reused_within_the_interval(poller, fake_nvml):
    p = poller(f"devices 1\nprocess 0 {os.getpid()} 40 10 4096\n", process_interval_s=1.0)
    first = p.processes(0, now=10.0)
    assert [e["pid"] for e in first] == [os.getpid()]
    calls = fake_nvml.calls("nvmlDeviceGetComputeRunningProcesses_v3")
    assert p.processes(0, now=10.9) is first  # within the interval: the same list, no NVML call
    assert fake_nvml.calls("nvmlDeviceGetComputeRunningProcesses_v3") == calls
    p.processes(0, now=11.0)
    assert fake_nvml.calls("nvmlDeviceGetComputeRunningProcesses_v3") > calls


def test_processes_absent_when_nvml_cannot_list_them(poller):
    p = poller("devices 1\nfail * nvmlDeviceGetComputeRunningProcesses_v3 3\n"
               "fail * nvmlDeviceGetProcessUtilization 3\n")
    assert p.processes(0, now=1.0) is None


def test_processes_absent_when_the_gpu_is_lost(poller):
    p = poller("devices 2\nlost 1 calls 0\n")
    assert p.processes(1, now=1.0) is None
    assert p.processes(0, now=1.0) == []


def test_topology_poll_is_rate_limited_and_reports_a_change_once(poller, fake_nvml):
    p = poller("mig 0 1 3g.40gb 60 40320 0 4 1\n", topology_poll_s=5.0)
    fake_nvml.load(fake_nvml.script("", name="off.txt"))  # MIG turned off
    assert p.topology_changed(now=4.9) is False  # not due yet
    assert p.topology_changed(now=5.0) is True
    assert p.topology_changed(now=10.0) is False


def test_the_base_slow_path_offers_nothing():
    assert SlowPath().processes(0, 0.0) is None and SlowPath().topology_changed(0.0) is False
