"""One feed message, three frames (PROTOCOL.md §3): topic, header, body."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Union

from .codec import ProtocolError, pack, unpack
from .event import decode_event_body
from .header import Header, HeaderPacker, decode_header, encode_header
from .heartbeat import decode_hb_body
from .state import decode_state_body
from .summary import decode_summary_body
from .topics import Topic, parse_topic_cached
from .topo import Device, decode_topo_body


def encode_frames(topic: str, header: Header, body: Union[Mapping[str, Any], bytes]) -> list[bytes]:
    """The three feed frames of one message. A body given as bytes is packed already (a
    state body from the core's encoder, ``Engine.latest_state``) and goes out as it is."""
    return [topic.encode("utf-8"), encode_header(header), body if isinstance(body, bytes) else pack(body)]


class FramePacker:
    """:func:`encode_frames` for one sender, whose node and epoch never change (an agent):
    each topic's bytes and the header's constant part are packed once. Same bytes."""

    def __init__(self, node: str, epoch: int) -> None:
        self._header = HeaderPacker(node, epoch)
        # A sender's topics: a few per device and kind, so this stays small.
        self._topics: dict[str, bytes] = {}

    def frames(self, topic: str, seq: int, ts: int, gen: int, body: Union[Mapping[str, Any], bytes]) -> list[bytes]:
        frame = self._topics.get(topic)
        if frame is None:
            frame = self._topics[topic] = topic.encode("utf-8")
        return [frame, self._header.pack(seq, ts, gen), body if isinstance(body, bytes) else pack(body)]


@dataclass
class Message:
    """One decoded feed message. ``frames`` keeps the original bytes (relays re-serve them)."""

    topic: Topic
    topic_str: str
    header: Header
    body: Any  # Topo | State | Heartbeat | Event | Summary
    frames: Sequence[bytes]


def decode_body(kind: str, body_map: Any, device: Optional[Device] = None) -> Any:
    if kind == "state":
        return decode_state_body(body_map, device)
    if kind == "topo":
        return decode_topo_body(body_map)
    if kind == "hb":
        return decode_hb_body(body_map)
    if kind == "sum":
        return decode_summary_body(body_map)
    return decode_event_body(body_map)


def decode_envelope(frames: Sequence[bytes]) -> tuple[Topic, str, Header, Any]:
    """Topic and header, checked; the body is unpacked but not yet decoded (needs the topo)."""
    topic, topic_str, header = decode_head(frames)
    body = unpack(frames[2], "body")
    return topic, topic_str, header, body


def decode_head(frames: Sequence[bytes], parsed: Optional[tuple[Topic, str]] = None) -> tuple[Topic, str, Header]:
    """Topic and header, checked; the body frame is left as it is (a client that decodes
    ``state`` bodies only when they are read starts so). ``parsed``: what
    :func:`~cuagent.wire.topics.peek_topic` gave for the topic frame, when the caller has
    looked already."""
    if len(frames) != 3:
        raise ProtocolError("message", f"{len(frames)} frames, expected 3 (topic, header, body)")
    topic, topic_str = parsed if parsed is not None else parse_topic_cached(frames[0])
    header = decode_header(frames[1], topic.node)
    if header.node != topic.node:
        raise ProtocolError("header.node", f"{header.node!r} differs from the topic's node {topic.node!r}")
    return topic, topic_str, header


def decode_message(frames: Sequence[bytes], device: Optional[Device] = None) -> Message:
    topic, topic_str, header, body_map = decode_envelope(frames)
    return Message(topic, topic_str, header, decode_body(topic.kind, body_map, device), frames)
