"""Shared helpers for the feed tests: real `cuagent run` / `cuagent relay` subprocesses on
private ipc endpoints, and raw pyzmq peers. Every wait has a deadline, so a broken build fails
with a message instead of hanging CI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import msgpack
import zmq

ROOT = Path(__file__).resolve().parents[1]
WAIT_S = 20.0  # generous: the CI machine has 2 busy cores


def _env() -> dict[str, str]:
    # The installed package (scripts/test installs it): the source tree has no
    # compiled _core, so it must not shadow the installation.
    return dict(os.environ, PYTHONUNBUFFERED="1")


class Proc:
    def __init__(self, args: list[str], feed: str, sync: str, log: Path) -> None:
        self.args, self.feed, self.sync, self.log_path = args, feed, sync, log
        self._log = open(log, "wb")
        self.popen = subprocess.Popen([sys.executable, "-m", "cuagent.cli", *args], stdout=self._log, stderr=subprocess.STDOUT, env=_env())

    @property
    def endpoint(self) -> str:
        return f"{self.feed},{self.sync}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ping(self, timeout: float = WAIT_S) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                self.kill()
                raise AssertionError(f"{self.args[0]} exited with {self.popen.returncode}:\n{self.log()}")
            reply = request(self.sync, {"op": "ping"}, timeout=0.5)
            if reply is not None:
                return msgpack.unpackb(reply)
        self.kill()
        raise AssertionError(f"{self.args[0]} never answered ping:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = WAIT_S) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
                raise AssertionError(f"{self.args[0]} did not stop within {timeout} s:\n{self.log()}")
        if not self._log.closed:
            self._log.close()
        return self.popen.returncode

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(5)
        if not self._log.closed:
            self._log.close()


def start_agent(tmp: Path, name: str = "node-a", devices: str = "h100-sxm:fragmented", *extra: str,
                rate_hz: int = 200, interval_ms: int = 50) -> Proc:
    feed, sync = f"ipc://{tmp}/{name}.feed", f"ipc://{tmp}/{name}.sync"
    args = ["run", "--driver", "mock", "--mock-devices", devices, "--seed", "3", "--node", name,
            "--feed", feed, "--sync", sync, "--rate-hz", str(rate_hz), "--publish-interval-ms", str(interval_ms),
            "--log-level", "info", *extra]
    proc = Proc(args, feed, sync, tmp / f"{name}.log")
    proc.wait_ping()
    return proc


def start_relay(tmp: Path, name: str, *upstreams: str) -> Proc:
    feed, sync = f"ipc://{tmp}/{name}.feed", f"ipc://{tmp}/{name}.sync"
    args = ["relay", "--name", name, "--feed", feed, "--sync", sync, "--log-level", "info"]
    for up in upstreams:
        args += ["--connect", up]
    proc = Proc(args, feed, sync, tmp / f"{name}.log")
    proc.wait_ping()
    return proc


def request(sync: str, req: dict, timeout: float = 5.0) -> Optional[bytes]:
    """One request on a fresh DEALER; the reply bytes, or None when none came in time."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(sync)
    try:
        sock.send(msgpack.packb(req))
        if sock.poll(int(timeout * 1000)):
            return sock.recv()
        return None
    finally:
        sock.close(0)


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT_S, step: Optional[Callable[[], None]] = None,
               what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if step is not None:
            step()
        else:
            time.sleep(0.02)
        if predicate():
            return
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Recorder:
    """A raw SUB that keeps every frame it receives (the ground truth of what was sent)."""

    def __init__(self, feed: str, prefix: bytes = b"cua1/") -> None:
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, prefix)
        self.sock.connect(feed)
        self.frames: list[list[bytes]] = []

    def drain(self, timeout_ms: int = 0) -> int:
        n = 0
        while self.sock.poll(timeout_ms if n == 0 else 0):
            self.frames.append(self.sock.recv_multipart())
            n += 1
        return n

    def close(self) -> None:
        self.sock.close(0)


def drain_quiet(step: Callable[[], int], quiet_s: float = 0.4, timeout: float = WAIT_S) -> None:
    """Call ``step`` (returns messages handled) until nothing arrived for ``quiet_s``."""
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    while time.monotonic() < deadline:
        if step():
            last = time.monotonic()
        elif time.monotonic() - last > quiet_s:
            return
        time.sleep(0.01)
    raise AssertionError("feed never went quiet")
