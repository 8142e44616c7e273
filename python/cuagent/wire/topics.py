"""Topics (PROTOCOL.md §2): cua1/<kind>/<node>/[<device>/], built, parsed and matched here only."""

from __future__ import annotations

import codecs
import re
from typing import Any, NamedTuple, Optional

from .codec import ProtocolError, describe

PREFIX = "cua1/"
KINDS = ("topo", "state", "hb", "event", "sum")
# Kinds that are per node: their topics never name a device.
NODE_KINDS = ("topo", "hb", "sum")
# The longest topic the grammar allows (§2), in bytes: cua1/event/<node: 64 ASCII>/<device: 128
# characters, up to 4 bytes each in UTF-8>/.
MAX_TOPIC_BYTES = len("cua1/event/") + 64 + 1 + 128 * 4 + 1

NODE_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
# A device id is one topic component: anything but '/', non-empty.
_DEVICE_RE = re.compile(r"[^/\x00]{1,128}")


class UnknownKind(ProtocolError):
    """A well-formed topic of a kind this code does not know: a newer agent's addition, which a
    client ignores (PROTOCOL.md §8) rather than counting as an error."""


# What a kind looks like (§8: new kinds are v1-compatible), to tell a newer agent's topic
# from garbage.
_KIND_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")


class Topic(NamedTuple):
    kind: str
    node: str
    device: Optional[str] = None

    def __str__(self) -> str:
        return build_topic(self.kind, self.node, self.device)


def check_node(node: Any, field_name: str = "node") -> str:
    if not isinstance(node, str) or not NODE_RE.fullmatch(node):
        raise ProtocolError(field_name, f"{describe(node)} does not match {NODE_RE.pattern}")
    return node


def sanitize_node(name: str) -> str:
    """Turn a host name into a valid node name (invalid characters become '-', max 64).

    Raises ProtocolError when nothing usable is left (e.g. an empty name)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", name)[:64]
    return check_node(cleaned)


def build_topic(kind: str, node: str, device: Optional[str] = None) -> str:
    if kind not in KINDS:
        raise ProtocolError("topic.kind", f"{describe(kind)} is not one of {KINDS}")
    check_node(node, "topic.node")
    if device is None:
        return f"{PREFIX}{kind}/{node}/"
    if not isinstance(device, str) or not _DEVICE_RE.fullmatch(device):
        raise ProtocolError("topic.device", f"{describe(device)} is not a valid device id")
    return f"{PREFIX}{kind}/{node}/{device}/"


def parse_topic(raw: bytes | str) -> Topic:
    if isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("topic", "not UTF-8") from None
    elif isinstance(raw, str):
        text = raw
    else:
        raise ProtocolError("topic", f"expected bytes or str, got {type(raw).__name__}")
    if not text.startswith(PREFIX) or not text.endswith("/"):
        raise ProtocolError("topic", f"{describe(text)} is not cua1/<kind>/<node>/[<device>/]")
    parts = text[len(PREFIX) : -1].split("/")
    if len(parts) not in (2, 3):
        raise ProtocolError("topic", f"{describe(text)} has {len(parts)} components after cua1/, expected 2 or 3")
    kind, node = parts[0], parts[1]
    if kind not in KINDS:
        if _KIND_RE.fullmatch(kind) and NODE_RE.fullmatch(node) and all(_DEVICE_RE.fullmatch(x) for x in parts[2:]):
            raise UnknownKind("topic.kind", f"{describe(kind)} is not a kind this client knows ({', '.join(KINDS)})")
        raise ProtocolError("topic.kind", f"{describe(kind)} is not one of {KINDS}")
    check_node(node, "topic.node")
    device = parts[2] if len(parts) == 3 else None
    if device is not None and not _DEVICE_RE.fullmatch(device):
        raise ProtocolError("topic.device", f"{describe(device)} is not a valid device id")
    if kind in NODE_KINDS and device is not None:
        raise ProtocolError("topic", f"{kind} topics are per node, got device {describe(device)}")
    if kind == "state" and device is None:
        raise ProtocolError("topic", "state topics name a device")
    return Topic(kind, node, device)


_NODE_PART_RE = re.compile(r"[A-Za-z0-9._-]{0,64}")


def prefix_could_match(prefix: bytes, node: Optional[str] = None) -> bool:
    """Whether some topic of the grammar (§2), of ``node`` when given, starts with ``prefix``:
    what a feed subscription must be to ever receive anything from this server."""
    try:
        # Not final: a prefix may end inside a device id's multi-byte character.
        text = codecs.getincrementaldecoder("utf-8")().decode(prefix, final=False)
    except UnicodeDecodeError:
        return False
    if len(text) <= len(PREFIX):
        return PREFIX.startswith(text)
    if not text.startswith(PREFIX):
        return False
    parts = text[len(PREFIX):].split("/")
    kind = parts[0]
    if len(parts) == 1:
        return any(k.startswith(kind) for k in KINDS)
    if kind not in KINDS:
        return False
    if len(parts) == 2:  # inside the node
        return node.startswith(parts[1]) if node is not None else bool(_NODE_PART_RE.fullmatch(parts[1]))
    if not NODE_RE.fullmatch(parts[1]) or (node is not None and parts[1] != node):
        return False
    device = parts[2]
    if len(parts) == 3:  # right after the node's '/', or inside the device
        return device == "" or (kind in ("state", "event") and len(device) <= 128 and "\x00" not in device)
    return len(parts) == 4 and parts[3] == "" and kind in ("state", "event") and bool(_DEVICE_RE.fullmatch(device))


def node_prefixes(node: str) -> list[str]:
    """The topic prefixes that together cover everything a node publishes."""
    return [f"{PREFIX}{kind}/{node}/" for kind in KINDS]


# A feed repeats the same few topics: parse each once. Bounded, so that a flood of distinct
# (even invalid) topics cannot grow it without limit.
_TOPIC_CACHE: dict[bytes, tuple[Topic, str]] = {}
_TOPIC_CACHE_MAX = 65536


def parse_topic_cached(raw: bytes) -> tuple[Topic, str]:
    """:func:`parse_topic` of a feed frame, with the topic as text."""
    hit = _TOPIC_CACHE.get(raw)
    if hit is None:
        topic = parse_topic(raw)
        if len(_TOPIC_CACHE) >= _TOPIC_CACHE_MAX:
            _TOPIC_CACHE.clear()
        hit = _TOPIC_CACHE[bytes(raw)] = (topic, bytes(raw).decode())
    return hit


#: The parsed topic (and its text) of a topic frame already seen, or None (not parsed yet:
#: :func:`parse_topic_cached` parses it, or names what is wrong). A lookup with no parse and
#: no error, for a client to pick a kind's own path before the general one.
peek_topic = _TOPIC_CACHE.get  # the cache is cleared in place, never replaced: this stays its own


def kind_prefix(kind: str) -> str:
    """The prefix of every topic of one kind, any node (``cua1/state/``)."""
    return f"{PREFIX}{kind}/"


def node_of(topic: str) -> Optional[str]:
    """The node named by a topic string, or None when it names none (it is not
    ``cua1/<kind>/<node>/...``). Not a validation (see :func:`parse_topic`): it reads tables
    keyed by topics that were parsed on their way in."""
    parts = topic.split("/", 3)
    return parts[2] if len(parts) >= 4 and parts[0] + "/" == PREFIX else None
