"""The engine from Python: API shape, argument errors, lifecycle in every order."""

from __future__ import annotations

import textwrap
import time

import numpy as np
from isolated import run_python
import pytest

from cuagent import Engine, MockDevice


def wait_for_windows(engine: Engine, count: int = 1, timeout: float = 20.0, devices=None):
    """Poll until the devices have finished `count` windows (a bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = engine.snapshot()
        if all(snap[i] is not None and snap[i].window_seq >= count for i in (devices or range(len(snap)))):
            return snap
        time.sleep(0.02)
    raise AssertionError(f"no {count} finished windows within {timeout}s: {engine.stats()}")


def test_snapshot_has_the_documented_shape():
    with Engine(driver="mock", devices=[MockDevice("h100-sxm", scenario="fragmented")], rate_hz=1000,
                window_ms=100, seed=1) as engine:
        assert engine.backend == "mock"
        (topo,) = engine.topology()
        assert topo.units == 132 and topo.levels == ["gpc", "tpc", "sm"]
        assert topo.counts == {"gpc": 9, "tpc": 66, "sm": 132}
        (snap,) = wait_for_windows(engine)
    active = snap.levels["sm"]["active"]
    assert active.mean.dtype == np.float32 and active.mean.shape == (132,)
    assert active.max.shape == (132,) and np.all(active.max >= active.mean)
    state = snap.levels["sm"]["state"]
    assert state.dtype == np.uint8 and state.shape == (132,) and set(np.unique(state)) <= {0, 1, 2, 3}
    assert snap.groups["gpc"]["active"].mean.shape == (9,)
    assert snap.window_ns == 100_000_000 and snap.samples > 0
    assert 0.0 <= snap.idle_units <= 132.0
    assert snap.idle_units == pytest.approx(float(np.sum(1.0 - active.mean.astype(np.float64))), rel=1e-4)
    assert "power" in snap.device and "sm_active" in snap.device
    assert set(snap.partition) == {p.id for p in topo.partitions}
    assert abs(snap.t_ns - time.time_ns()) < 60e9  # Unix time, not monotonic


def test_stats_report_rate_and_jitter():
    with Engine(driver="mock", devices=[MockDevice("a100-sxm", scenario="training")], rate_hz=2000, seed=3) as engine:
        wait_for_windows(engine, 2)
        stats = engine.stats()
    assert stats.rate_hz == 2000 and stats.ticks > 0 and stats.samples > 0
    assert stats.achieved_rate_hz > 0 and stats.jitter_p99_ns >= stats.jitter_p50_ns >= 0
    assert stats.devices[0]["windows"] >= 2 and not stats.devices[0]["lost"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(devices=[MockDevice("h200-nvl")]), "h200-nvl"),
        (dict(devices=[MockDevice("h100-sxm", scenario="gaming")]), "gaming"),
        (dict(devices=[MockDevice("h100-sxm")], rate_hz=0), "rate_hz"),
        (dict(devices=[MockDevice("h100-sxm")], rate_hz=-5), "rate_hz"),
        (dict(devices=[MockDevice("h100-sxm")], rate_hz=1000, window_ms=0.5), "shorter than one tick"),
        (dict(devices=[MockDevice("h100-sxm")], window_ms=0), "window_ms"),
        (dict(driver="cuda", devices=[]), "cuda"),
    ],
)
def test_wrong_arguments_name_the_bad_value(kwargs, message):
    kwargs.setdefault("driver", "mock")
    with pytest.raises(ValueError, match=message):
        Engine(**kwargs)


def test_lost_device_raises_an_event_and_the_others_go_on():
    devices = [MockDevice("h100-sxm", scenario="training"), MockDevice("h100-sxm", scenario="training",
                                                                       lost_at_s=0.15)]
    with Engine(driver="mock", devices=devices, rate_hz=1000, seed=2) as engine:
        deadline = time.monotonic() + 20
        events = []
        while time.monotonic() < deadline and not any(e.type == "device_lost" for e in events):
            events += engine.events()
            time.sleep(0.05)
        lost = [e for e in events if e.type == "device_lost"]
        assert lost and lost[0].device == 1 and lost[0].device_id == engine.topology()[1].id
        before = engine.snapshot()[0].window_seq
        wait_for_windows(engine, before + 2, devices=[0])  # device 0 keeps producing windows
        assert engine.stats().devices[1]["lost"]


LIFECYCLE = textwrap.dedent(
    """
    import threading, gc
    from cuagent import Engine, MockDevice
    devs = lambda: [MockDevice("h100-sxm", scenario="training"), MockDevice("mi300x", scenario="thrashing"),
                    MockDevice("a100-sxm", scenario="inference"), MockDevice("h100-sxm", scenario="fragmented")]
    mk = lambda: Engine(driver="mock", devices=devs(), rate_hz=5000, window_ms=20, seed=1)

    e = mk(); del e; gc.collect()                          # never started
    e = mk(); e.stop(); e.stop(); del e                    # stop before start
    e = mk(); e.start(); e.stop(); e.stop(); e.start(); e.stop(); del e   # restart
    e = mk(); e.start()
    try:
        e.start(); raise SystemExit("second start must raise")
    except RuntimeError:
        pass
    del e; gc.collect()                                    # destroyed while running
    with mk() as e:
        stop = threading.Event()
        def hammer():
            while not stop.is_set():
                e.snapshot(); e.stats(); e.events()
        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads: t.start()
        for _ in range(30):
            e.stop(); e.start()
        stop.set()
        for t in threads: t.join()
    e = mk(); e.start()
    t = threading.Thread(target=e.stop); t.start(); e.stop(); t.join()   # concurrent stops
    print("lifecycle ok")
    """
)


def test_start_stop_destroy_in_every_order_does_not_deadlock():
    result = run_python(LIFECYCLE, timeout=90, what="engine lifecycle")
    assert "lifecycle ok" in result.stdout
