"""cuagent.client — the library a scheduler imports to follow one or many agents or relays.

It joins with the clone pattern of PROTOCOL.md §4 (subscribe, queue, snapshot, replay),
detects gaps and restarts and resynchronises, marks nodes stale after 3 s without a
heartbeat, and keeps a live :class:`ClusterView`::

    from cuagent.client import Client
    with Client(["tcp://gpu01:7710", "tcp://gpu02:7710"]) as client:
        client.wait_ready(timeout=5)
        for dev in client.view.rank_devices():
            print(dev.node, dev.id, dev.idle_units)
        for update in client.updates(duration=10):    # or client.on_update(callback),
            ...                                       # or `async for u in client.aupdates()`

Everything runs in the caller's thread: :meth:`Client.poll` does all socket work, so there is
no hidden thread and no lock (one Client per thread). The work per upstream is a
:class:`~cuagent.feed.session.Session`'s; the client composes them around one view.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from typing import Any, AsyncIterator, Callable, Iterable, Iterator, Mapping, Optional, Sequence

import zmq

from .. import wire
from ..curve import ClientKeys
from ..polling import poll_timeout_ms
from .endpoint import Endpoint, as_endpoint
from .feed_state import ClientStats, FeedState
from .frame_cache import FrameCache
from .freshness import STALE_AFTER_S as STALE_AFTER_S  # PROTOCOL.md §3.3 (re-exported: cuagent.client)
from .received import FeedObserver
from .session import Session
from .snapshot_faults import SNAPSHOT_TIMEOUT_S
from .updates import Update
from .view import ClusterView

log = logging.getLogger("cuagent.client")



class Client:
    """Follows one or many endpoints (agents or relays) and keeps :attr:`view` current.

    ``endpoints``: ``"tcp://host:7710"`` (sync at port + 1), ``"FEED,SYNC"`` or
    :class:`Endpoint`. ``prefixes``: topic prefixes to follow (default everything).
    ``keep_frames``: also keep the latest raw frames per topo/state topic in :attr:`frames`
    (a :class:`~cuagent.feed.frame_cache.FrameCache` observing this client).
    ``rcvhwm``: messages queued per endpoint before ZeroMQ drops (the gaps are then counted).
    ``curve``: client keys (:class:`cuagent.curve.ClientKeys`) for agents/relays that run CURVE.
    ``lazy`` (default): keep each state body as it came and decode it when it is read
    (``DeviceView.state``, ``Update.body``), once, and only the newest of each device, so
    following many devices costs little beyond the ones read. A malformed body is then found
    when first read, not when it arrives: it is counted in ``stats.decode_errors`` and
    logged, the device keeps the state it had, and its update's ``body`` is None.
    ``lazy=False`` decodes every state on arrival (a malformed one is never applied)."""

    def __init__(
        self,
        endpoints: Iterable[Endpoint | str | Sequence[str]],
        prefixes: Sequence[str] = (wire.PREFIX,),
        context: Optional[zmq.Context[zmq.Socket[bytes]]] = None,
        keep_frames: bool = False,
        stale_after_s: float = STALE_AFTER_S,
        snapshot_timeout_s: float = SNAPSHOT_TIMEOUT_S,
        rcvhwm: int = 100_000,
        curve: Optional[ClientKeys] = None,
        lazy: bool = True,
    ) -> None:
        self.ctx = context or zmq.Context.instance()
        self.curve = curve
        self.prefixes = list(prefixes)
        for prefix in self.prefixes:
            if not prefix.startswith(wire.PREFIX) and not wire.PREFIX.startswith(prefix):
                raise ValueError(f"prefix {prefix!r} cannot match any cua1/ topic")
        self.stale_after_s = stale_after_s
        # Staleness is found by a look at every node (12,500 nodes: about a millisecond), so
        # not at every poll: at the earliest deadline the last look found (a heartbeat only
        # moves a deadline later), when a snapshot has dated a node's last heartbeat back
        # (a relay's silent_s), and at least this often.
        self._stale_look_s = min(0.5, stale_after_s / 4)
        self._stale_look_at = 0.0
        self.snapshot_timeout_s = snapshot_timeout_s
        self._state = FeedState(self.prefixes, snapshot_timeout_s, lazy)
        self._cache: Optional[FrameCache] = None
        if keep_frames:
            self._cache = FrameCache()
            self.observe(self._cache)
        self._callbacks: list[Callable[[Update], None]] = []
        parsed = [as_endpoint(e) for e in endpoints]
        if not parsed:
            raise ValueError("no endpoints given")
        self.sessions = [Session(self.ctx, e, self._state, rcvhwm, curve) for e in parsed]

    # ------------------------------------------------------------------ what it follows
    @property
    def view(self) -> ClusterView:
        return self._state.view

    @property
    def stats(self) -> ClientStats:
        return self._state.stats

    @property
    def seqs(self) -> Mapping[str, int]:
        """topic -> the last seq applied (in its node's current epoch). Read-only."""
        return self._state.seqs

    @property
    def epochs(self) -> Mapping[str, int]:
        """node -> its current epoch. Read-only."""
        return self._state.epochs

    @property
    def frames(self) -> Mapping[str, Sequence[bytes]]:
        """topic -> the latest topo/state frames; empty unless ``keep_frames``."""
        return self._cache.frames if self._cache is not None else {}

    @property
    def endpoints(self) -> list[Endpoint]:
        return [s.endpoint for s in self.sessions]

    def handshake_failures(self) -> dict[str, str]:
        """Upstreams (sync endpoint) whose handshakes fail, with why, as far as this client's
        sockets saw (a key refused, CURVE missing on one side): found some seconds after a
        snapshot request goes unanswered, cleared by the next reply."""
        return {s.endpoint.sync: s.faults.cause for s in self.sessions if s.faults.cause is not None}

    # ------------------------------------------------------------------ public API
    def close(self) -> None:
        for session in self.sessions:
            session.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def on_update(self, callback: Callable[[Update], None]) -> None:
        """Call ``callback(update)`` for every change, from inside :meth:`poll`."""
        self._callbacks.append(callback)

    def observe(self, observer: FeedObserver) -> None:
        """Show ``observer`` every message the moment it is applied, and every node dropped
        (:class:`~cuagent.feed.received.FeedObserver`): the hook for consumers that keep
        something per message (the relay's frame cache), where :meth:`on_update` delivers
        changes after each :meth:`poll`."""
        self._state.observers.append(observer)

    @property
    def ready(self) -> bool:
        """Every endpoint has answered its first snapshot."""
        return not any(session.joining for session in self.sessions)

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.ready and time.monotonic() < deadline:
            self.poll(min(0.05, max(0.0, deadline - time.monotonic())))
        return self.ready

    def poll_sockets(self) -> list[zmq.Socket[bytes]]:
        """The sockets that have work for :meth:`process` when readable (to embed the client
        in another poll loop, as the relay does)."""
        return [sock for session in self.sessions for sock in session.poll_sockets()]

    def poll(self, timeout: float = 0.0) -> list[Update]:
        """Wait up to ``timeout`` s for traffic, process everything available, return updates."""
        poller = zmq.Poller()
        for sock in self.poll_sockets():
            poller.register(sock, zmq.POLLIN)
        try:
            poller.poll(poll_timeout_ms(min(timeout, self.next_deadline())))
        except zmq.ZMQError as e:
            if e.errno != errno.EINTR:
                raise
        return self.process()

    async def apoll(self, timeout: float = 0.0) -> list[Update]:
        """:meth:`poll` for asyncio: waits without blocking the event loop."""
        import zmq.asyncio

        poller = zmq.asyncio.Poller()
        for sock in self.poll_sockets():
            poller.register(sock, zmq.POLLIN)
        await poller.poll(max(0.0, min(timeout, self.next_deadline())) * 1000.0)
        return self.process()

    def updates(self, duration: Optional[float] = None) -> Iterator[Update]:
        """Iterate over updates as they happen, for ``duration`` s (None: forever)."""
        end = None if duration is None else time.monotonic() + duration
        while end is None or time.monotonic() < end:
            remaining = 0.25 if end is None else min(0.25, max(0.0, end - time.monotonic()))
            yield from self.poll(remaining)

    async def aupdates(self, duration: Optional[float] = None) -> AsyncIterator[Update]:
        end = None if duration is None else time.monotonic() + duration
        while end is None or time.monotonic() < end:
            remaining = 0.25 if end is None else min(0.25, max(0.0, end - time.monotonic()))
            for update in await self.apoll(remaining):
                yield update
            await asyncio.sleep(0)

    # ------------------------------------------------------------------ processing
    def next_deadline(self) -> float:
        """Seconds until a snapshot times out or a node would go stale."""
        now = time.monotonic()
        due = [d for session in self.sessions for d in session.deadlines(now)]
        due.append(self._stale_look_at - now)
        return max(0.0, min(due))

    def process(self) -> list[Update]:
        """Handle everything already received (never blocks); return the updates."""
        for session in self.sessions:
            session.process()
        now = time.monotonic()
        for session in self.sessions:
            session.check_timers(now)
        self._check_stale(now)
        updates, self._state.updates = self._state.updates, []
        for update in updates:
            for cb in self._callbacks:
                cb(update)
        return updates

    def _check_stale(self, now: float) -> None:
        if now < self._stale_look_at and not self._state.dated_back:
            return
        self._state.dated_back = False
        after = self.stale_after_s
        earliest = now + self._stale_look_s
        gone: list[str] = []
        forgotten: list[tuple[str, float]] = []
        forget_after = self._state.forget_after
        for view in self.view.nodes.values():
            if view.stale:
                forget = forget_after.get(view.name)
                if forget is not None:
                    due = view.last_heard + forget
                    if now > due and self._state.subscribed(wire.build_topic("hb", view.name)):
                        forgotten.append((view.name, forget))
                    elif due < earliest:
                        earliest = due
                continue
            due = view.last_heard + after
            if now > due:
                view.stale = True
                log.warning("node %s is stale: no heartbeat for %.0f s", view.name, now - view.last_heard)
                self._state.emit("stale", view.name, None, None, None)
                if view.name in self._state.gone_pending:
                    gone.append(view.name)
            elif due < earliest:
                earliest = due
        for name in gone:  # a relay forgot it earlier; now it is stale here as well
            self._state.forget_node(name)
        for name, forget in forgotten:
            log.warning("node %s dropped: no heartbeat for %.0f s, the forget interval of the relay it came "
                        "through, and no node_gone from it (it may have restarted since)", name, forget)
            self._state.forget_node(name)
            self._state.emit("gone", name, None, None, None)
        # A heartbeat only moves a deadline later: until `earliest`, no node can go stale but
        # one dated back meanwhile.
        self._stale_look_at = earliest
