"""Socket options of a node's server sockets (PROTOCOL.md §1), and the request handling of a
sync ROUTER (§5), so the agent and the relay treat malformed requests identically."""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
from typing import TYPE_CHECKING, Any, Callable, Optional, cast

import zmq

from .. import ipv6
from . import subscriptions
from ..wire import MAX_SYNC_REQUEST_BYTES, Request, RequestError, describe, error_reply, parse_request

if TYPE_CHECKING:
    from ..curve import ServerKeys

log = logging.getLogger("cuagent.sync")

# ZMTP heartbeats (PROTOCOL.md §1): a dead peer is noticed within 3 s and its queue freed.
HEARTBEAT_IVL_MS = 1000
HEARTBEAT_TIMEOUT_MS = 3000
# Messages queued per subscriber before PUB drops for it; at ~100 msg/s from an 8-GPU node
# this is ~10 s of slack, and it bounds the memory a stalled subscriber can pin.
DEFAULT_SNDHWM = 1000
# Replies one sync round may send before the publisher gets the loop back.
MAX_REQUESTS_PER_ROUND = 64
# Replies queued per sync connection before ROUTER drops further ones for it. A client has
# one request in flight (PROTOCOL.md §5); one that sends requests and never reads the
# replies (a snapshot of 8 MI300X is ~130 KB) pinned 1000 of them, and took the agent past
# its memory limit within a second. 16, not fewer: libzmq tells a writer what its peer read
# in steps of half the HWM, and a CI run with 4 once saw a reading client's reply go missing.
SYNC_SNDHWM = 16


# zmq.Socket.send is a Python layer (routing ids, groups) over the backend's send; a publisher
# that sends three frames per device and window calls the backend's directly. Flags as ints:
# pyzmq's enum flags cost an object per `|`.
_send_frame: Callable[..., Any] = getattr(zmq.backend, "Socket", zmq.Socket).send
_MORE = int(zmq.SNDMORE | zmq.NOBLOCK)
_LAST = int(zmq.NOBLOCK)


def publish(sock: zmq.Socket[bytes], frames: list[bytes]) -> None:
    """Send one feed message without blocking: a PUB or XPUB drops it for a subscriber whose
    queue is full (NOBLOCK makes that explicit) rather than wait."""
    try:
        for frame in frames[:-1]:
            _send_frame(sock, frame, _MORE)
        _send_frame(sock, frames[-1], _LAST)
    except zmq.Again:
        pass


def heartbeats(sock: zmq.Socket[bytes]) -> None:
    sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
    sock.setsockopt(zmq.HEARTBEAT_TTL, HEARTBEAT_TIMEOUT_MS)


def bind_feed(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, sndhwm: int = DEFAULT_SNDHWM,
              curve: Optional["ServerKeys"] = None) -> zmq.Socket[bytes]:
    """The feed: an XPUB whose every inbound subscription is read and bounded by a
    :class:`~cuagent.node.subscriptions.SubscriptionGuard` (PUB would hold them unbounded, unseen)."""
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, sndhwm)
    # Every subscription, duplicates included, is reported with its connection.
    sock.setsockopt(zmq.XPUB_VERBOSE, 1)
    sock.setsockopt(zmq.MAXMSGSIZE, subscriptions.MAX_INBOUND_FRAME_BYTES)
    sock.setsockopt(zmq.RCVHWM, subscriptions.INBOUND_HWM)
    sock.setsockopt(zmq.RCVBUF, subscriptions.INBOUND_RCVBUF)
    heartbeats(sock)
    if curve is not None:
        curve.apply(sock)
    _bind(sock, endpoint, "feed")
    return sock


def bind_sync(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, sndhwm: int = SYNC_SNDHWM,
              curve: Optional["ServerKeys"] = None) -> zmq.Socket[bytes]:
    sock = ctx.socket(zmq.ROUTER)
    if curve is not None:
        curve.apply(sock)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, min(sndhwm, SYNC_SNDHWM))
    # libzmq drops the connection of a peer that sends a larger message: no request can make
    # the agent buffer more than this.
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_SYNC_REQUEST_BYTES)
    heartbeats(sock)
    _bind(sock, endpoint, "sync")
    return sock


class EndpointInUse(OSError):
    """An endpoint another process listens on (tcp EADDRINUSE, or a live ipc socket)."""


def _bind(sock: zmq.Socket[bytes], endpoint: str, what: str) -> None:
    if endpoint.startswith("ipc://"):
        occupied = ipc_occupant(endpoint[len("ipc://"):])
        if occupied is not None:
            sock.close(0)
            error = EndpointInUse if occupied.startswith(IN_USE) else OSError
            raise error(f"cannot bind {what} socket to {endpoint!r}: {occupied}")
    ipv6.enable_for(sock, endpoint)
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as e:
        sock.close(0)
        error = EndpointInUse if e.errno == errno.EADDRINUSE else OSError
        raise error(f"cannot bind {what} socket to {endpoint!r}: {e}") from None


IN_USE = "in use by a running process"

# What a connect to an ipc path says when nothing listens there any more: the file of a process
# that died (or closed without removing it), which binding may replace.
_STALE = (errno.ECONNREFUSED, errno.ENOENT)


def ipc_occupant(path: str) -> Optional[str]:
    """Why nothing may bind ``path``, or None when it is free or a stale socket file.

    libzmq's ipc bind unlinks whatever is at the path before it binds: a second agent given
    the first one's endpoints would take them over silently, the first running on, unreachable
    (tcp refuses with EADDRINUSE). So a socket there is probed with a plain connect: one a live
    process listens on accepts (or, its backlog full, would block); one left by a process that
    died refuses, and is reused. Any other file is never deleted. (The probe and the bind are
    not atomic: two agents started in the same instant can still race.)"""
    if path in ("", "*") or path.startswith("@"):
        # A fresh temporary path (ipc://*); Linux's abstract namespace, where a bind in use
        # fails with EADDRINUSE and nothing is unlinked.
        return None
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError:
        return None  # the bind reports what is wrong with the path
    if not stat.S_ISSOCK(mode):
        return "the path exists and is not a socket (it is left as it is)"
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.setblocking(False)  # a live listener with a full backlog answers EAGAIN, never blocks us
        rc = probe.connect_ex(path)
    except OSError:  # a path too long for sockaddr_un: the bind refuses it too, and says why
        return None
    finally:
        probe.close()
    if rc == 0 or rc in (errno.EAGAIN, errno.EINPROGRESS):
        return f"{IN_USE} (stop it, or choose another path)"
    if rc in _STALE:
        return None
    # EACCES (another user's), EPROTOTYPE (a datagram socket): someone's socket, not ours to unlink.
    return f"a socket is there that could not be probed ({os.strerror(rc)}); it is left as it is"


def bound_endpoint(sock: zmq.Socket[bytes]) -> str:
    """The endpoint actually bound, as a peer on this host connects to it (resolves tcp port 0
    and wildcards, for tests and demo): a wildcard address becomes loopback."""
    ep = cast(bytes, sock.getsockopt(zmq.LAST_ENDPOINT)).decode()
    return ep.replace("0.0.0.0", "127.0.0.1").replace("[::]", "[::1]")


# LAST_ENDPOINT of a socket bound on every interface: IPv4's, or IPv6's (dual-stack).
_ALL_INTERFACES = ("tcp://0.0.0.0:", "tcp://[::]:")


def listening_on(sock: zmq.Socket[bytes]) -> str:
    """Where ``sock`` listens, as an operator checking its exposure needs to read it: the
    address bound, never the loopback form :func:`bound_endpoint` gives peers."""
    ep = cast(bytes, sock.getsockopt(zmq.LAST_ENDPOINT)).decode()
    return f"{ep} (all interfaces)" if ep.startswith(_ALL_INTERFACES) else ep


def serve_requests(sock: zmq.Socket[bytes], answer: Callable[[Request], bytes], stats: dict[str, int]) -> None:
    """Answer what is queued on a sync ROUTER, each request at most once, never blocking.

    ``answer`` returns the packed reply or raises RequestError; anything else it raises is a
    bug, logged, and the peer still gets an error reply rather than silence."""
    for _ in range(MAX_REQUESTS_PER_ROUND):
        try:
            frames = sock.recv_multipart(zmq.NOBLOCK, copy=True)
        except zmq.Again:
            return
        envelope, req, error = parse_request(frames)
        if req is not None:
            try:
                reply = answer(req)
                stats["requests"] = stats.get("requests", 0) + 1
            except RequestError as e:
                error = str(e)
            except Exception:  # noqa: BLE001 — a bug must not take the agent down with it
                log.exception("sync: internal error answering %s", describe(req.op))
                error = "internal error"
        if error is not None:
            stats["bad_requests"] = stats.get("bad_requests", 0) + 1
            log.debug("sync: bad request: %s", error)
            reply = error_reply(error)
        try:
            # What the peer's pipe has taken off since: libzmq tells a writer so by commands it
            # processes when it next looks (a send looks at most once a millisecond), and with a
            # small SYNC_SNDHWM a reply to a client that reads every reply at once could otherwise
            # meet a queue that only seems full, and be dropped.
            sock.getsockopt(zmq.EVENTS)
            sock.send_multipart(envelope + [reply], zmq.NOBLOCK)
        except zmq.Again:
            # The peer is not reading (its queue is at the HWM): drop rather than block.
            stats["dropped_replies"] = stats.get("dropped_replies", 0) + 1
        except zmq.ZMQError as e:  # e.g. EHOSTUNREACH: the peer left
            log.debug("sync: reply not sent: %s", e)
