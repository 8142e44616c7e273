"""Whether a device's latest window is still current: the one rule the client's helpers and
the Prometheus exporter judge it by.

A window's header ``ts`` is its end on the agent's clock (PROTOCOL.md §2). A device whose reads
hang keeps status ``ok`` and its node keeps heartbeating, so its last window stays in every
snapshot: only its age says it is no longer the device's present state.

The age is taken on the agent's own clock, never by comparing it with this host's: a
:class:`NodeClock` holds the header ``ts`` of the node's latest live message (a heartbeat: no
snapshot holds one, §4, so it is never a replay) and when it arrived here (this host's
monotonic clock), so the node's present time is that ``ts`` plus the time elapsed here since.
Two hosts' clocks need not agree: an agent whose clock is 10 s off still has its windows judged
to within the heartbeat's transit time, where a comparison with this host's ``time.time_ns()``
would take every window for 10 s old (or, 10 s ahead, keep a dead one current). Only before a
node's first heartbeat (the snapshot of a join comes first) does this host's wall clock stand
in, as the scorer's ``now`` does.
"""

from __future__ import annotations

import time
from typing import Optional

STALE_AFTER_S = 3.0  # PROTOCOL.md §3.3: a node not heard for 3 s is stale
# A window is current for the stale interval, or for three of its own lengths where that is
# longer (a publish interval over 1 s: the next window is not due within 3 s).
STALE_AFTER_WINDOWS = 3


class NodeClock:
    """A node's present time on its own clock (Unix ns), from its latest live message."""

    __slots__ = ("_ts", "_at")

    def __init__(self) -> None:
        self._ts: Optional[int] = None  # header ts of the latest live message
        self._at = 0.0  # monotonic time it arrived

    def heard(self, ts: int, at: Optional[float] = None) -> None:
        """A live message (never a snapshot's replay) sent at ``ts`` on the node's clock came at
        ``at`` (monotonic; default now). The latest one counts, even when its ``ts`` is below the
        estimate: the node's clock may have been stepped back."""
        self._ts, self._at = ts, time.monotonic() if at is None else at

    def forget(self) -> None:
        self._ts = None

    @property
    def known(self) -> bool:
        """A live message has been heard (else :meth:`now_ns` is this host's wall clock)."""
        return self._ts is not None

    def now_ns(self, at: Optional[float] = None) -> int:
        """The node's time at monotonic ``at`` (default now)."""
        if self._ts is None:
            return time.time_ns()
        return self._ts + int(((time.monotonic() if at is None else at) - self._at) * 1e9)


def limit_ns(max_age_s: float, window_ns: int) -> int:
    """How old a window of ``window_ns`` may be and still be current."""
    return max(int(max_age_s * 1e9), STALE_AFTER_WINDOWS * window_ns)


def current(ts: int, window_ns: int, now_ns: int, max_age_s: float = STALE_AFTER_S) -> bool:
    """A window that ended at ``ts`` is current at ``now_ns`` (both on the node's clock)."""
    return now_ns - ts <= limit_ns(max_age_s, window_ns)
