"""The server side of a node (PROTOCOL.md §1, §5): what the agent and the relay share.

A :class:`FeedServer` binds the feed (an XPUB whose subscriptions are bounded by a
:class:`~cuagent.node.subscriptions.SubscriptionGuard`) and the sync ROUTER, both or neither
(a failed bind closes what was bound, and stops the CURVE authenticator it started). It
answers ``ping`` and ``snapshot`` from a :class:`SyncSource`, which says what to answer; the
replies are built by :mod:`cuagent.wire.sync` only.

Threads: the feed socket and its guard belong to the thread that publishes (the agent's loop,
the relay's forwarding thread), the sync socket to the thread that calls :meth:`serve_sync`;
the monitors of both to a thread of the server's own (:class:`~cuagent.node.handshakes.HandshakeWatch`),
which :meth:`close` stops first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Protocol, Sequence

import zmq

from .. import wire
from ..curve import Authenticator, ServerKeys
from . import sockets
from .handshakes import HandshakeFailures, HandshakeWatch
from .subscriptions import SubscriptionGuard


@dataclass
class Ping:
    """Who answers a ``ping``: a node (an agent, or a relay under its own name)."""

    node: str
    epoch: int
    gen: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SnapshotContent:
    """What a ``snapshot`` for one prefix holds: the latest frames and the seqs (§4.3)."""

    epoch: int
    messages: Iterable[Sequence[bytes]]
    seqs: dict[str, int]
    extra: dict[str, Any] = field(default_factory=dict)


class SyncSource(Protocol):
    """What a server answers from; called on the sync socket's thread."""

    def ping(self) -> Ping: ...

    def snapshot(self, prefix: str) -> SnapshotContent: ...


class FeedServer:
    """The feed and sync sockets of one node, bound in the constructor (so that a bad endpoint
    fails before anything runs). ``node``: the only node whose topics the feed carries (an
    agent), for counting subscriptions that can never match; None for a relay (any node)."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], feed: str, sync: str, source: SyncSource,
                 sndhwm: int = sockets.DEFAULT_SNDHWM, curve: Optional[ServerKeys] = None,
                 node: Optional[str] = None) -> None:
        self.source = source
        self.sync_stats: dict[str, int] = {}
        # The ZAP handler must run before the sockets accept anyone.
        self._auth = Authenticator(ctx, curve) if curve is not None else None
        try:
            self.feed = sockets.bind_feed(ctx, feed, sndhwm, curve=curve)
            try:
                self.sync = sockets.bind_sync(ctx, sync, sndhwm, curve=curve)
            except OSError:
                self.feed.close(0)
                raise
        except OSError:
            if self._auth is not None:
                self._auth.stop()
            raise
        # Where peers on this host connect (a wildcard as loopback), and where each socket
        # really listens (what the startup line logs: 0.0.0.0 is not 127.0.0.1 to an operator).
        self.feed_endpoint = sockets.bound_endpoint(self.feed)
        self.sync_endpoint = sockets.bound_endpoint(self.sync)
        self.listening = f"feed {sockets.listening_on(self.feed)}, sync {sockets.listening_on(self.sync)}"
        self.feed_guard = SubscriptionGuard(self.feed, self.feed_endpoint, node=node)
        # Handshakes that fail before ZAP (no key, a key for another server, no CURVE here): logged.
        self._handshakes = HandshakeWatch.start([("feed", self.feed), ("sync", self.sync)],
                                                HandshakeFailures(curve.public if curve is not None else None))

    def serve_sync(self) -> None:
        """Answer what is queued on the sync socket (never blocks)."""
        sockets.serve_requests(self.sync, self._answer, self.sync_stats)

    def serve_subscriptions(self, readable: bool) -> None:
        """Read the feed's subscriptions when ``readable``, and keep the guard's timers."""
        if readable:
            self.feed_guard.drain()
        self.feed_guard.tick()

    def close(self, feed_linger_ms: int = 0) -> None:
        if self._handshakes is not None:
            self._handshakes.stop()
        self.feed.close(linger=feed_linger_ms)
        self.sync.close(0)
        if self._auth is not None:
            self._auth.stop()

    def _answer(self, req: wire.Request) -> bytes:
        if req.op == "ping":
            ping = self.source.ping()
            return wire.ping_reply(ping.node, ping.epoch, ping.gen, **ping.extra)
        if req.op == "snapshot":
            snap = self.source.snapshot(wire.parse_snapshot_prefix(req))
            return wire.snapshot_reply(snap.epoch, snap.messages, snap.seqs, **snap.extra)
        raise wire.unknown_op(req)
