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
not whole within ``REQUEST_DEADLINE_S`` (one byte every few seconds) is cut off.
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
REFUSED_LOG_S = 60.0  # refused connections are said at most this often, with their count
OUT_OF_FDS_PAUSE_S = 0.1  # accept is retried after this while the process has no fd to spare
_HUNG_UP = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class BoundedServer(socketserver.ThreadingMixIn):
    """Mixed in before a socketserver server class (HTTPServer, WSGIServer)."""

    daemon_threads = True  # a request in flight never holds up the process's exit
    request_queue_size = socket.SOMAXCONN
    max_connections = MAX_CONNECTIONS

    max_per_client = MAX_PER_CLIENT

    def _bounds(self) -> threading.BoundedSemaphore:
        # Made on first use: the server classes' own __init__ chains stay as they are.
        slots = self.__dict__.get("_slots")
        if slots is None:
            slots = self.__dict__["_slots"] = threading.BoundedSemaphore(self.max_connections)
            self.__dict__["_refused"] = [0, float("-inf")]  # refused since last said, when last said
            self.__dict__["_clients"] = {}  # address -> connections open
            self.__dict__["_clients_lock"] = threading.Lock()
        return slots

    def _client(self, client_address: Any, delta: int) -> int:
        """Connections open from the client's address, after adding ``delta``."""
        host = client_address[0] if isinstance(client_address, tuple) and client_address else ""
        with self.__dict__["_clients_lock"]:
            clients: dict[str, int] = self.__dict__["_clients"]
            n = clients.get(host, 0) + delta
            if n > 0:
                clients[host] = n
            else:
                clients.pop(host, None)
            return n

    def get_request(self) -> Any:
        try:
            return super().get_request()  # type: ignore[misc]
        except OSError as e:
            if e.errno in (errno.EMFILE, errno.ENFILE):
                # The listening socket stays readable: without a pause, serve_forever spins.
                time.sleep(OUT_OF_FDS_PAUSE_S)
            raise

    def process_request(self, request: Any, client_address: Any) -> None:
        slots = self._bounds()
        if self._client(client_address, +1) > self.max_per_client:
            self._client(client_address, -1)
            self._refuse(request, client_address, f"{self.max_per_client} connections are open from there")
            return
        if not slots.acquire(blocking=False):
            self._client(client_address, -1)
            self._refuse(request, client_address, f"{self.max_connections} connections are open")
            return
        try:
            super().process_request(request, client_address)  # starts its thread
        except RuntimeError as e:  # "can't start new thread": the process's task limit
            slots.release()
            self._client(client_address, -1)
            self._refuse(request, client_address, str(e))

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        self.renew_deadline(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._deadline_lock():
                self.__dict__["_deadlines"].pop(request, None)
            self._client(client_address, -1)
            self._bounds().release()

    # A read timeout alone lets a client that sends a byte every few seconds hold its
    # connection for ever (32 such held every slot: scrapes and kube-scheduler locked out).
    # So each request has a deadline too; one thread shuts down the connections past theirs.
    def _deadline_lock(self) -> Any:
        lock = self.__dict__.get("_deadlines_lock")
        if lock is None:
            lock = self.__dict__.setdefault("_deadlines_lock", threading.Lock())
            self.__dict__.setdefault("_deadlines", {})
            self.__dict__.setdefault("_closed", threading.Event())
        return lock

    def renew_deadline(self, request: Any) -> None:
        """The connection's next request must be whole within REQUEST_DEADLINE_S (a handler
        that keeps connections alive calls this after each answer)."""
        with self._deadline_lock():
            self.__dict__["_deadlines"][request] = time.monotonic() + REQUEST_DEADLINE_S
            if "_watchdog" not in self.__dict__:
                self.__dict__["_watchdog"] = threading.Thread(target=self._watch_deadlines, daemon=True,
                                                              name="cuagent-http-deadlines")
                self.__dict__["_watchdog"].start()

    def server_close(self) -> None:
        super().server_close()
        self._deadline_lock()
        self.__dict__["_closed"].set()  # the watchdog's end

    def _watch_deadlines(self) -> None:
        closed: threading.Event = self.__dict__["_closed"]
        while not closed.wait(1.0):
            now = time.monotonic()
            with self._deadline_lock():
                late = [r for r, at in self.__dict__["_deadlines"].items() if at <= now]
                for request in late:
                    del self.__dict__["_deadlines"][request]
            for request in late:
                try:  # its handler's blocked read returns, and the connection is closed
                    request.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _refuse(self, request: Any, client_address: Any, why: str) -> None:
        try:
            self._say_refused(client_address, why)
        finally:
            self.shutdown_request(request)  # type: ignore[attr-defined]

    def _say_refused(self, client_address: Any, why: str) -> None:
        refused = self.__dict__["_refused"]
        refused[0] += 1
        now = time.monotonic()
        if now - refused[1] >= REFUSED_LOG_S:
            log.warning("HTTP: refused %d connection(s), the last from %s: %s", refused[0],
                        client_address[0] if client_address else "?", why)
            refused[0], refused[1] = 0, now

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, _HUNG_UP):  # the client went away (or went silent): nothing to fix here
            log.debug("HTTP: %s: %s", client_address, error)
            return
        log.exception("HTTP: error serving %s", client_address)
