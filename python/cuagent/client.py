"""The public import path of the client library (``from cuagent.client import Client``): the
code lives in :mod:`cuagent.feed` (a thin :class:`Client` over one
:class:`~cuagent.feed.session.Session` per upstream, and the :class:`ClusterView`)."""

from __future__ import annotations

from .feed.client import STALE_AFTER_S, Client
from .feed.endpoint import Endpoint, parse_endpoint
from .feed.feed_state import ClientStats
from .feed.frame_cache import FrameCache
from .feed.received import FeedObserver, Received
from .feed.session import JOIN_WAIT_S, MAX_BUFFERED
from .feed.snapshot_faults import SNAPSHOT_TIMEOUT_S
from .feed.updates import Update
from .feed.view import ClusterView, DeviceView, NodeView

__all__ = ["Client", "ClientStats", "ClusterView", "DeviceView", "Endpoint", "FeedObserver", "FrameCache",
           "JOIN_WAIT_S", "MAX_BUFFERED", "NodeView", "Received", "SNAPSHOT_TIMEOUT_S", "STALE_AFTER_S", "Update",
           "parse_endpoint"]
