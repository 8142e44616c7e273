"""Engine(driver="rocm_smi") end to end against the fake AMD host.

Each scenario runs in its own process with a timeout (tests/fakes/rocm_engine_scenario.py),
so an engine that hangs fails here instead of hanging the suite.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from isolated import run_script
from fakes.rocm_fixtures import rocm_library  # noqa: F401

SCRIPT = Path(__file__).parent / "fakes" / "rocm_engine_scenario.py"
BUSY = np.array([90.0, 0.0, 0.0, 20.0, 50.0, 60.0, 70.0, 100.0]) / 100
IDLE, ACTIVE = 0, 1


def scenario(name: str, library: Path, work: Path) -> dict:
    done = run_script(SCRIPT, name, library, work, what=f"scenario {name!r} (engine start/stop or snapshot)")
    return json.loads(done.stdout)


def test_mi300x_spx_publishes_xcd_activity_and_states(rocm_library, tmp_path):
    out = scenario("spx", rocm_library, tmp_path)
    assert out["backend"] == "rocm_smi"
    (topo,) = out["topology"]
    assert topo["vendor"] == "amd" and topo["unit"] == "cu" and topo["units"] == 304
    assert topo["levels"] == ["xcd", "se", "cu"]
    assert topo["counts"] == {"xcd": 8, "se": 32, "cu": 304}
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


def test_mi300x_cpx_publishes_8_partitions_of_38_cus(rocm_library, tmp_path):
    out = scenario("cpx", rocm_library, tmp_path)
    (topo,) = out["topology"]
    assert topo["counts"] == {"xcd": 8, "se": 32, "cu": 304}
    assert [(p["id"], p["kind"], p["units"]) for p in topo["partitions"]] == \
        [(str(i), "xcp", 38) for i in range(8)]
    state = out["state"]
    assert sorted(state["partition"]) == [str(i) for i in range(8)]
    # One XCD per partition: each partition's CU-weighted activity is its XCD's.
    np.testing.assert_allclose([state["partition"][str(i)]["sm_active"] for i in range(8)], BUSY, atol=1e-3)
    assert all("gr_active" in state["partition"][str(i)] for i in range(8))


def test_metrics_1_4_publishes_no_xcd_level(rocm_library, tmp_path):
    out = scenario("v14", rocm_library, tmp_path)
    assert "active" not in out["topology"][0]["counters"]
    state = out["state"]
    assert state["levels"] == {}
    assert {"gr_active", "power", "temp"} <= set(state["device"])


def test_unsupported_call_is_an_absent_counter(rocm_library, tmp_path):
    out = scenario("unsupported", rocm_library, tmp_path)
    assert "gr_active" not in out["topology"][0]["counters"]
    assert "gr_active" not in out["state"]["device"]
    assert "xcd" in out["state"]["levels"]


def test_a_lost_device_emits_device_lost_and_the_other_goes_on(rocm_library, tmp_path):
    out = scenario("lost", rocm_library, tmp_path)
    lost = [e for e in out["events"] if e["type"] == "device_lost"]
    assert [(e["device"], e["device_id"]) for e in lost] == [(0, out["ids"][0])]
    assert "RSMI_STATUS_FILE_ERROR" in lost[0]["detail"]
    assert out["other_after"] > out["other_before"]
    np.testing.assert_allclose(out["other_xcd"], BUSY, atol=1e-3)
    assert any(e["type"] == "device_back" and e["device"] == 0 for e in out["events"])
