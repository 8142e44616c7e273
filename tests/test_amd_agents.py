"""`cuagent run` on both AMD backends (rocm_smi, amdsmi), each against its fake library, checked
on the wire: every message goes through the protocol checker. An MI300X in SPX and in CPX
publishes the same feed on either backend. What only AMD SMI's agent does (a lost GPU, a
partition mode change, `--driver auto`) is in test_amdsmi_agent.py."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from fakes.amd_agent import BUSY, PROCESS
from fakes.amd_fixtures import amd, amd_agent, amd_library, amdsmi_library, rocm_library  # noqa: F401


def _bins(b: bytes, dtype: str) -> np.ndarray:
    return np.frombuffer(b, dtype)


def test_mi300x_spx_feed_with_xcd_states(amd, amd_agent, amd_library):
    proc, feed = amd_agent(amd, amd_library, flags=("--process-interval-s", "0.2"))

    def ready(f) -> bool:
        states = f.of("state")
        listed = not amd.lists_processes or any("sm" in p for m in states for p in m[4].get("processes", []))
        return listed and any("levels" in m[4] for m in states) and f.checker.counts["state"] >= 3

    feed.wait(ready, "a state with levels.xcd" + (" and a process's sm" if amd.lists_processes else ""))
    (d,) = feed.of("topo")[-1][4]["devices"]
    assert (d["vendor"], d["backend"], d["unit"], d["units"], d["model"]) == \
        ("amd", amd.name, "cu", 304, "AMD Instinct MI300X")
    assert d["levels"] == ["xcd", "se", "cu"] and d["counts"] == {"xcd": 8, "se": 32, "cu": 304}
    assert d["layout_source"] == "vendor"
    xcd_of_cu = _bins(d["layout"]["xcd"], "<u2")
    assert np.bincount(xcd_of_cu).tolist() == [38] * 8  # 304 CUs in 8 XCDs
    se_of_cu = _bins(d["layout"]["se"], "<u2")
    for x in range(8):  # 4 SEs per XCD
        assert len(set(se_of_cu[xcd_of_cu == x].tolist())) == 4
    assert [(p["id"], p["kind"], p["units"], p["profile"]) for p in d["partitions"]] == \
        [("0", "whole", 304, "SPX NPS1")]
    assert {"power_violation", *amd.own_counters} <= set(d["counters"])
    body = [m[4] for m in feed.of("state") if "levels" in m[4]][-1]
    xcd = body["levels"]["xcd"]
    assert set(body["levels"]) == {"xcd"}
    np.testing.assert_allclose(_bins(xcd["active"]["mean"], "<f4"), np.array(BUSY) / 100, atol=0.02)
    assert _bins(xcd["state"], "u1").tolist() == [1, 0, 0, 1, 1, 1, 1, 1]
    assert body["idle_units"] == pytest.approx(float(np.sum((1 - np.array(BUSY) / 100) * 38)), abs=3)
    if not amd.lists_processes:
        assert all("processes" not in m[4] for m in feed.of("state"))
        return
    pid, name, vram, _ = PROCESS
    (process,) = [m[4]["processes"] for m in feed.of("state") if any("sm" in p for p in m[4].get("processes", []))][-1]
    assert (process["pid"], process["name"], process["mem"]) == (pid, name, vram)
    # Its share of the GFX engine between two lists (the formula is checked in
    # test_amdsmi_driver.py with a scripted clock; here the real clocks of two processes).
    assert 0.0 < process["sm"] <= 1.0


def test_mi300x_cpx_feed_has_8_partitions_and_per_partition_counters(amd, amd_agent, amd_library):
    proc, feed = amd_agent(amd, amd_library, "CPX")
    feed.wait(lambda f: f.checker.counts["state"] >= 3, "states")
    (d,) = feed.of("topo")[-1][4]["devices"]
    assert d["units"] == 304 and d["counts"]["xcd"] == 8
    assert [(p["id"], p["kind"], p["units"]) for p in d["partitions"]] == [(str(i), "xcp", 38) for i in range(8)]
    assert d["counters"]["gr_active"]["level"] == d["counters"]["mem_used"]["level"] == "partition"
    body = feed.of("state")[-1][4]
    assert sorted(body["partition"]) == [str(i) for i in range(8)]
    assert all({"gr_active", "mem_used", "sm_active"} <= set(body["partition"][str(i)]) for i in range(8))


if sys.platform != "linux":  # pragma: no cover
    pytestmark = pytest.mark.skip("ipc endpoints and the fakes need Linux")
