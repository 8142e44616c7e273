"""pynvml slow path (processes, MIG inventory, MIG layout change) against the fake."""
from __future__ import annotations

import os

import pytest

from cuagent import _core  # noqa: E402,F401 — a missing extension fails the suite, never skips it
from cuagent.backends import nvml  # noqa: E402


@pytest.fixture
def slow_path(fake_nvml):
    def start(script: str):
        fake_nvml.load(fake_nvml.script(script))
        sp = nvml.NvmlSlowPath(str(fake_nvml.library))
        opened.append(sp)
        return sp
    opened: list = []
    yield start
    for sp in opened:
        sp.close()


def test_processes_with_names_and_bytes(slow_path):
    me = os.getpid()
    sp = slow_path(f"devices 2\nprocess 0 {me} 81 25 1073741824\n")
    (p,) = sp.processes(0)
    assert p["pid"] == me and p["sm"] == pytest.approx(0.81)
    assert p["mem"] == 1073741824
    import psutil
    assert p["name"] == psutil.Process(me).name()
    # Nothing ran on device 1: NVML says Not Found, which is an empty list.
    assert sp.processes(1) == []


def test_processes_under_mig_leave_sm_out(slow_path):
    sp = slow_path("mig 0 1 3g.40gb 60 40320 0 4 1\nprocess 0 1 50 10 4096\n")
    (p,) = sp.processes(0)
    assert "sm" not in p and p["mem"] == 4096


def test_mig_inventory(slow_path):
    sp = slow_path("mig 0 1 3g.40gb 60 40320 0 4 1\nmig 0 2 2g.20gb 32 20096 4 2 1\n")
    inv = sp.mig_inventory(0)
    assert inv == [
        {"id": "1", "profile": "MIG 3g.40gb", "units": 60, "memory_bytes": 40320 * 1048576,
         "placement": {"start": 0, "size": 4}, "compute_instances": 1},
        {"id": "2", "profile": "MIG 2g.20gb", "units": 32, "memory_bytes": 20096 * 1048576,
         "placement": {"start": 4, "size": 2}, "compute_instances": 1},
    ]


def test_mig_layout_change_is_reported_once(slow_path, fake_nvml):
    sp = slow_path("mig 0 1 3g.40gb 60 40320 0 4 1\n")
    assert sp.mig_layout_changed() is False
    fake_nvml.load(fake_nvml.script("mig 0 1 3g.40gb 60 40320 0 4 1\nmig 0 2 2g.20gb 32 20096 4 2 1\n",
                                    name="after.txt"))
    assert sp.mig_layout_changed() is True
    assert sp.mig_layout_changed() is False
    fake_nvml.load(fake_nvml.script("", name="off.txt"))  # MIG turned off
    assert sp.mig_layout_changed() is True


def test_compute_instance_names_map_to_gpu_instance_profiles():
    assert nvml._gpu_instance_profile("NVIDIA H100 80GB HBM3 MIG 1c.3g.40gb") == "MIG 3g.40gb"
    assert nvml._gpu_instance_profile("NVIDIA H100 80GB HBM3 MIG 3g.40gb") == "MIG 3g.40gb"
    assert nvml._gpu_instance_profile("NVIDIA H100 80GB HBM3") == ""


def test_make_driver_rejects_bad_devices():
    with pytest.raises(ValueError, match="NVML indices"):
        nvml.make_driver(["GPU-0"], 0)
    with pytest.raises(ValueError, match="repeat"):
        nvml.make_driver([1, 1], 0)
