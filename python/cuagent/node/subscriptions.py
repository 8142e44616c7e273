"""Bounds on what feed subscribers can make a server hold (PROTOCOL.md §1).

libzmq keeps every prefix a subscriber sends in a trie, about 50 bytes per prefix byte, with no
limit of its own: 10 MB of prefixes took a PUB socket from 42 MB to 511 MB, and the allocator
keeps that memory after the peer leaves. ZMQ_XPUB_MANUAL does not bound it: libzmq still stores
every manual subscription in a second trie (to replay unsubscriptions when the peer leaves).

So a feed socket is an XPUB that reports every subscription it receives (ZMQ_XPUB_VERBOSE),
each carrying the file descriptor of the connection that sent it (libzmq attaches it to the
message's metadata: ZMQ_SRCFD). The guard charges each connection for the distinct prefixes
it has sent, and shuts down the socket of a connection that goes over its bound; libzmq then
ends that connection and frees its subscriptions, and every other subscriber keeps receiving.
libzmq bounds the rest: ZMQ_MAXMSGSIZE drops a peer that sends a longer frame, and a small
ZMQ_RCVBUF and ZMQ_RCVHWM keep small what a dropped peer had already sent (libzmq still reads
that before it sees the connection end).

The read side goes first (SHUT_RD): libzmq reads what was queued, sees the end and closes. Both
sides only for a peer that keeps sending after that: a full shutdown makes the kernel report a
hang-up, and libzmq 4.3.5 aborts the process (assertion !_io_error, zeromq/libzmq#4841) when a
hang-up finds the connection's input paused and a heartbeat or PING is processed before it
resumes, which a well-behaved subscriber over its bound must not be able to cause.
"""

from __future__ import annotations

import bisect
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Optional

import zmq

from .. import wire

log = logging.getLogger("cuagent.feed")

# The longest prefix worth holding: one naming a whole topic. Longer ones match nothing.
MAX_PREFIX_BYTES = wire.MAX_TOPIC_BYTES
# libzmq drops a peer sending a larger frame (checked before anything is stored). Not lower:
# the connection's own handshake (a CURVE INITIATE with its metadata) must fit.
MAX_INBOUND_FRAME_BYTES = 2048
# Inbound messages libzmq moves from one connection to the socket at a time, and the kernel's
# receive buffer per connection: a subscriber sends a few short prefixes, and whatever sits
# here when a peer is dropped is still read and stored before libzmq sees the end. Above a few
# messages libzmq keeps moving a flood in one pass before the guard sees any of it (at 64: 26k
# prefixes, +239 MB); at 1 the connection's input is paused nearly all the time, which is when
# a reset can abort libzmq (see above).
INBOUND_HWM = 4
INBOUND_RCVBUF = 16 * 1024
# What one distinct prefix costs a connection: the bytes it adds to libzmq's trie (~50 bytes of
# memory each), i.e. those beyond the longest start it shares with a prefix the connection
# already holds, plus this for libzmq's per-entry bookkeeping.
PREFIX_OVERHEAD = 32
# Per connection: 1,000 node-level prefixes (cua1/<kind>/<node>/, 2-5 new bytes each) fit, and a
# libzmq SUB sends at most 1,000 (its SNDHWM) when it connects. Random prefixes: ~2 MB.
PEER_BUDGET_BYTES = 48 * 1024
# All connections together: the largest holder is dropped beyond this (~25 MB in libzmq).
TOTAL_BUDGET_BYTES = 512 * 1024
# Notifications handled per call, so that a flood cannot starve publishing.
MAX_NOTIFICATIONS_PER_ROUND = 1024
SWEEP_INTERVAL_S = 2.0
LOG_INTERVAL_S = 10.0
# A dropped peer still sending after this many subscriptions, or this long, is reset (SHUT_RDWR):
# with only its read side shut, libzmq would read on as long as data keeps coming.
RESET_AFTER_REFUSED = 64
RESET_AFTER_S = 2.0


@dataclass
class _Peer:
    fd: int
    inode: int  # of the socket: tells a reused descriptor number from the connection we charged
    address: str
    prefixes: list[bytes] = field(default_factory=list)  # sorted: neighbours share the longest start
    charge: int = 0
    dropped: bool = False
    dropped_at: float = 0.0
    refused: int = 0
    reset: bool = False


class SubscriptionGuard:
    """Reads a feed XPUB's subscription notifications and keeps every connection within its
    bounds. Used only by the thread that owns the socket: :meth:`drain` when it is readable,
    :meth:`tick` now and then.

    ``node``: an agent publishes only its own node's topics (for counting subscriptions that
    can never match); a relay publishes any node's (None)."""

    def __init__(self, sock: zmq.Socket[bytes], endpoint: str, node: Optional[str] = None,
                 peer_budget: int = PEER_BUDGET_BYTES, total_budget: int = TOTAL_BUDGET_BYTES) -> None:
        self.sock = sock
        self.node = node
        self.peer_budget = peer_budget
        self.total_budget = total_budget
        self._local = _local_address(endpoint)
        self.stats: dict[str, int] = {
            "subscriptions": 0,  # subscribe notifications read
            "unmatchable": 0,  # ... whose prefix no topic of this server can start with
            "refused": 0,  # ... from connections dropped or gone (not charged, soon freed)
            "dropped_peers": 0,  # connections shut down for going over a bound
            "reset_peers": 0,  # ... of which kept sending, and were reset
            "inbound_messages": 0,  # non-subscription messages from XSUB peers (discarded)
        }
        self._peers: dict[int, _Peer] = {}
        self._total = 0
        self._next_sweep = 0.0
        self._next_log = 0.0
        self._unlogged: list[str] = []

    @property
    def held_bytes(self) -> int:
        """What the connections alive and not dropped are charged, together."""
        return self._total

    def drain(self, limit: int = MAX_NOTIFICATIONS_PER_ROUND) -> int:
        """Handle up to ``limit`` queued notifications; return how many there were."""
        n = 0
        while n < limit:
            try:
                frame = self.sock.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            n += 1
            data = frame.bytes
            if not data or data[0] > 1:
                self.stats["inbound_messages"] += 1
            elif data[0] == 1:
                self._subscribed(data[1:], frame)
            # An unsubscription frees what libzmq held, but is not credited: a peer may cancel
            # prefixes it never sent (libzmq reports those too), and one whose subscriptions
            # come and go is charged for every distinct prefix it used.
        return n

    def tick(self, now: Optional[float] = None) -> None:
        now = time.monotonic() if now is None else now
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_INTERVAL_S
            for peer in [p for p in self._peers.values() if _inode(p.fd) != p.inode]:
                self._forget(peer)
            for peer in self._peers.values():
                if peer.dropped and not peer.reset and now - peer.dropped_at > RESET_AFTER_S:
                    self._reset(peer)
        if self._unlogged and now >= self._next_log:
            self._flush_log(now)

    # ------------------------------------------------------------------ internals
    def _subscribed(self, prefix: bytes, frame: zmq.Frame) -> None:
        self.stats["subscriptions"] += 1
        if not wire.prefix_could_match(prefix, self.node):
            self.stats["unmatchable"] += 1
        try:
            fd = frame.get(zmq.SRCFD)
        except zmq.ZMQError:  # no metadata: an inproc peer, in this process
            return
        peer = self._peer(fd, frame)
        if peer is None:  # its connection ended (dropped) before we read this
            self.stats["refused"] += 1
            return
        if peer.dropped:
            self.stats["refused"] += 1
            peer.refused += 1
            if peer.refused >= RESET_AFTER_REFUSED and not peer.reset:
                self._reset(peer)
            return
        if len(prefix) > MAX_PREFIX_BYTES:
            self._drop(peer, f"a prefix of {len(prefix)} bytes (at most {MAX_PREFIX_BYTES})")
            return
        held = peer.prefixes
        i = bisect.bisect_left(held, prefix)
        if i < len(held) and held[i] == prefix:
            return  # libzmq holds a prefix once per connection
        shared = max(_shared(prefix, held[i - 1]) if i else 0, _shared(prefix, held[i]) if i < len(held) else 0)
        cost = len(prefix) - shared + PREFIX_OVERHEAD
        held.insert(i, prefix)
        peer.charge += cost
        self._total += cost
        if peer.charge > self.peer_budget:
            self._drop(peer, f"{len(peer.prefixes)} prefixes charged {peer.charge} bytes (at most {self.peer_budget})")
        elif self._total > self.total_budget:
            biggest = max((p for p in self._peers.values() if not p.dropped), key=lambda p: p.charge)
            self._drop(biggest, f"the largest holder ({biggest.charge} bytes) when all subscribers held "
                                f"{self._total} (at most {self.total_budget})")

    def _peer(self, fd: int, frame: zmq.Frame) -> Optional[_Peer]:
        inode = _inode(fd) if fd >= 0 else None
        if inode is None:
            return None
        peer = self._peers.get(fd)
        if peer is None or peer.inode != inode:
            if peer is not None:  # that connection ended and its descriptor number was reused
                self._forget(peer)
            try:
                address = str(frame.get("Peer-Address"))
            except zmq.ZMQError:
                address = "?"
            peer = self._peers[fd] = _Peer(fd, inode, address)
        return peer

    def _forget(self, peer: _Peer) -> None:
        if not peer.dropped:
            self._total -= peer.charge
        del self._peers[peer.fd]

    def _drop(self, peer: _Peer, why: str) -> None:
        peer.dropped = True
        peer.dropped_at = time.monotonic()
        self._total -= peer.charge
        peer.prefixes.clear()
        self.stats["dropped_peers"] += 1
        shut = _shutdown(peer.fd, peer.inode, self._local, socket.SHUT_RD)
        self._unlogged.append(f"{peer.address} (fd {peer.fd}{'' if shut else ', already gone'}): {why}")
        self._flush_log(peer.dropped_at)

    def _reset(self, peer: _Peer) -> None:
        peer.reset = True
        if _shutdown(peer.fd, peer.inode, self._local, socket.SHUT_RDWR):
            self.stats["reset_peers"] += 1

    def _flush_log(self, now: float) -> None:
        if now < self._next_log:
            return
        self._next_log = now + LOG_INTERVAL_S
        first, more = self._unlogged[0], len(self._unlogged) - 1
        log.warning("feed: dropped a subscriber over its bounds: %s%s; totals %s", first,
                    f" (and {more} more since the last report)" if more else "", self.stats)
        self._unlogged.clear()


def _shared(a: bytes, b: bytes) -> int:
    """Length of the longest common start of ``a`` and ``b``."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _inode(fd: int) -> Optional[int]:
    try:
        return os.fstat(fd).st_ino
    except OSError:
        return None


def _local_address(endpoint: str) -> Optional[tuple[str, object]]:
    """What getsockname() of a connection accepted on ``endpoint`` returns, to compare."""
    if endpoint.startswith("tcp://"):
        return ("tcp", int(endpoint.rsplit(":", 1)[1]))
    if endpoint.startswith("ipc://"):
        path = endpoint[len("ipc://"):]
        return ("ipc", "\0" + path[1:] if path.startswith("@") else path)  # @: the abstract namespace
    return None


def _shutdown(fd: int, inode: int, local: Optional[tuple[str, object]], how: int) -> bool:
    """Shut down (``how``) the connection behind ``fd`` if it still is the one we charged (same
    socket inode) and was accepted on the feed's endpoint. libzmq, which owns the descriptor,
    then reads the end of the stream and closes it; nothing is closed under it."""
    try:
        dup = os.dup(fd)
    except OSError:
        return False
    try:
        sock = socket.socket(fileno=dup)
    except OSError:  # not a socket (any more)
        os.close(dup)
        return False
    # Our duplicate keeps the socket alive while we look: same inode, same connection.
    with sock:
        try:
            if os.fstat(dup).st_ino != inode or local is None:
                return False
            name = sock.getsockname()
            if local[0] == "tcp":
                if sock.family not in (socket.AF_INET, socket.AF_INET6) or name[1] != local[1]:
                    return False
            else:
                path = name.decode(errors="replace") if isinstance(name, bytes) else name
                if sock.family != socket.AF_UNIX or path != local[1]:
                    return False
            sock.shutdown(how)
            return True
        except OSError:
            return False
