"""The latest raw frames of every topo, state and sum topic a client follows (``Client(...,
keep_frames=True)``), kept through the client's public hook
(:meth:`~cuagent.feed.client.Client.observe`) rather than inside the client. (A relay keeps
its own without decoding: :class:`cuagent._core.RelayTable`, PROTOCOL.md §7.)"""

from __future__ import annotations

from typing import Any, Sequence

from .. import wire
from .received import Received


class FrameCache:
    """A :class:`~cuagent.feed.received.FeedObserver`: ``frames`` maps each topo/state/sum topic
    to its latest frames, as applied. A lost device's state is dropped with the topo that says so
    (its last window is no longer current: a client joining now gets none), and so is a
    device's that is gone from its node's topo, and every topic of a node that restarted."""

    def __init__(self) -> None:
        self.frames: dict[str, Sequence[bytes]] = {}
        self._states: dict[str, dict[str, str]] = {}  # node -> device id -> its state topic held

    def applied(self, msg: Received, decoded: Any) -> None:
        kind, node = msg.topic.kind, msg.topic.node
        if kind == "state" and msg.topic.device is not None:
            self.frames[msg.topic_str] = msg.frames
            self._states.setdefault(node, {})[msg.topic.device] = msg.topic_str
        elif kind == "sum":
            self.frames[msg.topic_str] = msg.frames  # the node's latest: it replaces all earlier (§3.5)
        elif kind == "topo":
            held = self._states.get(node, {})
            serving = {d.id for d in decoded.devices if decoded.device_status(d.id) == wire.DEVICE_OK}
            for device in [d for d in held if d not in serving]:
                self.frames.pop(held.pop(device), None)
            self.frames[msg.topic_str] = msg.frames

    def forgot(self, node: str) -> None:
        for topic in [t for t in self.frames if wire.node_of(t) == node]:
            del self.frames[topic]
        self._states.pop(node, None)
