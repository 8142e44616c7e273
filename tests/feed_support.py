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
    """``cuagent <args>`` in a subprocess; ``launcher`` (a script path) runs instead of
    ``-m cuagent.cli`` for fakes that must be scripted inside the agent's own process."""

    def __init__(self, args: list[str], feed: str, sync: str, log: Path, env: Optional[dict[str, str]] = None,
                 launcher: Optional[list[str]] = None) -> None:
        self.args, self.feed, self.sync, self.log_path = args, feed, sync, log
        self._log = open(log, "wb")
        head = launcher or ["-m", "cuagent.cli"]
        self.popen = subprocess.Popen([sys.executable, *head, *args], stdout=self._log, stderr=subprocess.STDOUT,
                                      env=dict(_env(), **(env or {})))

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


def start_real_agent(tmp: Path, name: str, driver_args: list[str], env: Optional[dict[str, str]] = None,
                     launcher: Optional[list[str]] = None, extra: tuple[str, ...] = ()) -> Proc:
    """`cuagent run` on a real backend (against a fake vendor library) on private ipc endpoints."""
    feed, sync = f"ipc://{tmp}/{name}.feed", f"ipc://{tmp}/{name}.sync"
    args = ["run", *driver_args, "--node", name, "--feed", feed, "--sync", sync, "--rate-hz", "100",
            "--publish-interval-ms", "100", "--log-level", "info", *extra]
    proc = Proc(args, feed, sync, tmp / f"{name}.log", env=env, launcher=launcher)
    proc.wait_ping()
    return proc


def start_relay(tmp: Path, name: str, *upstreams: str, extra: tuple[str, ...] = (), ping: bool = True) -> Proc:
    feed, sync = f"ipc://{tmp}/{name}.feed", f"ipc://{tmp}/{name}.sync"
    args = ["relay", "--name", name, "--feed", feed, "--sync", sync, "--log-level", "info", *extra]
    for up in upstreams:
        args += ["--connect", up]
    proc = Proc(args, feed, sync, tmp / f"{name}.log")
    if ping:
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


class CheckedFeed:
    """Joins an agent as a client does (§4: subscribe, snapshot, replay) and passes every
    message through the protocol checker; ``messages`` holds (kind, node, device, header,
    body) in the order applied, the snapshot's first."""

    def __init__(self, proc: Proc) -> None:
        from protocol_checker import FeedChecker

        self.proc = proc
        self.rec = Recorder(proc.feed)
        self.checker = FeedChecker()
        time.sleep(0.2)  # let the subscription reach the agent (not an assertion)
        reply = request(proc.sync, {"op": "snapshot"})
        assert reply is not None, proc.log()
        snap = self.checker.snapshot_reply(reply, adopt=True)
        self.snap_seqs = snap["seqs"]
        self.messages: list[tuple] = []
        for topic, header, body in sorted(snap["messages"], key=lambda m: not m[0].startswith("cua1/topo/")):
            parts = topic.split("/")
            self.messages.append((parts[1], parts[2], parts[3] or None, header, body))

    def poll(self) -> int:
        n = 0
        while self.rec.sock.poll(50 if n == 0 else 0):
            frames = self.rec.sock.recv_multipart()
            header = msgpack.unpackb(frames[1])
            if header["seq"] <= self.snap_seqs.get(frames[0].decode(), 0):
                continue  # already in the snapshot
            self.messages.append(self.checker.feed(frames))
            n += 1
        return n

    def of(self, kind: str, device: Optional[str] = None) -> list[tuple]:
        return [m for m in self.messages if m[0] == kind and (device is None or m[2] == device)]

    def wait(self, predicate: Callable[["CheckedFeed"], bool], what: str, timeout: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}; "
                                     f"counts {self.checker.counts}\n{self.proc.log()[-3000:]}")
            self.poll()

    def close(self) -> None:
        self.rec.close()


class CheckedAgents:
    """The agents a test starts, each followed by a CheckedFeed; closed at the test's end:
    the feeds close, and every agent must stop cleanly (exit 0)."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []
        self.feeds: list[CheckedFeed] = []

    def follow(self, proc: Proc) -> tuple[Proc, CheckedFeed]:
        self.procs.append(proc)
        feed = CheckedFeed(proc)
        self.feeds.append(feed)
        return proc, feed

    def close(self) -> None:
        for feed in self.feeds:
            feed.close()
        for proc in self.procs:
            assert proc.stop() == 0, proc.log()
