"""Failed handshakes on a node's feed and sync sockets, in its log (PROTOCOL.md §6).

A client whose handshake fails gets nothing at all, and without this the server said nothing
either: only a refused CURVE key reached the log (the ZAP handler sees those, with the key:
:class:`cuagent.curve.Rejections`). A client without CURVE keys at a CURVE node, a client
with CURVE at a node without it, or one holding the wrong server key fail before ZAP, and
only a socket monitor sees them. :class:`HandshakeWatch` reads the monitors of both sockets
on a thread of its own and :class:`HandshakeFailures` says what each failure means, once per
socket and kind per few minutes with how often it came since (clients retry for ever).

libzmq names no peer in these events (only the bound endpoint), so the lines cannot say who.
A connection closed mid-handshake goes to DEBUG: mostly TCP health checks and port scans, but
also, now and then, a client with the other CURVE setting that read this node's greeting and
hung up before this node had read the client's (a race this node mostly wins: then it is told).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Optional, Sequence

import zmq

from ..curve import watch
from ..log_throttle import KeyedThrottle
from . import sockets

log = logging.getLogger("cuagent.handshake")

SAY_EVERY_S = 300.0  # one kind of failure on one socket is said at most this often
WATCHED = zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL


class HandshakeFailures:
    """What a failed handshake on a server socket means, said at most once per socket and kind
    per ``every_s``. ``curve_public``: this node's public key (z85) when it runs CURVE."""

    def __init__(self, curve_public: Optional[bytes], every_s: float = SAY_EVERY_S,
                 logger: logging.Logger = log) -> None:
        self.log, self.curve_public = logger, curve_public
        self.throttle = KeyedThrottle(every_s)

    def failed(self, where: str, event: int, value: int, now: float) -> None:
        """``where``: the socket ("feed tcp://0.0.0.0:7710"); ``event``, ``value``: the monitor's."""
        if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            log_level, why = logging.DEBUG, (
                "a connection closed during the ZMTP handshake (a TCP health check or port scan, a client "
                "that went away, or one whose CURVE setting differs from this node's and hung up first)")
        elif event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
            log_level, why = logging.WARNING, self._protocol_error(value)
        else:
            return
        since = self.throttle.due((where, event, value), now)
        if since is None:
            return
        more = f"; {since} more since this was last said" if since else ""
        self.log.log(log_level, "%s: %s (libzmq does not name the peer)%s", where, why, more)

    def _protocol_error(self, code: int) -> str:
        if code == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH and self.curve_public is not None:
            return ("refused a client without CURVE keys: this node requires CURVE; give the client "
                    "--curve-client-key and --curve-server-key (this node's public key)")
        if code == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
            return ("refused a client using CURVE: this node runs without it; leave out the client's "
                    "--curve-client-key and --curve-server-key, or run this node with --curve-secret-key "
                    "and --curve-allow")
        if code == zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC and self.curve_public is not None:
            return ("a CURVE client's handshake could not be decrypted: its --curve-server-key is not this "
                    f"node's public key {self.curve_public.decode('ascii', 'replace')}")
        return f"a peer broke the ZMTP handshake (protocol error {_protocol_error_name(code)}): not a cuagent client?"


# libzmq's ZMQ_PROTOCOL_ERROR_* codes by value, to name one in a log line.
_PROTOCOL_ERRORS = {int(getattr(zmq, n)): n for n in dir(zmq) if n.startswith("PROTOCOL_ERROR_")}


def _protocol_error_name(code: int) -> str:
    return _PROTOCOL_ERRORS.get(code, hex(code))


class HandshakeWatch:
    """A thread that reads the handshake failures of ``socks`` ((name, socket) pairs, monitored
    from the constructor's thread, which must own them) into ``failures`` until :meth:`stop`."""

    def __init__(self, socks: Sequence[tuple[str, zmq.Socket[bytes]]], failures: HandshakeFailures) -> None:
        self.failures = failures
        self._monitors: list[tuple[str, zmq.Socket[bytes]]] = []
        self._wake_r = self._wake_w = -1
        try:
            for name, sock in socks:
                self._monitors.append((f"{name} {sockets.listening_on(sock)}", watch(sock, WATCHED)))
            self._wake_r, self._wake_w = os.pipe()
            self._thread = threading.Thread(target=self._run, name="cuagent-handshakes", daemon=True)
            self._thread.start()
        except (OSError, RuntimeError, zmq.ZMQError):
            self._close()
            raise

    @classmethod
    def start(cls, socks: Sequence[tuple[str, zmq.Socket[bytes]]],
              failures: HandshakeFailures) -> Optional["HandshakeWatch"]:
        """The watch, or None (said in the log) when it cannot start, e.g. out of file
        descriptors: the node serves on without it."""
        try:
            return cls(socks, failures)
        except (OSError, RuntimeError, zmq.ZMQError) as e:
            log.warning("failed handshakes will not be logged: cannot watch the sockets (%s)", e)
            return None

    def stop(self) -> None:
        """Stop the thread and close the monitors (before the sockets they watch close)."""
        if self._wake_w < 0:
            return
        os.write(self._wake_w, b"\0")
        self._thread.join()
        self._close()

    def _close(self) -> None:
        for _, monitor in self._monitors:
            monitor.close(0)
        self._monitors = []
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def _run(self) -> None:
        from zmq.utils.monitor import recv_monitor_message

        poller = zmq.Poller()
        where = {}
        for name, monitor in self._monitors:
            poller.register(monitor, zmq.POLLIN)
            where[monitor] = name
        poller.register(self._wake_r, zmq.POLLIN)
        while True:
            for monitor, _ in poller.poll():
                if monitor == self._wake_r:
                    return
                while monitor.poll(0):
                    event = recv_monitor_message(monitor, zmq.NOBLOCK)
                    self.failures.failed(where[monitor], int(event["event"]), int(event["value"]), time.monotonic())
