"""Helpers shared by the agent's, relay's and client's socket loops."""

from __future__ import annotations

import math

import pytest

from cuagent.polling import poll_timeout_ms


@pytest.mark.parametrize("seconds, ms", [
    (0.0, 0), (-0.5, 0), (math.nan, 0),   # nothing to wait for: a non-blocking poll
    (1e-9, 1), (0.0003, 1), (0.0015, 2),  # a positive wait never becomes a busy poll
    (0.1, 100), (0.3, 300), (2.5, 2500),  # whole milliseconds stay exact despite float noise
])
def test_poll_timeout_rounds_up_to_whole_milliseconds(seconds, ms):
    assert poll_timeout_ms(seconds) == ms
    assert type(poll_timeout_ms(seconds)) is int
