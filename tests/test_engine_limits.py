"""The engine at the edges of its configuration: huge rings, tiny rates, long ticks."""

from __future__ import annotations

import textwrap

from isolated import run_python
import pytest

from cuagent import Engine, MockDevice


def test_a_ring_too_large_is_refused_at_construction_naming_it():
    # It used to be accepted, then start() threw half way through rebuilding
    # the engine and the next stats() dereferenced a sampler never built.
    with pytest.raises(ValueError, match="ring_capacity=33554432"):
        Engine(driver="mock", devices=[MockDevice("h100-sxm")], ring_capacity=2**25)


def test_a_rate_whose_period_overflows_is_refused():
    # 1e9 / 1e-12 ns does not fit in 64 bits: llround overflowed to a negative
    # period that passed every later check.
    with pytest.raises(ValueError, match="rate_hz"):
        Engine(driver="mock", devices=[MockDevice("h100-sxm")], rate_hz=1e-12, window_ms=1000)


SLOW_TICK_STOP = textwrap.dedent(
    """
    import time
    from cuagent import Engine, MockDevice
    # One tick every two minutes: the sampler sleeps far past any stop() call.
    e = Engine(driver="mock", devices=[MockDevice("h100-sxm")], rate_hz=1 / 120, window_ms=120_000)
    e.start()
    time.sleep(0.2)
    e.stop()
    assert not e.running and e.stats().ticks <= 1
    print("stopped")
    """
)


def test_stop_does_not_wait_for_a_distant_tick():
    # A subprocess with a bound far below the tick period: before the fix stop()
    # joined a sampler asleep until its next deadline (minutes here).
    result = run_python(SLOW_TICK_STOP, timeout=30, what="stop() at one tick per 2 minutes")
    assert "stopped" in result.stdout
