"""The platform layer (cpp/src/platform.cpp) as the engine uses it. scripts/test also runs this
file, with the engine and feed tests, on a build with -DCUAGENT_PORTABLE=ON (the POSIX stand-ins
a macOS laptop gets) and CUAGENT_EXPECT_PLATFORM=posix, so that build is known to be the one
under test."""

from __future__ import annotations

import os
import select
import sys

from cuagent import Engine, MockDevice, _core

WAIT_S = 20.0


def test_the_build_has_the_platform_layer_it_was_built_for() -> None:
    expected = os.environ.get("CUAGENT_EXPECT_PLATFORM") or ("linux" if sys.platform.startswith("linux") else "posix")
    assert _core.platform() == expected


def test_window_fd_wakes_a_poller_for_each_window_and_drains() -> None:
    with Engine(driver="mock", devices=[MockDevice("a100-sxm", "idle")], rate_hz=200, window_ms=50) as engine:
        fd = engine.window_fd
        for _ in range(4):
            ready, _, _ = select.select([fd], [], [], WAIT_S)
            assert ready == [fd], "no window finished"
            before = engine.stats().devices[0]["windows"]
            engine.drain_window_fd()
            # Drained: readable again only once another window has finished.
            ready, _, _ = select.select([fd], [], [], 0)
            assert not ready or engine.stats().devices[0]["windows"] > before
        assert engine.stats().devices[0]["windows"] >= 4
