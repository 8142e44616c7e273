"""Waiting on ZeroMQ sockets: the one conversion from seconds to what zmq_poll takes."""

from __future__ import annotations

import math


def poll_timeout_ms(seconds: float) -> int:
    """A wait in seconds as the whole milliseconds zmq_poll takes, rounded up: pyzmq truncates
    a float, so a wait under 1 ms became a non-blocking poll and the loop spun until its
    deadline. A positive wait is at least 1 ms; float noise (0.3 s -> 300.00000000000006 ms)
    does not add one."""
    if not seconds > 0:
        return 0
    return max(1, math.ceil(seconds * 1000.0 - 1e-6))
