"""How a fault that may last is logged: an upstream that does not answer snapshot requests, or
answers with replies that cannot be used, or that knows nothing of a node it forwards.

Such a fault is met again at every retry, and a process that follows many upstreams retries
each every few seconds: a relay of a cluster with 20 dead nodes wrote ~860k lines a day, one
per retry. So an :class:`Outage` says it once, at WARNING, when it starts; then at most a
reminder every ``remind_s`` while it lasts, with how long it has lasted and how many times it
was met; and once, at INFO, when it ends. The retries between go to DEBUG.
"""

from __future__ import annotations

import logging
from typing import Optional

REMIND_S = 600.0  # a fault still there is said again this often, with how long it has lasted


class Outage:
    """One fault of one upstream (or of one node at one upstream). Every call passes ``now``
    (monotonic s), so that the schedule of its lines is the caller's clock, not this one's."""

    def __init__(self, log: logging.Logger, counted: str, remind_s: float = REMIND_S) -> None:
        self.log = log
        self.counted = counted  # what a failure is, in the reminders: "requests unanswered"
        self.remind_s = remind_s
        self.since: Optional[float] = None  # when it started; None: no fault now
        self.told = 0.0  # when it was last said at WARNING
        self.last = 0.0  # when it was last met
        self.count = 0  # times met since it started

    @property
    def ongoing(self) -> bool:
        return self.since is not None

    def failed(self, now: float, started: str, still: str) -> None:
        """The fault was met (again). ``started``: the line that says it began (logged if it
        did just now); ``still``: what it is, for the reminders and the DEBUG lines."""
        self.count += 1
        self.last = now
        if self.since is None:
            self.since = self.told = now
            self.log.warning("%s", started)
        elif now - self.told >= self.remind_s:
            self.told = now
            self.log.warning("%s: for %.0f s now, %d %s", still, now - self.since, self.count, self.counted)
        else:
            self.log.debug("%s (%d %s)", still, self.count, self.counted)

    def ended(self, now: float, what: str) -> None:
        """The fault is over (the upstream answered): said once, if it had been said at all."""
        if self.since is None:
            return
        self.log.info("%s after %.0f s, %d %s", what, now - self.since, self.count, self.counted)
        self.since, self.count = None, 0
