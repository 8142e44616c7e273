"""The engine with driver="nvml" against the fake: device-level state at the
NVML cadence, and a GPU lost mid-run gives device_lost while the others go on.
Runs in a subprocess with a timeout (threads)."""
from __future__ import annotations

import textwrap

from isolated import last_json, run_python
import pytest

from cuagent import _core  # noqa: E402,F401 — a missing extension fails the suite, never skips it


def run(fake, script: str, body: str, timeout: float = 90.0):
    path = fake.script(script)
    code = textwrap.dedent("""
        import json, sys, time
        from cuagent import Engine
        LIB = sys.argv[1]
    """) + textwrap.dedent(body)
    return last_json(run_python(code, fake.library, env=fake.env(path), timeout=timeout, what="nvml engine run"))


def test_engine_publishes_device_level_state(fake_nvml, trace_table):
    out = run(fake_nvml, f"devices 2\ntrace * {trace_table}\n", """
        with Engine(driver="nvml", library=LIB, rate_hz=100, window_ms=100) as engine:
            topo = engine.topology()
            deadline = time.monotonic() + 30
            snap = engine.snapshot()
            while time.monotonic() < deadline and not all(
                    s is not None and "sm_active" in s.device for s in snap):
                time.sleep(0.05)
                snap = engine.snapshot()
            print(json.dumps({"backend": engine.backend,
                              "ids": [t.id for t in topo],
                              "device": [s.device for s in snap],
                              "levels": [list(s.levels) for s in snap],
                              "samples": [s.samples for s in snap]}))
    """)
    assert out["backend"] == "nvml" and len(out["ids"]) == 2
    for dev, levels, samples in zip(out["device"], out["levels"], out["samples"]):
        assert levels == []  # NVML has no per-SM counter: no levels on the wire
        assert 0.0 <= dev["sm_active"] <= 1.0 and dev["power"] > 50
        assert dev["mem_used"] > 0 and dev["sm_clock"] >= 345e6
        # Read at the 100 ms NVML cadence, not the engine's 100 Hz.
        assert 1 <= samples <= 2


def test_gpu_lost_mid_run_emits_device_lost_and_others_go_on(fake_nvml):
    out = run(fake_nvml, "devices 3\nlost 1 ms 600\n", """
        with Engine(driver="nvml", library=LIB, rate_hz=100, window_ms=100) as engine:
            deadline = time.monotonic() + 30
            events = []
            while time.monotonic() < deadline and not any(e.type == "device_lost" for e in events):
                time.sleep(0.05)
                events += engine.events()
            # The lost device's last window (samples from before the loss) may
            # still be finishing: let one window length plus grace pass first.
            time.sleep(0.3)
            before = [s.window_seq if s else 0 for s in engine.snapshot()]
            after = before
            while time.monotonic() < deadline and not (after[0] > before[0] + 1 and after[2] > before[2] + 1):
                time.sleep(0.05)
                after = [s.window_seq if s else 0 for s in engine.snapshot()]
            print(json.dumps({"events": [[e.type, e.device, e.detail] for e in events],
                              "before": before, "after": after}))
    """)
    lost = [e for e in out["events"] if e[0] == "device_lost"]
    assert lost and lost[0][1] == 1 and "lost" in lost[0][2].lower()
    assert out["after"][0] > out["before"][0] and out["after"][2] > out["before"][2]
    assert out["after"][1] == out["before"][1]  # its state stopped
