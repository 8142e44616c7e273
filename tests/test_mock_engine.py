"""The mock through the Engine: the states a scheduler would see are physically sensible.

Each case runs the engine in a subprocess with a timeout, so that a hang fails
clearly instead of stalling the suite.
"""

from __future__ import annotations

import textwrap
from typing import Any

from isolated import last_json, run_python

PRELUDE = """
import json, time
import numpy as np
from cuagent import Engine
from cuagent.mock import MockDevice

def settled(engine, windows=3, timeout=20.0):
    # The latest window once `windows` have finished (the first may be partial).
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = engine.snapshot()
        if all(s is not None and s.window_seq >= windows for s in snap):
            return snap
        time.sleep(0.02)
    raise SystemExit("no settled window within %.0f s" % timeout)

def emit(**values):
    print(json.dumps(values))
"""


def run_engine(body: str, timeout: float = 60.0) -> dict[str, Any]:
    return last_json(run_python(PRELUDE + textwrap.dedent(body), timeout=timeout, what="mock engine run"))


def test_idle_every_sm_idle() -> None:
    r = run_engine("""
        with Engine(driver="mock", devices=[MockDevice("h100-sxm", scenario="idle")], rate_hz=1000, seed=1) as e:
            s = settled(e)[0]
            emit(states=s.levels["sm"]["state"].tolist(), idle_units=s.idle_units,
                 active_max=float(s.levels["sm"]["active"].max.max()), power=s.device["power"],
                 sm_active=s.device["sm_active"], backend=e.backend)
    """)
    assert r["backend"] == "mock"
    assert len(r["states"]) == 132 and set(r["states"]) == {0}
    assert r["idle_units"] == 132 and r["active_max"] == 0 and r["sm_active"] == 0
    assert abs(r["power"] - 76.4) < 1


def test_training_nearly_all_active_with_high_tensor() -> None:
    r = run_engine("""
        with Engine(driver="mock", devices=[MockDevice("h100-sxm", scenario="training")], rate_hz=1000, seed=1) as e:
            s = settled(e)[0]
            sm = s.levels["sm"]
            emit(states=sm["state"].tolist(), tensor=float(sm["tensor"].mean.mean()),
                 sm_active=s.device["sm_active"], tensor_active=s.device["tensor_active"],
                 gpc_active=s.groups["gpc"]["active"].mean.tolist(), idle_units=s.idle_units,
                 throttle=s.device["throttle"], power=s.device["power"])
    """)
    states = r["states"]
    assert sum(1 for x in states if x == 1) >= 0.9 * 132  # active (occupancy ~0.14: not saturated)
    assert r["tensor"] > 0.7 and r["tensor_active"] > 0.7
    assert r["sm_active"] > 0.85 and min(r["gpc_active"]) > 0.8
    assert r["idle_units"] < 0.15 * 132
    assert int(r["throttle"]) & 4 and 600 < r["power"] <= 710


def test_fragmented_whole_gpcs_idle_while_others_busy() -> None:
    r = run_engine("""
        with Engine(driver="mock", devices=[MockDevice("h100-sxm", scenario="fragmented")], rate_hz=1000, seed=1) as e:
            s = settled(e)[0]
            emit(gpc_active=s.groups["gpc"]["active"].mean.tolist(),
                 gpc_of_sm=e.topology()[0].layout["gpc"].tolist(),
                 states=s.levels["sm"]["state"].tolist(), idle_units=s.idle_units)
    """)
    gpc_active = r["gpc_active"]
    idle_gpcs = [g for g, a in enumerate(gpc_active) if a < 0.05]
    busy_gpcs = [g for g, a in enumerate(gpc_active) if a > 0.8]
    assert idle_gpcs and busy_gpcs
    # Whole GPCs: every SM of an idle GPC is in the idle state.
    for g in idle_gpcs:
        assert all(st == 0 for st, gg in zip(r["states"], r["gpc_of_sm"]) if gg == g)
    assert r["idle_units"] > 0.4 * 132


def test_thrashing_high_mem_stall_and_thrashing_states() -> None:
    r = run_engine("""
        with Engine(driver="mock", devices=[MockDevice("h100-sxm", scenario="thrashing")], rate_hz=1000, seed=1) as e:
            s = settled(e)[0]
            emit(states=s.levels["sm"]["state"].tolist(),
                 mem_stall=float(s.levels["sm"]["mem_stall"].mean.mean()),
                 dram=s.device["dram_active"])
    """)
    assert r["mem_stall"] > 0.6 and r["dram"] > 0.7
    assert sum(1 for x in r["states"] if x == 3) >= 0.8 * 132


def test_mig_partitions_aggregate_their_own_load() -> None:
    r = run_engine("""
        with Engine(driver="mock", devices=[MockDevice("h100-sxm", scenario="mig")], rate_hz=1000, seed=1) as e:
            s = settled(e)[0]
            t = e.topology()[0]
            # mem_stall has no rollup: its partition mean comes from the per-SM values.
            stall = {p.id: float(s.levels["sm"]["mem_stall"].mean[p.unit_ids].mean()) for p in t.partitions}
            emit(kinds=[p.kind for p in t.partitions], partition=s.partition, stall=stall)
    """)
    assert r["kinds"] == ["mig"] * 4
    p = r["partition"]
    assert p["0"]["sm_active"] > 0.85 and p["0"]["tensor_active"] > 0.7  # 3g: training
    assert r["stall"]["2"] > 0.6  # 1g: thrashing
    assert p["3"]["sm_active"] == 0  # 1g: idle


def test_several_devices_each_with_its_own_scenario() -> None:
    r = run_engine("""
        devices = [MockDevice("h100-sxm", scenario="idle"), MockDevice("mi300x", scenario="training"),
                   MockDevice("generic", units=24, scenario="thrashing")]
        with Engine(driver="mock", devices=devices, rate_hz=1000, seed=1) as e:
            snap = settled(e)
            emit(ids=[t.id for t in e.topology()], units=[t.units for t in e.topology()],
                 active=[s.device["sm_active"] for s in snap], cu_levels=list(snap[1].levels))
    """)
    assert r["ids"] == ["mock-0", "mock-1", "mock-2"] and r["units"] == [132, 304, 24]
    assert r["active"][0] == 0 and r["active"][1] > 0.85 and r["active"][2] > 0.8
    assert r["cu_levels"] == ["cu"]


def test_lost_device_yields_device_lost_then_device_back() -> None:
    r = run_engine("""
        dev = MockDevice("h100-sxm", scenario="training", lost_at_s=0.3, back_at_s=0.6)
        with Engine(driver="mock", devices=[dev], rate_hz=1000, seed=1) as e:
            events = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not any(ev.type == "device_back" for ev in events):
                events += e.events()
                time.sleep(0.05)
            emit(events=[[ev.type, ev.device_id, ev.detail] for ev in events])
    """)
    types = [t for t, _, _ in r["events"]]
    assert types[:2] == ["device_lost", "device_back"], r["events"]
    lost = r["events"][0]
    assert lost[1] == "mock-0" and "fell off the bus" in lost[2]


def test_read_errors_are_counted_and_the_device_keeps_going() -> None:
    r = run_engine("""
        with Engine(driver="mock", devices=[MockDevice("h100-sxm", scenario="training", read_error_rate=0.2)],
                    rate_hz=1000, seed=1) as e:
            s = settled(e)[0]
            st = e.stats()
            emit(read_errors=st.read_errors, samples=st.samples, window_samples=s.samples)
    """)
    assert r["read_errors"] > 0 and r["samples"] > 0
    assert 0 < r["window_samples"] < 100  # some of the window's 100 reads failed


def test_engine_rejects_bad_mock_arguments() -> None:
    r = run_engine("""
        out = {}
        for name, kwargs in {"preset": dict(devices=[MockDevice("h200")]),
                             "scenario": dict(devices=[MockDevice(scenario="gaming")]),
                             "option": dict(devices=None, colour="red")}.items():
            try:
                Engine(driver="mock", **kwargs)
                out[name] = None
            except (ValueError, TypeError) as exc:
                out[name] = [type(exc).__name__, str(exc)]
        emit(**out)
    """)
    assert r["preset"][0] == "ValueError" and "h200" in r["preset"][1]
    assert r["scenario"][0] == "ValueError" and "gaming" in r["scenario"][1]
    assert r["option"][0] == "TypeError" and "colour" in r["option"][1]
