"""What every HTTP server of cuagent (the agent's and the exporter's /metrics, the scheduler
extender) bounds, so that clients that misbehave cost little and never take the process down.

Python's threading servers start one thread per connection with no limit, keep a silent
connection open for ever and listen with a backlog of 5. So, in an adversarial review: ~55
half-sent requests held the shipped unit's 64 tasks and every scrape failed, each refusal a
traceback; held connections at the file limit made the accept loop spin at 100 % CPU; a
burst of 100 connections timed 23 out; every client that hung up mid-answer logged 22 lines.
:class:`BoundedServer` serves at most ``MAX_CONNECTIONS`` at once, ``MAX_PER_CLIENT`` of
them from one address (the excess is closed at once, said once a minute), with the kernel's largest backlog, pauses accepting while out
of file descriptors, and logs a client that hangs up at DEBUG; handlers set ``timeout =
IDLE_TIMEOUT_S`` (:data:`HANDLER_TIMEOUT`) so a silent connection is closed, and a request
not whole within ``REQUEST_DEADLINE_S`` (one byte every few seconds) is cut off. Between
requests, a handler that keeps connections alive waits ``KEEPALIVE_IDLE_S`` for the next one
(:meth:`BoundedServer.next_request_begins`).
"""

from __future__ import annotations

import errno
import logging
import socket
import socketserver
import sys
import threading
import time
from typing import Any

log = logging.getLogger("cuagent.http")

MAX_CONNECTIONS = 32  # served at once: scrapers and kube-scheduler keep one or two each
MAX_PER_CLIENT = 8  # of them from one address: one client cannot take every slot
IDLE_TIMEOUT_S = 10.0  # a connection that sends nothing this long is closed
HANDLER_TIMEOUT = IDLE_TIMEOUT_S  # a request handler class's ``timeout``
REQUEST_DEADLINE_S = 20.0  # a request (the wait for it included) must be whole by then
# A kept-alive connection waits this long for its next request: longer than the 90 s a Go
# client (kube-scheduler) keeps an idle connection, so the client closes it first. Closing it
# ourselves races the client's next request, and Go does not retry a POST that meets a closed
# connection: that extender call fails and the pod waits out a scheduling backoff.
KEEPALIVE_IDLE_S = 120.0
REFUSED_LOG_S = 60.0  # refused connections are said at most this often, with their count
OUT_OF_FDS_PAUSE_S = 0.1  # accept is retried after this while the process has no fd to spare
_HUNG_UP = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class BoundedServer(socketserver.ThreadingMixIn):
    """Mixed in before a socketserver server class (HTTPServer, WSGIServer). The caps are read
    at each connection, so a test may lower them on a running server."""

    daemon_threads = True  # a request in flight never holds up the process's exit
    request_queue_size = socket.SOMAXCONN
    max_connections = MAX_CONNECTIONS
    max_per_client = MAX_PER_CLIENT
    keepalive_idle_s = KEEPALIVE_IDLE_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._lock = threading.Lock()  # the counts and deadlines below
        self._open = 0  # connections being served
        self._clients: dict[str, int] = {}  # address -> connections being served from it
        self._deadlines: dict[Any, float] = {}  # connection -> when its request must be whole
        self._refused, self._refused_said = 0, float("-inf")  # refused since said, when said
        self._closed = threading.Event()
        self._watchdog = threading.Thread(target=self._watch_deadlines, daemon=True, name="cuagent-http-deadlines")
        super().__init__(*args, **kwargs)  # binds: a bind that fails starts no thread
        self._watchdog.start()

    def get_request(self) -> Any:
        try:
            return super().get_request()  # type: ignore[misc]
        except OSError as e:
            if e.errno in (errno.EMFILE, errno.ENFILE):
                # The listening socket stays readable: without a pause, serve_forever spins.
                time.sleep(OUT_OF_FDS_PAUSE_S)
            raise

    def process_request(self, request: Any, client_address: Any) -> None:
        host = _host(client_address)
        with self._lock:
            if self._clients.get(host, 0) >= self.max_per_client:
                why = f"{self.max_per_client} connections are open from there"
            elif self._open >= self.max_connections:
                why = f"{self.max_connections} connections are open"
            else:
                why = ""
                self._open += 1
                self._clients[host] = self._clients.get(host, 0) + 1
        if why:
            self._refuse(request, client_address, why)
            return
        try:
            super().process_request(request, client_address)  # starts its thread
        except RuntimeError as e:  # "can't start new thread": the process's task limit
            self._served(request, host)
            self._refuse(request, client_address, str(e))

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        self.renew_deadline(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._served(request, _host(client_address))

    def _served(self, request: Any, host: str) -> None:
        """The connection is no longer served: its slot and deadline go."""
        with self._lock:
            self._deadlines.pop(request, None)
            self._open -= 1
            left = self._clients.get(host, 0) - 1
            if left > 0:
                self._clients[host] = left
            else:
                self._clients.pop(host, None)

    # A read timeout alone lets a client that sends a byte every few seconds hold its
    # connection for ever (32 such held every slot: scrapes and kube-scheduler locked out).
    # So each request has a deadline too; one thread shuts down the connections past theirs.
    def renew_deadline(self, request: Any) -> None:
        """The connection's next request must be whole within REQUEST_DEADLINE_S (a handler
        that keeps connections alive calls this after each answer)."""
        with self._lock:
            self._deadlines[request] = time.monotonic() + REQUEST_DEADLINE_S

    def next_request_begins(self, request: socket.socket, rfile: Any) -> bool:
        """Between two requests on a kept-alive connection: waits up to ``keepalive_idle_s`` for
        the next request's first byte, with no deadline meanwhile. True once it came (its
        request's deadline and the handler's read timeout apply again from there); False when
        the client closed the connection or stayed silent."""
        with self._lock:
            self._deadlines.pop(request, None)
        read_timeout = request.gettimeout()
        request.settimeout(self.keepalive_idle_s)
        try:
            began = bool(rfile.peek(1))  # (returns at once when the client sent it already)
        except OSError:  # TimeoutError included: silent too long
            return False
        request.settimeout(read_timeout)
        self.renew_deadline(request)
        return began

    def server_close(self) -> None:
        super().server_close()
        self._closed.set()  # the watchdog's end

    def _watch_deadlines(self) -> None:
        while not self._closed.wait(1.0):
            now = time.monotonic()
            with self._lock:
                late = [r for r, at in self._deadlines.items() if at <= now]
                for request in late:
                    del self._deadlines[request]
            for request in late:
                try:  # its handler's blocked read returns, and the connection is closed
                    request.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _refuse(self, request: Any, client_address: Any, why: str) -> None:
        try:  # said before the close: whoever sees the close can read the line
            self._refused += 1
            now = time.monotonic()
            if now - self._refused_said >= REFUSED_LOG_S:
                log.warning("HTTP: refused %d connection(s), the last from %s: %s", self._refused,
                            client_address[0] if client_address else "?", why)
                self._refused, self._refused_said = 0, now
        finally:
            self.shutdown_request(request)  # type: ignore[attr-defined]

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, _HUNG_UP):  # the client went away (or went silent): nothing to fix here
            log.debug("HTTP: %s: %s", client_address, error)
            return
        log.exception("HTTP: error serving %s", client_address)


def _host(client_address: Any) -> str:
    return str(client_address[0]) if isinstance(client_address, tuple) and client_address else ""
