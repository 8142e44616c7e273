"""`cuagent run` on the real backends, against the fake vendor libraries, checked on the wire:
NVML (device-level state, processes, a GPU lost, a MIG layout change); the AMD backends'
feeds are in test_amd_agents.py. Every message goes through the protocol checker."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import msgpack
import psutil
import pytest

from feed_support import CheckedAgents, CheckedFeed, request, start_real_agent

FAKES = Path(__file__).resolve().parent / "fakes"


def _devices(feed: CheckedFeed) -> list[dict]:
    return feed.of("topo")[-1][4]["devices"]


def _latest_states(feed: CheckedFeed) -> dict[str, dict]:
    return {m[2]: m[4] for m in feed.of("state")}


@pytest.fixture
def nvml_agent(fake_nvml, tmp_path):
    agents = CheckedAgents()

    def start(script: str, *extra: str, launcher: list[str] | None = None, flags: tuple[str, ...] = ()):
        path = fake_nvml.script(script)
        env = {"FAKE_NVML_SCRIPT": str(path)}
        driver_args = [] if launcher else ["--driver", "nvml", "--nvml-library", str(fake_nvml.library)]
        return agents.follow(start_real_agent(tmp_path, "gpu-n", driver_args, env=env, launcher=launcher,
                                              extra=flags))

    yield start
    agents.close()


def test_nvml_topo_state_and_processes(nvml_agent):
    me = os.getpid()
    _, feed = nvml_agent(f"devices 2\nprocess 0 {me} 81 25 1073741824\n")
    feed.wait(lambda f: len({m[2] for m in f.of("state")}) == 2 and f.checker.counts["state"] >= 4,
              "state from both devices")
    devices = _devices(feed)
    assert [d["backend"] for d in devices] == ["nvml", "nvml"]
    for d in devices:
        assert d["levels"] == ["sm"] and d["unit"] == "sm" and d["units"] == 132
        assert "layout" not in d and d["layout_source"] == "none"  # no probe here: grouping unknown
        assert d["counts"] == {"sm": 132}
        assert {c["level"] for c in d["counters"].values()} == {"device"}
        assert [p["kind"] for p in d["partitions"]] == ["whole"]
    first, second = (d["id"] for d in devices)
    states = _latest_states(feed)
    for body in states.values():
        assert "levels" not in body  # NVML measures nothing below the device
        assert 0.0 <= body["device"]["sm_active"] <= 1.0 and body["device"]["power"] > 0
        assert body["idle_units"] == pytest.approx((1 - body["device"]["sm_active"]) * 132, abs=1e-3)
    (proc,) = states[first]["processes"]
    assert proc == {"pid": me, "sm": pytest.approx(0.81), "mem": 1073741824, "name": psutil.Process(me).name()}
    # Listing is supported and nothing runs on the second GPU: an empty list, not absent.
    assert states[second]["processes"] == []


def test_nvml_gpu_lost_gives_device_lost_and_the_others_go_on(nvml_agent, fake_nvml):
    # The GPU falls off the bus when the test says so (the launcher re-scripts the fake).
    trigger = fake_nvml.work / "lose"
    lost_script = fake_nvml.script("devices 3\nlost 1 calls 0\n", name="lost.txt")
    launcher = [str(FAKES / "nvml_agent.py"), str(fake_nvml.library), str(lost_script), str(trigger)]
    proc, feed = nvml_agent("devices 3\n", launcher=launcher)
    feed.wait(lambda f: len({m[2] for m in f.of("state")}) == 3, "state from all three devices")
    ids = [d["id"] for d in _devices(feed)]
    trigger.touch()
    feed.wait(lambda f: any(m[4]["type"] == "device_lost" for m in f.of("event")), "device_lost")
    (lost,) = [m for m in feed.of("event") if m[4]["type"] == "device_lost"]
    assert lost[2] == ids[1] and lost[4]["device"] == ids[1]
    at = len(feed.messages)
    feed.wait(lambda f: all(sum(1 for m in f.messages[at:] if m[0] == "state" and m[2] == i) >= 3
                            for i in (ids[0], ids[2])), "state from the other devices after the loss")
    # A window that was already closing may still go out; the lost GPU then falls silent.
    later = [m for m in feed.messages[at:] if m[0] == "state" and m[2] == ids[1]]
    assert len(later) <= 1, later


def test_nvml_mig_layout_change_rebuilds_and_bumps_gen(nvml_agent, fake_nvml):
    trigger = fake_nvml.work / "reconfigure"
    second = fake_nvml.script("mig 0 1 3g.40gb 60 40320 0 4 1\nmig 0 2 2g.20gb 32 20096 4 2 1\n", name="after.txt")
    launcher = [str(FAKES / "nvml_agent.py"), str(fake_nvml.library), str(second), str(trigger)]
    proc, feed = nvml_agent("mig 0 1 3g.40gb 60 40320 0 4 1\n", launcher=launcher, flags=("--topology-poll-s", "0.2"))
    feed.wait(lambda f: bool(f.of("state")), "a first state")
    topo0 = feed.of("topo")[-1]
    assert topo0[3]["gen"] == 1
    assert [(p["kind"], p["units"]) for p in topo0[4]["devices"][0]["partitions"]] == [("mig", 60)]
    trigger.touch()
    feed.wait(lambda f: any(m[4]["type"] == "topology_changed" for m in f.of("event")), "topology_changed")
    # A snapshot never pairs the new topo with a state of the old generation (§4: what it
    # holds is applied together).
    snap = msgpack.unpackb(request(proc.sync, {"op": "snapshot"}))
    (topo,) = [m for m in snap["messages"] if m[0].startswith("cua1/topo/")]
    assert all(m[1]["gen"] == topo[1]["gen"] == 2 for m in snap["messages"]), [m[1]["gen"] for m in snap["messages"]]
    feed.wait(lambda f: f.of("topo")[-1][3]["gen"] == 2 and f.of("state")[-1][3]["gen"] == 2,
              "topo and state of generation 2")
    parts = feed.of("topo")[-1][4]["devices"][0]["partitions"]
    assert [(p["kind"], p["units"], p["profile"]) for p in parts] == \
        [("mig", 60, "MIG 3g.40gb"), ("mig", 32, "MIG 2g.20gb")]


if sys.platform != "linux":  # pragma: no cover
    pytestmark = pytest.mark.skip("ipc endpoints and the fakes need Linux")
