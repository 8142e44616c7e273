"""How every command takes the signals a service manager or a terminal sends: the serving
ones (run, relay, exporter, extender, fleet) with :func:`install`, the foreground views (top,
watch) with :func:`caught`; one place, so that they all stop, log and keep running alike."""

from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import contextmanager
from types import FrameType
from typing import Any, Callable, Iterator, Optional

log = logging.getLogger("cuagent")


def has_terminal() -> bool:
    """Whether this process has a controlling terminal (one whose hangup it would get)."""
    try:
        os.close(os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY))
    except OSError:
        return False
    return True


def install(stop: Callable[[], None]) -> None:
    """SIGINT/SIGTERM ask the loop to stop; the loop notices within one tick.

    SIGHUP means two things. From a terminal (ssh or a shell window closing) it is a hangup:
    the process stops as on SIGTERM, or it would live on, orphaned, holding its ports. Without
    one (a service), it is by convention a reload, which would end the process (exit 129,
    nothing logged) for the service manager to restart as a failure. Settings are read once,
    at start (the config file and flags build every socket and the engine), so there is
    nothing to reload: it is logged and the process keeps running. A SIGHUP ignored when the
    process started (nohup) stays ignored."""
    def handler(signum: int, _frame: Optional[FrameType]) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        stop()

    def hangup(_signum: int, _frame: Optional[FrameType]) -> None:
        log.warning("received SIGHUP: reloading is not supported, still running with the settings it "
                    "started with; changes apply on restart")

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        signal.signal(signal.SIGHUP, handler if has_terminal() else hangup)


# What ends a foreground view (top, watch) besides Ctrl-C.
VIEW_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextmanager
def caught() -> Iterator[Callable[[], bool]]:
    """For a foreground view (top, watch): while it runs, SIGTERM and SIGHUP ask its loop to
    stop, as Ctrl-C does, so it ends as it would by itself (top's live display closed with
    the cursor shown, watch's closing line written) instead of dying mid-way. The handlers
    before are put back after.

    Yields whether a stop was asked. Off the main thread (where Python cannot take signals)
    it never is."""
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}

    def handler(_signum: int, _frame: Optional[FrameType]) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in VIEW_STOP_SIGNALS:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield stop.is_set
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
