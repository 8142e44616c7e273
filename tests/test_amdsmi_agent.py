"""`cuagent run --driver amdsmi` against the fake libamd_smi, checked on the wire: every
message goes through the protocol checker, and a client written from PROTOCOL.md alone
(test_external_client.PageClient) joins it. A lost GPU, a partition mode change, and
`--driver auto` choosing AMD SMI over ROCm SMI; the SPX and CPX feeds both AMD backends
publish alike are in test_amd_agents.py."""

from __future__ import annotations

import functools
import sys

import msgpack
import pytest

from cuagent import config as config_mod
from cuagent.cli import make_engine
from fakes.amd_backends import AMDSMI
from fakes.amd_fixtures import AGENT_NODE, amd_agent, amdsmi_library, rocm_library  # noqa: F401
from fakes.amdsmi import FakeAmdSmiHost
from fakes.rocm import FakeAmdHost
from feed_support import request
from test_external_client import _join_and_follow


@pytest.fixture
def amdsmi_agent(amd_agent, amdsmi_library):  # noqa: F811
    """start(compute="SPX", gpus=1, flags=()) on the fake AMD SMI host."""
    return functools.partial(amd_agent, AMDSMI, amdsmi_library)


def test_a_lost_gpu_gives_device_lost_and_the_other_goes_on(amdsmi_agent, tmp_path):
    proc, feed = amdsmi_agent(gpus=2)
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


def test_a_partition_mode_change_rebuilds_and_bumps_gen(amdsmi_agent, tmp_path):
    proc, feed = amdsmi_agent(flags=("--topology-poll-s", "0.2"))
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
def test_a_client_written_from_the_protocol_alone_joins_it(amdsmi_agent, req):
    proc, feed = amdsmi_agent("CPX")
    ping = proc.wait_ping()
    client = _join_and_follow(proc.feed, proc.sync, req, {AGENT_NODE: ping["epoch"]})
    try:
        assert client.gen[AGENT_NODE] == 1
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
