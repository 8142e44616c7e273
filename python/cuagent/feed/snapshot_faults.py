"""What goes wrong with an upstream's snapshot requests, and how long the next one waits
(PROTOCOL.md §4, §5): a request left unanswered is sent again after a wait that doubles while
the upstream stays silent, a reply that cannot be used is asked again after a wait that
doubles too, and each fault is logged once while it lasts. A client's :class:`Session
<cuagent.feed.session.Session>` and a relay's joins (``node/relay_joins.py``) both keep one
:class:`SnapshotFaults` per upstream, so that the two back off and speak alike."""

from __future__ import annotations

import logging
import threading
from typing import Optional

import zmq

from .. import ipv6
from ..curve import (HANDSHAKE_EVENTS, ClientKeys, apply_client, curve_hint, handshake_hint, monitor_events,
                     watch)
from .outage import Outage

SNAPSHOT_TIMEOUT_S = 2.0  # how long the first snapshot request to an upstream waits for its reply
# An upstream that leaves requests unanswered is asked less and less often: each request waits
# twice as long as the last before it is sent again, up to this (see snapshot_wait).
SNAPSHOT_RETRY_MAX_S = 30.0
# The first wait before asking again after a reply that could not be used, doubling (see
# retry_wait): a refused one here, and one that knew nothing of the node it was asked about
# (session.py, RESYNC_TRIES).
RESYNC_RETRY_S = 0.05
REFUSED_RETRY_MAX_S = 5.0  # longest wait after refused snapshot replies (from RESYNC_RETRY_S, doubling)


def retry_wait(tries: int) -> float:
    """The wait before asking again after ``tries`` replies in a row that could not be used:
    RESYNC_RETRY_S, doubling."""
    return float(RESYNC_RETRY_S * 2 ** min(tries - 1, 16))


def snapshot_wait(unanswered: int, first: float = SNAPSHOT_TIMEOUT_S) -> float:
    """How long a snapshot request waits for its reply before it is sent again (at once, on a
    fresh socket), when the ``unanswered`` requests before it to the same upstream, in a row,
    got none: ``first``, doubling, up to SNAPSHOT_RETRY_MAX_S (or ``first``, if longer).

    A reply lost once is asked again as soon as ever (the retry is sent when the first wait
    ends); an upstream that stays silent is asked every 30 s, not every 2 s. Waiting longer
    costs nothing when it comes back: the request waits on the socket, which reconnects on
    its own and delivers it then. Any reply resets the count."""
    return min(max(first, SNAPSHOT_RETRY_MAX_S), first * 2.0 ** min(max(unanswered, 0), 16))


# Silent upstreams whose handshakes are watched at once, in this process: a monitor is two
# more sockets in libzmq's context (1023 by default), and a relay that starts before the
# agents it connects to, or outlives a rack's power, has hundreds silent at once.
MAX_WATCHED = 64
_WATCHED = threading.BoundedSemaphore(MAX_WATCHED)


class SnapshotFaults:
    """What goes wrong with one upstream's snapshot replies, for a client's session and a relay's
    joins alike: requests left unanswered (the next waits longer, :func:`snapshot_wait`) and
    replies that cannot be used (the next request is held back: RESYNC_RETRY_S doubling, at most
    REFUSED_RETRY_MAX_S; asked again at once, a source that refuses would be asked, and logged,
    once per round trip). Each fault is said once while it lasts (outage.py), on ``logger``."""

    def __init__(self, logger: logging.Logger, sync: str, curve: Optional[ClientKeys],
                 first_wait_s: float = SNAPSHOT_TIMEOUT_S) -> None:
        self.log, self.sync, self.curve, self.first_wait_s = logger, sync, curve is not None, first_wait_s
        self.hint = curve_hint(curve)
        self.unanswered = 0  # requests in a row that got no reply
        self.refusals = 0  # replies in a row that could not be used
        self.hold_until = 0.0  # after such a reply, no request before this (monotonic s)
        self.silence = Outage(logger, "requests unanswered")
        self.refused = Outage(logger, "replies refused")
        # The handshakes of the request socket, watched once a request went unanswered (a healthy
        # upstream costs no monitor socket), so that the next timeout can say why: a server that
        # refuses a handshake sends nothing else.
        self.monitor: Optional[zmq.Socket[bytes]] = None
        self.cause: Optional[str] = None  # why the handshakes fail, once seen; None after a reply

    def reply_wait(self) -> float:
        """How long the request in flight waits for its reply."""
        return snapshot_wait(self.unanswered, self.first_wait_s)

    def dealer(self, ctx: zmq.Context[zmq.Socket[bytes]], curve: Optional[ClientKeys]) -> zmq.Socket[bytes]:
        """A fresh request socket to the upstream (one per retry: a late reply to an abandoned
        request can never pass for the answer to the next), its handshakes watched while the
        upstream is silent."""
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        apply_client(sock, curve)
        self._unwatch()
        if self.unanswered and self.cause is None and _WATCHED.acquire(blocking=False):
            try:
                self.monitor = watch(sock, HANDSHAKE_EVENTS)  # before connect: no event missed
            except zmq.ZMQError as e:  # out of sockets: the cause goes unsaid, the retry goes on
                _WATCHED.release()
                self.log.debug("cannot watch the handshakes with %s: %s", self.sync, e)
        ipv6.enable_for(sock, self.sync)
        sock.connect(self.sync)
        return sock

    def timed_out(self, now: float) -> None:
        """The request in flight got no reply within :meth:`reply_wait`."""
        waited = self.reply_wait()
        self.unanswered += 1
        most = snapshot_wait(1 << 16, self.first_wait_s)
        self.silence.failed(now, f"no snapshot reply from {self.sync} within {waited:g} s{self.hint}; "
                                 f"retrying with backoff, up to {most:g} s",
                            f"still no snapshot reply from {self.sync}")
        why = None if self.monitor is None else handshake_hint(monitor_events(self.monitor), self.curve)
        if why is not None:
            self.cause = why
            self.log.warning("the handshakes with %s fail: %s", self.sync, why)

    def replied(self, now: float) -> None:
        """A reply came, of whatever use: the upstream is there."""
        self.unanswered = 0
        self.cause = None
        self._unwatch()
        self.silence.ended(now, f"snapshot reply from {self.sync} again")

    def close(self) -> None:
        self._unwatch()

    def _unwatch(self) -> None:
        if self.monitor is not None:
            self.monitor.close(0)
            self.monitor = None
            _WATCHED.release()

    def refused_reply(self, now: float, error: str) -> None:
        """A reply that cannot be used: the next request waits, longer each time."""
        self.refusals += 1
        wait = min(REFUSED_RETRY_MAX_S, retry_wait(self.refusals))
        self.hold_until = now + wait
        self.refused.failed(now, f"bad snapshot reply from {self.sync}: {error}; asking again in {wait:.2f} s, "
                                 f"longer each time, up to {REFUSED_RETRY_MAX_S:g} s",
                            f"still bad snapshot replies from {self.sync}: {error}")

    def accepted(self, now: float) -> None:
        """A reply that could be used."""
        self.refusals = 0
        self.refused.ended(now, f"good snapshot reply from {self.sync} again")
