"""A message as a client received it (:class:`Received`: checked, its body unpacked only when
read) and the public hook through which consumers see each one the client applies
(:class:`FeedObserver`, ``Client.observe``): the relay's frame cache keeps frames so, with no
second decode."""

from __future__ import annotations

from typing import Any, Protocol, Sequence

from .. import wire
from ..wire import Header, Topic


# A Received's body while it is still packed in frames[2] (read by no one yet, maybe never).
NOT_UNPACKED: Any = object()


class Received:
    """One message as it came (from the feed or a snapshot): topic and header checked, the body
    unpacked but not decoded, and the original ``frames`` (which a relay re-serves).

    A lazy client leaves a ``state`` body packed: ``body`` then unpacks it when read (and
    raises :class:`~cuagent.wire.ProtocolError` if it is not msgpack)."""

    __slots__ = ("topic", "topic_str", "header", "_body", "frames")

    def __init__(self, topic: Topic, topic_str: str, header: Header, body: Any, frames: Sequence[bytes]) -> None:
        self.topic = topic
        self.topic_str = topic_str
        self.header = header
        self._body = body  # NOT_UNPACKED: still frames[2]
        self.frames = frames

    @property
    def body(self) -> Any:
        if self._body is NOT_UNPACKED:
            self._body = wire.unpack(self.frames[2], "body")
        return self._body

    def __repr__(self) -> str:
        return f"Received({self.topic_str!r}, seq={self.header.seq})"


class FeedObserver(Protocol):
    """The public hook on what a client applies, called synchronously from inside
    :meth:`Client.poll` (so an observer is never behind the view). The relay's frame cache
    is one; it must return quickly and never raise."""

    def applied(self, msg: Received, decoded: Any) -> None:
        """``msg`` was applied to the view; ``decoded`` is its body (Topo, State, Heartbeat,
        Event, or for a summary the :class:`~cuagent.feed.summaries.NodeSummary`). For a
        ``state`` message of a lazy client (the default) ``decoded`` is a
        :class:`~cuagent.feed.lazy.LazyState`: ``decoded.get()`` decodes it (once, shared
        with the view and the update) and gives the State, or None for a malformed body;
        an observer that needs only the frames never pays for the decode."""

    def forgot(self, node: str) -> None:
        """Everything of ``node`` was dropped (it restarted): what was kept of it is void."""
