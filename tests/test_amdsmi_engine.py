"""Engine(driver="amdsmi") end to end against the fake AMD SMI host: the feed the rocm_smi
backend gives for the same hardware (levels.xcd with states, partitions, idle_units), and a
lost device.

Each scenario runs in its own process with a timeout (tests/fakes/amdsmi_engine_scenario.py),
so an engine that hangs fails here instead of hanging the suite.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from isolated import run_script
from fakes.amdsmi_fixtures import amdsmi_library  # noqa: F401

SCRIPT = Path(__file__).parent / "fakes" / "amdsmi_engine_scenario.py"
BUSY = np.array([90.0, 0.0, 0.0, 20.0, 50.0, 60.0, 70.0, 100.0]) / 100
IDLE, ACTIVE = 0, 1


def scenario(name: str, library: Path, work: Path) -> dict:
    done = run_script(SCRIPT, name, library, work, what=f"scenario {name!r} (engine start/stop or snapshot)")
    return json.loads(done.stdout)


def test_mi300x_spx_publishes_xcd_activity_states_and_idle_units(amdsmi_library, tmp_path):
    out = scenario("spx", amdsmi_library, tmp_path)
    assert out["backend"] == "amdsmi"
    (topo,) = out["topology"]
    assert (topo["vendor"], topo["backend"], topo["unit"], topo["units"]) == ("amd", "amdsmi", "cu", 304)
    assert topo["levels"] == ["xcd", "se", "cu"] and topo["counts"] == {"xcd": 8, "se": 32, "cu": 304}
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


def test_mi300x_cpx_publishes_8_partitions_of_38_cus(amdsmi_library, tmp_path):
    out = scenario("cpx", amdsmi_library, tmp_path)
    (topo,) = out["topology"]
    assert [(p["id"], p["kind"], p["units"]) for p in topo["partitions"]] == [(str(i), "xcp", 38) for i in range(8)]
    state = out["state"]
    assert sorted(state["partition"]) == [str(i) for i in range(8)]
    # One XCD per partition: each partition's CU-weighted activity is its XCD's, and its
    # own processor's gfx activity says the same.
    np.testing.assert_allclose([state["partition"][str(i)]["sm_active"] for i in range(8)], BUSY, atol=1e-3)
    np.testing.assert_allclose([state["partition"][str(i)]["gr_active"] for i in range(8)], BUSY, atol=6e-3)


def test_an_unsupported_call_is_an_absent_counter(amdsmi_library, tmp_path):
    out = scenario("unsupported", amdsmi_library, tmp_path)
    assert "mem_used" not in out["topology"][0]["counters"]
    assert "mem_used" not in out["state"]["device"]
    assert "xcd" in out["state"]["levels"]


def test_a_lost_device_emits_device_lost_and_the_other_goes_on(amdsmi_library, tmp_path):
    out = scenario("lost", amdsmi_library, tmp_path)
    lost = [e for e in out["events"] if e["type"] == "device_lost"]
    assert [(e["device"], e["device_id"]) for e in lost] == [(0, out["ids"][0])]
    assert "AMDSMI_STATUS_FILE_ERROR" in lost[0]["detail"]
    assert out["other_after"] > out["other_before"]
    np.testing.assert_allclose(out["other_xcd"], BUSY, atol=1e-3)
    assert any(e["type"] == "device_back" and e["device"] == 0 for e in out["events"])
