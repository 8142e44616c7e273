"""CUPTI PM sampling beside NVML: building the source, its events, and the operator's control.

The NVML backend calls :func:`attach` after building its driver: with ``cupti`` ``auto``
(the default) a CUPTI source is added to every NVIDIA device that can take it, and the
agent goes on with NVML alone, with one log line saying why, where it cannot; ``on``
makes that an error; ``off`` never loads libcupti.

The performance-monitor hardware is exclusive: while CUPTI samples, ``ncu``,
``nsys --gpu-metrics`` and DCGM profiling cannot, and the other way round. ``cuagent
profiling pause|resume|status`` releases and retakes the counters through a local
control socket (``--profiling-socket``; mode 0600, or 0660 with a group), never through
the read-only feed or sync sockets. While paused, busy or not permitted the CUPTI
counters are absent from the windows (never stale), NVML's go on, and each change is an
event (``profiling_paused`` with the reason, ``profiling_resumed``).

MIG-enabled GPUs are left to NVML: PM sampling there is not verified on hardware.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import socket
import stat
import sys
import threading
import weakref
from typing import Any, Callable, List, Optional, Sequence, Tuple

from . import _core

log = logging.getLogger(__name__)

MODES = ("auto", "off", "on")
MIN_RATE_HZ, MAX_RATE_HZ = 100.0, 20000.0

# Every live source, for the control socket and the status command.
_sources: "weakref.WeakSet[Any]" = weakref.WeakSet()
_lock = threading.Lock()


def _python_paths() -> List[str]:
    return [p for p in sys.path if p and os.path.isdir(p)]


def _cuda_indices(driver: Any) -> Tuple[List[int], List[int], List[str]]:
    """(engine devices, their CUDA indices, notes). CUDA numbers devices by PCI bus id
    when CUDA_DEVICE_ORDER=PCI_BUS_ID (set here before libcupti loads), as NVML does."""
    notes: List[str] = []
    descriptions = [driver.device(i) for i in range(driver.device_count)]
    if os.environ.get("CUDA_VISIBLE_DEVICES"):
        return [], [], ["CUDA_VISIBLE_DEVICES is set: CUDA's device numbers may not be NVML's; CUPTI left off"]
    order = sorted(range(len(descriptions)), key=lambda i: (descriptions[i].pci.lower(), i))
    engine: List[int] = []
    cuda: List[int] = []
    for i, d in enumerate(descriptions):
        if any(p.kind == "mig" for p in d.partitions):
            notes.append(f"device {d.id}: MIG is on; CUPTI PM sampling under MIG is not verified, left to NVML")
            continue
        engine.append(i)
        cuda.append(order.index(i))
    return engine, cuda, notes


def attach(driver: Any, mode: str = "auto", rate_hz: float = 1000.0,
           library: Optional[str] = None) -> Tuple[List[Tuple[int, Any, int]], Optional[Any]]:
    """Engine sources ``[(engine device, source, source device)]`` and the source (or None).

    The source folds its kHz samples into the windows of the engine it joins: the engine
    tells it its window length and grid when it starts (any ``window_ms``)."""
    if mode not in MODES:
        raise ValueError(f"cupti={mode!r}: expected one of {', '.join(MODES)}")
    if isinstance(rate_hz, bool) or not isinstance(rate_hz, (int, float)) or not MIN_RATE_HZ <= rate_hz <= MAX_RATE_HZ:
        raise ValueError(f"cupti_rate_hz={rate_hz!r} is out of range: a number from 100 to 20000 Hz")
    if mode == "off" or driver.device_count == 0:
        return [], None
    engine, cuda, notes = _cuda_indices(driver)
    for line in notes:
        log.info("cupti: %s", line)
    if not engine:
        if mode == "on":
            raise RuntimeError("cupti=on but no device can take CUPTI PM sampling: " + "; ".join(notes))
        return [], None
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    try:
        source = _core.make_cupti_source(library=[library] if library else [], python_paths=_python_paths(),
                                         devices=cuda, rate_hz=float(rate_hz))
    except (RuntimeError, ValueError) as e:
        if mode == "on":
            raise
        log.info("cupti: PM sampling off, NVML alone: %s", e)
        return [], None
    log.info("cupti: PM sampling at %g Hz on %d device(s) from %s (libnvperf_host: %s)", rate_hz, len(cuda),
             source.library_path, source.nvperf_host_path or "the loader's search")
    with _lock:
        _sources.add(source)
    return [(e, source, k) for k, e in enumerate(engine)], source


def events(source: Any, sources: Sequence[Tuple[int, Any, int]], make: Callable[[str, int, str], Any]) -> List[Any]:
    """The source's pending events as engine events: ``make(type, engine device, detail)``."""
    if source is None:
        return []
    to_engine = {k: e for e, _, k in sources}
    return [make(kind, to_engine.get(int(d), 0), reason) for d, kind, reason in source.drain_events()]


def unpack(built: Any) -> Tuple[Any, List[Tuple[int, Any, int]], Optional[Any]]:
    """(driver, engine sources, CUPTI source) from what a backend's make_driver returned."""
    if isinstance(built, tuple):
        driver, sources, source = built
        return driver, list(sources), source
    return built, [], None


# ---- the control channel ----------------------------------------------------------

def _command(line: str) -> dict[str, Any]:
    words = line.strip().split(None, 1)
    verb = words[0] if words else ""
    with _lock:
        live = list(_sources)
    if verb == "pause":
        reason = words[1] if len(words) > 1 else "paused by operator"
        for s in live:
            s.pause(reason)
    elif verb == "resume":
        for s in live:
            s.resume()
    elif verb != "status":
        return {"error": f"unknown command {verb!r}: expected pause [reason], resume or status"}
    return {"sources": [{"library": s.library_path, "nvperf_host": s.nvperf_host_path, "paused": s.paused,
                         "decode_cpu_ns": s.decode_cpu_ns, "devices": s.status()} for s in live]}


class ControlServer:
    """A Unix socket taking one command per connection: ``pause [reason]``, ``resume``,
    ``status``; answering one JSON line. Only its owner (and ``group``) may connect."""

    def __init__(self, path: str, group: Optional[int] = None) -> None:
        from .node.sockets import ipc_occupant

        self.path = path
        # A running agent's socket is never taken over (a second start, by mistake, would
        # leave that agent unreachable for `cuagent profiling pause` when an ncu session needs
        # it); a stale one, left by a process that died, is reused.
        held = ipc_occupant(path)
        if held is not None:
            raise RuntimeError(f"profiling socket {path!r}: {held}")
        if os.path.exists(path):
            if not stat.S_ISSOCK(os.stat(path).st_mode):
                raise RuntimeError(f"profiling socket {path!r} exists and is not a socket")
            os.unlink(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177 if group is None else 0o117)  # never world-connectable, even briefly
        try:
            self._sock.bind(path)
        finally:
            os.umask(old)
        if group is not None:
            os.chown(path, -1, group)
        self._sock.listen(4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="cuagent-profiling", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError as e:
                if self._stop.is_set() or e.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    return  # closed (close() shuts the socket down), or a socket that is no more
                # Out of file descriptors for now: the control socket must outlive it.
                log.warning("profiling control socket: cannot accept a connection (%s); retrying", e.strerror)
                self._stop.wait(1.0)
                continue
            with conn:
                conn.settimeout(2.0)
                try:
                    data = b""
                    while b"\n" not in data and len(data) < 4096:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    reply = _command(data.decode("utf-8", "replace"))
                except (OSError, UnicodeError) as e:
                    reply = {"error": str(e)}
                try:
                    conn.sendall(json.dumps(reply).encode() + b"\n")
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(timeout=5)
        try:
            os.unlink(self.path)
        except OSError:
            pass


_server: Optional[ControlServer] = None


def serve(path: Optional[str]) -> None:
    """Start the control socket once per process (a no-op without a path)."""
    global _server
    with _lock:
        if path and _server is None:
            _server = ControlServer(path)


def stop_serving() -> None:
    """Close the control socket and remove its file (a process's clean exit)."""
    global _server
    with _lock:
        if _server is not None:
            _server.close()
            _server = None


def request(path: str, command: str, timeout: float = 5.0) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(command.encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return dict(json.loads(data.decode()))


def cli(argv: Sequence[str]) -> int:
    """``cuagent profiling pause [reason] | resume | status --socket PATH``."""
    import argparse

    parser = argparse.ArgumentParser(prog="cuagent profiling",
                                     description="Release (pause) or retake (resume) the GPU performance counters "
                                                 "CUPTI samples, e.g. for an ncu or nsys session.")
    parser.add_argument("action", choices=("pause", "resume", "status"))
    parser.add_argument("reason", nargs="*", help="why (pause only), published in the profiling_paused event")
    parser.add_argument("--socket", required=True, help="the agent's --profiling-socket path")
    args = parser.parse_args(list(argv))
    command = args.action + (" " + " ".join(args.reason) if args.action == "pause" and args.reason else "")
    try:
        reply = request(args.socket, command)
    except OSError as e:
        print(f"cuagent profiling: cannot reach {args.socket!r}: {e}", file=sys.stderr)
        return 2
    if "error" in reply:
        print(f"cuagent profiling: {reply['error']}", file=sys.stderr)
        return 2
    print(json.dumps(reply, indent=2))
    return 0
