"""Compatibility import path: everything here is :mod:`cuagent.wire`, the one encoder and
decoder of the feed (docs/PROTOCOL.md). Code written before the wire package was split by
job imports ``cuagent.protocol``; new code imports ``cuagent.wire``."""

from __future__ import annotations

from .wire import *  # noqa: F401,F403
from .wire import __all__  # noqa: F401
