"""Every HTTP server of cuagent (the /metrics of agent and exporter, the extender) bounds what
clients can hold (cuagent/http_bounds.py): connections at once, a silent connection's life,
and the log lines of clients that hang up. Found by an adversarial review: ~55 half-sent
requests held the unit's 64 tasks and every scrape failed; each refusal and each client that
hung up mid-answer left a traceback of ~22 lines."""

from __future__ import annotations

import logging
import socket
import time
import urllib.request

import pytest

from cuagent.exporters.feed_metrics import FeedMetrics
from cuagent.exporters.prometheus import FeedCollector, MetricsServer, _QuietHandler
from feed_support import WAIT_S, wait_until


@pytest.fixture
def metrics_server():
    server = MetricsServer(FeedCollector(FeedMetrics()), ("127.0.0.1", 0))
    yield server
    server.close()


def scrape(server: MetricsServer) -> int:
    with urllib.request.urlopen(f"http://{server.address}/metrics", timeout=WAIT_S) as r:
        r.read()
        return int(r.status)


def test_connections_over_the_cap_are_closed_at_once_and_said_once(metrics_server, caplog):
    metrics_server.httpd.max_connections = 3  # (read when the first connection comes)
    held = [socket.create_connection(("127.0.0.1", metrics_server.port), timeout=WAIT_S) for _ in range(3)]
    try:
        for s in held:
            s.sendall(b"GET /metrics HTTP/1.1\r\n")  # a request never finished: the slot stays taken
        with caplog.at_level(logging.WARNING, logger="cuagent.http"):
            for _ in range(5):
                with socket.create_connection(("127.0.0.1", metrics_server.port), timeout=WAIT_S) as extra:
                    assert extra.recv(1) == b""  # closed at once, not queued behind the held ones
        said = [r.getMessage() for r in caplog.records if r.name == "cuagent.http"]
        assert len(said) == 1 and said[0].startswith("HTTP: refused 1 connection(s), the last from 127.0.0.1: "
                                                     "3 connections are open"), said
    finally:
        for s in held:
            s.close()
    wait_until(lambda: _scrapes(metrics_server), what="a scrape once the held connections are gone")


def test_one_client_cannot_take_every_slot(metrics_server, caplog):
    metrics_server.httpd.max_per_client = 2
    held = [socket.create_connection(("127.0.0.1", metrics_server.port), timeout=WAIT_S) for _ in range(2)]
    try:
        for s in held:
            s.sendall(b"GET /metrics HTTP/1.1\r\n")
        with caplog.at_level(logging.WARNING, logger="cuagent.http"):
            with socket.create_connection(("127.0.0.1", metrics_server.port), timeout=WAIT_S) as third:
                assert third.recv(1) == b""
        said = [r.getMessage() for r in caplog.records if r.name == "cuagent.http"]
        assert said and said[0].endswith("2 connections are open from there"), said
        # Another address (here 127.0.0.2, loopback too) still gets its scrape.
        other = socket.create_connection(("127.0.0.1", metrics_server.port), timeout=WAIT_S,
                                         source_address=("127.0.0.2", 0))
        with other:
            other.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            assert other.recv(12).startswith(b"HTTP/1.0 200")
    finally:
        for s in held:
            s.close()


def _scrapes(server: MetricsServer) -> bool:
    try:
        return scrape(server) == 200
    except OSError:
        return False


def test_a_silent_connection_is_closed_after_the_idle_timeout(metrics_server, monkeypatch):
    monkeypatch.setattr(_QuietHandler, "timeout", 0.5)
    with socket.create_connection(("127.0.0.1", metrics_server.port), timeout=WAIT_S) as s:
        s.sendall(b"GET /metr")  # and nothing more
        assert s.recv(4096) == b""  # closed by the server (the recv would time out otherwise)
    assert scrape(metrics_server) == 200


def test_a_request_dripped_a_byte_at_a_time_is_cut_off_at_its_deadline(metrics_server, monkeypatch):
    # Each byte within the read timeout, the whole request never done: held for ever, once.
    import cuagent.http_bounds as bounds

    monkeypatch.setattr(bounds, "REQUEST_DEADLINE_S", 1.5)
    monkeypatch.setattr(_QuietHandler, "timeout", 1.0)
    with socket.create_connection(("127.0.0.1", metrics_server.port), timeout=WAIT_S) as s:
        start = time.monotonic()
        closed = False
        for byte in b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
            try:
                s.send(bytes([byte]))
            except OSError:  # (a reset: closed)
                closed = True
                break
            s.settimeout(0.3)
            try:
                if s.recv(1) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass  # still open: the next byte within the read timeout
            if time.monotonic() - start > WAIT_S:
                break
        assert closed, "a request dripped a byte every 0.3 s was never cut off"
    assert scrape(metrics_server) == 200


def test_a_client_that_hangs_up_leaves_no_traceback(metrics_server, caplog):
    with caplog.at_level(logging.DEBUG, logger="cuagent.http"):
        for error in (BrokenPipeError(32, "Broken pipe"), ConnectionResetError(104, "reset"), TimeoutError()):
            try:
                raise error
            except OSError:
                metrics_server.httpd.handle_error(None, ("10.0.0.9", 40000))
        try:
            raise KeyError("a bug")
        except KeyError:
            metrics_server.httpd.handle_error(None, ("10.0.0.9", 40001))
    levels = [(r.levelname, r.exc_info is not None) for r in caplog.records if r.name == "cuagent.http"]
    assert levels == [("DEBUG", False)] * 3 + [("ERROR", True)], levels  # a real error keeps its traceback


def test_the_listen_backlog_is_the_kernels_largest(metrics_server):
    # socketserver's default of 5 timed out 23 of 100 connections opened at once.
    assert metrics_server.httpd.request_queue_size == socket.SOMAXCONN


def test_closing_a_server_ends_its_deadline_watch():
    server = MetricsServer(FeedCollector(FeedMetrics()), ("127.0.0.1", 0))
    assert scrape(server) == 200  # a connection: the watch started
    watch = server.httpd.__dict__["_watchdog"]
    assert watch.is_alive()
    server.close()
    watch.join(WAIT_S)
    assert not watch.is_alive()
