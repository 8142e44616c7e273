"""The sync socket's requests and replies (PROTOCOL.md §5): parsed, built and answered here only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence

import msgpack

from .codec import ProtocolError, as_map, describe, get, msgpack_error, pack, uint64, unpack
from .header import VERSION
from .topics import PREFIX

# The agent refuses larger sync requests (ZMQ_MAXMSGSIZE on the sync socket).
MAX_SYNC_REQUEST_BYTES = 64 * 1024
# A request is a flat map ({"op": str, "prefix": str}); anything nested deeper is refused
# before any code walks it.
MAX_REQUEST_DEPTH = 8

# --------------------------------------------------------------------------- parsing


def unpack_request(data: bytes) -> Any:
    """A sync request (§5), from anyone: at most MAX_SYNC_REQUEST_BYTES, map keys only str or
    bin (their hashes are randomised, so crafted colliding keys cannot make a 64 KiB map cost
    seconds to build), nested at most MAX_REQUEST_DEPTH deep."""
    if len(data) > MAX_SYNC_REQUEST_BYTES:
        raise ProtocolError("request", f"{len(data)} bytes exceeds {MAX_SYNC_REQUEST_BYTES}")
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, TypeError) as e:
        raise ProtocolError("request", f"not valid msgpack ({msgpack_error(e)})") from None
    if _depth_exceeds(value, MAX_REQUEST_DEPTH):
        raise ProtocolError("request", f"nested deeper than {MAX_REQUEST_DEPTH} levels")
    return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether containers nest deeper than ``limit``; iterative, so depth costs no stack."""
    stack = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            items: Iterable[Any] = v.values()
        elif isinstance(v, list):
            items = v
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((item, depth + 1) for item in items)
    return False



# --------------------------------------------------------------------------- requests


@dataclass
class Request:
    op: str
    body: dict[str, Any]


class RequestError(Exception):
    """A request that gets ``{"ok": false, "error": ...}``."""


def parse_request(frames: list[bytes]) -> tuple[list[bytes], Optional[Request], Optional[str]]:
    """Split a ROUTER message into (reply envelope, request, error).

    The envelope is the identity plus, for REQ peers, the empty delimiter, so the reply goes
    back in the shape the peer expects. Exactly one request frame must follow."""
    identity, rest = frames[:1], frames[1:]
    if rest and rest[0] == b"":
        identity, rest = identity + [b""], rest[1:]
    if len(rest) != 1:
        return identity, None, f"expected exactly one request frame, got {len(rest)}"
    try:
        req = unpack_request(rest[0])
    except ProtocolError as e:
        return identity, None, str(e)
    if not isinstance(req, dict):
        return identity, None, f"request must be a msgpack map, got {describe(req)}"
    op = req.get("op")
    if not isinstance(op, str):
        # Never the value's repr: it may nest 1,000 deep (repr recurses) or run to 64 KiB.
        return identity, None, f"request.op must be a string, got {describe(op)}"
    return identity, Request(op, req), None


def parse_snapshot_prefix(req: Request) -> str:
    prefix = req.body.get("prefix", PREFIX)
    if not isinstance(prefix, str):
        raise RequestError(f"snapshot.prefix must be a string, got {type(prefix).__name__}")
    if len(prefix) > 256:
        raise RequestError("snapshot.prefix longer than 256 characters")
    return prefix


def unknown_op(req: Request) -> RequestError:
    return RequestError(f"unknown op {req.op[:64]!r} (known: ping, snapshot)")


def ping_request() -> bytes:
    return pack({"op": "ping"})


def snapshot_request(prefix: str = PREFIX) -> bytes:
    return pack({"op": "snapshot", "prefix": prefix})


# --------------------------------------------------------------------------- replies


def ping_reply(node: str, epoch: int, gen: int, **extra: Any) -> bytes:
    """``ping`` (§5): who answers, in which epoch and topology generation; a relay adds what it
    follows (``relay``, ``nodes``, ``stale``)."""
    return pack({"ok": True, "v": VERSION, "node": node, "epoch": epoch, "gen": gen, **extra})


def decode_ping_reply(data: bytes) -> Any:
    """A ``ping`` reply as it came: shown, not interpreted (a relay's carries more keys)."""
    return unpack(data, "reply")


def snapshot_reply(epoch: int, messages: Iterable[Sequence[bytes]], seqs: Mapping[str, int], **extra: Any) -> bytes:
    """Pack a snapshot reply around already-encoded header/body frames, so that the maps in
    the reply are byte-for-byte those that went out on the feed (and a relay re-serves its
    upstream's frames untouched)."""
    packer = msgpack.Packer(use_bin_type=True)
    msgs = list(messages)
    out = [packer.pack_map_header(4 + len(extra)), packer.pack("ok"), packer.pack(True)]
    out += [packer.pack("epoch"), packer.pack(epoch), packer.pack("messages"), packer.pack_array_header(len(msgs))]
    for topic, header, body in msgs:
        topic_str = topic.decode() if isinstance(topic, bytes) else topic
        out += [packer.pack_array_header(3), packer.pack(topic_str), bytes(header), bytes(body)]
    out += [packer.pack("seqs"), packer.pack(dict(seqs))]
    for k, v in extra.items():
        out += [packer.pack(k), packer.pack(v)]
    return b"".join(out)


def error_reply(reason: str) -> bytes:
    return pack({"ok": False, "error": reason})


@dataclass
class Snapshot:
    epoch: int
    messages: list[list[bytes]]  # [topic, header, body] re-encoded frames
    seqs: dict[str, int]
    extra: dict[str, Any]


def decode_snapshot_reply(data: bytes) -> Snapshot:
    m = as_map(unpack(data, "reply"), "reply")
    ok = m.get("ok")
    if ok is not True:
        raise ProtocolError("reply", f"snapshot refused: {describe(m.get('error', m))}")
    seqs = as_map(get(m, "seqs", dict, "reply"), "reply.seqs")
    for topic, seq in seqs.items():
        uint64(seq, f"reply.seqs.{topic}")
    messages = []
    for i, item in enumerate(get(m, "messages", list, "reply")):
        if not isinstance(item, list) or len(item) != 3:
            raise ProtocolError(f"reply.messages[{i}]", "expected [topic, header, body]")
        topic, header, body = item
        if not isinstance(topic, str):
            raise ProtocolError(f"reply.messages[{i}][0]", "topic is not a string")
        # Re-encode: the agent packs with the same msgpack conventions, so these are the
        # feed's bytes again, and relays/clients handle snapshot and feed messages alike.
        messages.append([topic.encode("utf-8"), pack(header), pack(body)])
    extra = {k: v for k, v in m.items() if k not in ("ok", "epoch", "messages", "seqs")}
    return Snapshot(epoch=get(m, "epoch", int, "reply"), messages=messages, seqs=seqs, extra=extra)
