"""``--duration``: stop a long-running command after so many seconds."""

from __future__ import annotations

import threading
from typing import Callable, Optional


def stop_after(seconds: Optional[float], stop: Callable[[], None]) -> None:
    """Call ``stop`` in ``seconds`` (None: never). The timer is a daemon thread, so a command
    stopped sooner (a signal) exits at once instead of waiting for the timer to fire."""
    if seconds is None:
        return
    timer = threading.Timer(seconds, stop)
    timer.daemon = True
    timer.start()
