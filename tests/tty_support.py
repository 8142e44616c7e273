"""`cuagent` under a pseudo-terminal of a given size, and its live frames read back as text.

rich's live display (not full-screen) draws a frame, then before the next one moves the
cursor back up over it, erasing each row: the frames are what lies between those moves."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from typing import Optional

from feed_support import WAIT_S, _env

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Back up over the last frame: erase the row, then (up, erase) once per further row.
REWIND = re.compile(r"\x1b\[2K(?:\x1b\[1A\x1b\[2K)+")
HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"


def plain(text: str) -> str:
    return ANSI.sub("", text).replace("\r", "")


@dataclass
class TtyRun:
    returncode: Optional[int]
    raw: str  # everything written to the terminal, escapes included

    def frames(self) -> list[list[str]]:
        """Each frame the live display drew, as its text lines (the last: the one left on exit)."""
        chunks = REWIND.split(self.raw)
        return [plain(c).strip("\n").split("\n") for c in chunks if plain(c).strip()]


def run_in_tty(args: list[str], cols: int, rows: int, until: str, signal_to_send: int,
               timeout: float = WAIT_S) -> TtyRun:
    """``cuagent ARGS`` on a terminal ``cols`` x ``rows``; once its output shows ``until``,
    send it ``signal_to_send`` and read to the end (each step bounded by ``timeout``)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = {k: v for k, v in _env().items() if k not in ("COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen([sys.executable, "-m", "cuagent.cli", *args], stdin=slave, stdout=slave,
                            stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    out = bytearray()
    signalled = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not signalled and until in plain(out.decode("utf-8", "replace")):
                proc.send_signal(signal_to_send)
                signalled, deadline = True, time.monotonic() + timeout
            ready, _, _ = select.select([master], [], [], 0.1)
            if not ready:
                if proc.poll() is not None and signalled:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the process closed its end of the terminal
                break
            if not chunk:
                break
            out += chunk
        try:
            code: Optional[int] = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        os.close(master)
    raw = out.decode("utf-8", "replace")
    assert signalled, f"never saw {until!r}:\n{plain(raw)[-3000:]}"
    return TtyRun(code, raw)
