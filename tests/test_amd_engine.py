"""Engine(driver=...) end to end for both AMD backends (rocm_smi, amdsmi), each against its fake
host: the same feed for the same hardware (levels.xcd with states, partitions, idle_units), an
absent counter, a lost device.

Each scenario runs in its own process with a timeout (tests/fakes/amd_engine_scenario.py),
so an engine that hangs fails here instead of hanging the suite.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fakes.amd_backends import AmdBackend
from fakes.amd_fixtures import amd, amd_library, amdsmi_library, rocm_library  # noqa: F401
from isolated import run_script

SCRIPT = Path(__file__).parent / "fakes" / "amd_engine_scenario.py"
BUSY = np.array([90.0, 0.0, 0.0, 20.0, 50.0, 60.0, 70.0, 100.0]) / 100
IDLE, ACTIVE = 0, 1


def scenario(backend: AmdBackend, name: str, library: Path, work: Path) -> dict:
    done = run_script(SCRIPT, backend.name, name, library, work,
                      what=f"{backend.name} scenario {name!r} (engine start/stop or snapshot)")
    return json.loads(done.stdout)


def test_mi300x_spx_publishes_xcd_activity_states_and_idle_units(amd, amd_library, tmp_path):
    out = scenario(amd, "spx", amd_library, tmp_path)
    assert out["backend"] == amd.name
    (topo,) = out["topology"]
    assert (topo["vendor"], topo["backend"], topo["unit"], topo["units"]) == ("amd", amd.name, "cu", 304)
    assert topo["levels"] == ["xcd", "se", "cu"] and topo["counts"] == {"xcd": 8, "se": 32, "cu": 304}
    assert topo["layout_source"] == "vendor"
    assert topo["partitions"] == [{"id": "0", "kind": "whole", "units": 304, "profile": "SPX NPS1"}]
    assert topo["counters"]["active"] == "xcd"
    state = out["state"]
    xcd = state["levels"]["xcd"]
    assert set(state["levels"]) == {"xcd"}  # the finest level AMD measures
    np.testing.assert_allclose(xcd["active"]["mean"], BUSY, atol=1e-3)
    assert xcd["state"] == [ACTIVE, IDLE, IDLE, ACTIVE, ACTIVE, ACTIVE, ACTIVE, ACTIVE]
    assert state["idle_units"] == pytest.approx(float(np.sum((1 - BUSY) * 38)), rel=1e-3)
    assert state["device"]["power"] == pytest.approx(140.0)
    assert state["device"]["sm_active"] == pytest.approx(BUSY.mean(), abs=1e-3)
    assert set(state["partition"]) == {"0"}


def test_mi300x_cpx_publishes_8_partitions_of_38_cus(amd, amd_library, tmp_path):
    out = scenario(amd, "cpx", amd_library, tmp_path)
    (topo,) = out["topology"]
    assert topo["counts"] == {"xcd": 8, "se": 32, "cu": 304}
    assert [(p["id"], p["kind"], p["units"]) for p in topo["partitions"]] == [(str(i), "xcp", 38) for i in range(8)]
    state = out["state"]
    assert sorted(state["partition"]) == [str(i) for i in range(8)]
    # One XCD per partition: each partition's CU-weighted activity is its XCD's, and its
    # own library device's engine activity (scripted to its XCD's) comes through as gr_active.
    np.testing.assert_allclose([state["partition"][str(i)]["sm_active"] for i in range(8)], BUSY, atol=1e-3)
    np.testing.assert_allclose([state["partition"][str(i)]["gr_active"] for i in range(8)], BUSY, atol=6e-3)


def test_metrics_1_4_publishes_no_xcd_level(amd, amd_library, tmp_path):
    out = scenario(amd, "v14", amd_library, tmp_path)
    assert "active" not in out["topology"][0]["counters"]
    state = out["state"]
    assert state["levels"] == {}
    assert {"gr_active", "power", "temp"} <= set(state["device"])


def test_an_unsupported_call_is_an_absent_counter(amd, amd_library, tmp_path):
    out = scenario(amd, "unsupported", amd_library, tmp_path)
    assert "mem_used" not in out["topology"][0]["counters"]
    assert "mem_used" not in out["state"]["device"]
    assert "xcd" in out["state"]["levels"]


def test_a_lost_device_emits_device_lost_and_the_other_goes_on(amd, amd_library, tmp_path):
    out = scenario(amd, "lost", amd_library, tmp_path)
    lost = [e for e in out["events"] if e["type"] == "device_lost"]
    assert [(e["device"], e["device_id"]) for e in lost] == [(0, out["ids"][0])]
    assert f"{amd.status_prefix}FILE_ERROR" in lost[0]["detail"]
    assert out["other_after"] > out["other_before"]
    np.testing.assert_allclose(out["other_xcd"], BUSY, atol=1e-3)
    assert any(e["type"] == "device_back" and e["device"] == 0 for e in out["events"])
