"""`cuagent run --driver amdsmi` against the fake libamd_smi, checked on the wire: every
message goes through the protocol checker, and a client written from PROTOCOL.md alone
(test_external_client.PageClient) joins it. An MI300X in SPX and CPX, processes, a lost GPU,
a partition mode change, and `--driver auto` choosing AMD SMI over ROCm SMI."""

from __future__ import annotations

import sys
from pathlib import Path

import msgpack
import numpy as np
import pytest

from cuagent import config as config_mod
from cuagent.cli import make_engine
from fakes.amdsmi import FakeAmdSmiHost
from fakes.amdsmi_agent import BUSY, PROCESS
from fakes.amdsmi_fixtures import amdsmi_library  # noqa: F401
from fakes.rocm import FakeAmdHost
from fakes.rocm_fixtures import rocm_library  # noqa: F401
from feed_support import CheckedFeed, request, start_real_agent
from test_external_client import _join_and_follow

FAKES = Path(__file__).resolve().parent / "fakes"


def _bins(b: bytes, dtype: str) -> np.ndarray:
    return np.frombuffer(b, dtype)


@pytest.fixture
def amd_agent(amdsmi_library, tmp_path):  # noqa: F811
    procs, feeds = [], []

    def start(compute: str = "SPX", gpus: int = 1, flags: tuple[str, ...] = ()):
        launcher = [str(FAKES / "amdsmi_agent.py"), str(amdsmi_library), str(tmp_path), compute, str(gpus)]
        proc = start_real_agent(tmp_path, "amd-s", [], launcher=launcher, extra=flags)
        procs.append(proc)
        feed = CheckedFeed(proc)
        feeds.append(feed)
        return proc, feed

    yield start
    for feed in feeds:
        feed.close()
    for proc in procs:
        assert proc.stop() == 0, proc.log()


def test_mi300x_spx_feed_with_xcd_states_and_processes(amd_agent):
    proc, feed = amd_agent(flags=("--process-interval-s", "0.2"))
    feed.wait(lambda f: any("sm" in p for m in f.of("state") for p in m[4].get("processes", []))
              and any("levels" in m[4] for m in f.of("state")), "a state with levels.xcd and a process's sm")
    (d,) = feed.of("topo")[-1][4]["devices"]
    assert (d["vendor"], d["backend"], d["unit"], d["units"], d["model"]) == \
        ("amd", "amdsmi", "cu", 304, "AMD Instinct MI300X")
    assert d["levels"] == ["xcd", "se", "cu"] and d["counts"] == {"xcd": 8, "se": 32, "cu": 304}
    assert np.bincount(_bins(d["layout"]["xcd"], "<u2")).tolist() == [38] * 8
    assert [(p["id"], p["kind"], p["units"], p["profile"]) for p in d["partitions"]] == \
        [("0", "whole", 304, "SPX NPS1")]
    assert {"dram_active", "ecc_uncorrected", "power_violation"} <= set(d["counters"])
    body = [m[4] for m in feed.of("state") if "levels" in m[4]][-1]
    xcd = body["levels"]["xcd"]
    np.testing.assert_allclose(_bins(xcd["active"]["mean"], "<f4"), np.array(BUSY) / 100, atol=0.02)
    assert _bins(xcd["state"], "u1").tolist() == [1, 0, 0, 1, 1, 1, 1, 1]
    assert body["idle_units"] == pytest.approx(float(np.sum((1 - np.array(BUSY) / 100) * 38)), abs=3)
    pid, name, vram, _ = PROCESS
    (process,) = [m[4]["processes"] for m in feed.of("state") if any("sm" in p for p in m[4].get("processes", []))][-1]
    assert (process["pid"], process["name"], process["mem"]) == (pid, name, vram)
    # Its share of the GFX engine between two lists (the formula is checked in
    # test_amdsmi_driver.py with a scripted clock; here the real clocks of two processes).
    assert 0.0 < process["sm"] <= 1.0


def test_mi300x_cpx_feed_has_8_partitions_and_per_partition_counters(amd_agent):
    proc, feed = amd_agent("CPX")
    feed.wait(lambda f: f.checker.counts["state"] >= 3, "states")
    (d,) = feed.of("topo")[-1][4]["devices"]
    assert [(p["id"], p["kind"], p["units"]) for p in d["partitions"]] == [(str(i), "xcp", 38) for i in range(8)]
    assert d["counters"]["gr_active"]["level"] == d["counters"]["mem_used"]["level"] == "partition"
    body = feed.of("state")[-1][4]
    assert sorted(body["partition"]) == [str(i) for i in range(8)]
    assert all({"gr_active", "mem_used", "sm_active"} <= set(body["partition"][str(i)]) for i in range(8))


def test_a_lost_gpu_gives_device_lost_and_the_other_goes_on(amd_agent, tmp_path):
    proc, feed = amd_agent(gpus=2)
    feed.wait(lambda f: len({m[2] for m in f.of("state")}) == 2, "state from both GPUs")
    first, second = (d["id"] for d in feed.of("topo")[-1][4]["devices"])
    (tmp_path / "lose").touch()
    feed.wait(lambda f: any(m[4]["type"] == "device_lost" for m in f.of("event")), "device_lost")
    (lost,) = [m for m in feed.of("event") if m[4]["type"] == "device_lost"]
    assert lost[2] == second and lost[4]["device"] == second and "AMDSMI_STATUS_FILE_ERROR" in lost[4]["detail"]
    at = len(feed.messages)
    feed.wait(lambda f: sum(1 for m in f.messages[at:] if m[0] == "state" and m[2] == first) >= 3,
              "state from the other GPU after the loss")
    (tmp_path / "back").touch()
    feed.wait(lambda f: any(m[4]["type"] == "device_back" for m in f.of("event")), "device_back")


def test_a_partition_mode_change_rebuilds_and_bumps_gen(amd_agent, tmp_path):
    proc, feed = amd_agent(flags=("--topology-poll-s", "0.2"))
    feed.wait(lambda f: bool(f.of("state")), "a first state")
    assert feed.of("topo")[-1][3]["gen"] == 1
    (tmp_path / "nps4").touch()
    feed.wait(lambda f: any(m[4]["type"] == "topology_changed" for m in f.of("event")), "topology_changed")
    feed.wait(lambda f: f.of("topo")[-1][3]["gen"] == 2 and f.of("state")[-1][3]["gen"] == 2,
              "topo and state of generation 2")
    (d,) = feed.of("topo")[-1][4]["devices"]
    assert [p["profile"] for p in d["partitions"]] == ["SPX NPS4"]
    snap = msgpack.unpackb(request(proc.sync, {"op": "snapshot"}))
    assert all(m[1]["gen"] == 2 for m in snap["messages"])


@pytest.mark.parametrize("req", [False, True], ids=["dealer", "req"])
def test_a_client_written_from_the_protocol_alone_joins_it(amd_agent, req):
    proc, feed = amd_agent("CPX")
    ping = proc.wait_ping()
    client = _join_and_follow(proc.feed, proc.sync, req, {"amd-s": ping["epoch"]})
    try:
        assert client.gen["amd-s"] == 1
    finally:
        client.close()


def test_auto_prefers_amd_smi_when_both_libraries_load(amdsmi_library, rocm_library, tmp_path):  # noqa: F811
    amd = FakeAmdSmiHost(amdsmi_library, tmp_path / "kfd")
    rocm = FakeAmdHost(rocm_library, tmp_path / "kfd")  # the same GPU, so the same KFD tree
    amd.add_mi300x()
    rocm.add_mi300x()
    settings = {"amdsmi_library": str(amdsmi_library), "rocm_smi_library": str(rocm_library),
                "kfd_root": str(tmp_path / "kfd"), "nvml_library": str(tmp_path / "no-libnvidia-ml.so")}
    engine = make_engine(config_mod.build({}, {"driver": "auto", **settings}))
    assert engine.driver_name == "amdsmi" and engine.topology()[0].backend == "amdsmi"
    del engine
    # The same host without AMD SMI: ROCm SMI serves it.
    settings["amdsmi_library"] = str(tmp_path / "no-libamd_smi.so")
    engine = make_engine(config_mod.build({}, {"driver": "auto", **settings}))
    assert engine.driver_name == "rocm_smi"
    assert engine.topology()[0].id == f"amd-{amd.gpus[0].unique_id:016x}"  # the same id either way


if sys.platform != "linux":  # pragma: no cover
    pytestmark = pytest.mark.skip("ipc endpoints and the fakes need Linux")
