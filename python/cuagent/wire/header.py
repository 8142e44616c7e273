"""The header frame (PROTOCOL.md §3): node, epoch, seq, ts, gen."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Optional

from .codec import _UINT64_MAX, ProtocolError, describe, pack, packer, uint64, unpack
from .topics import check_node

VERSION = 1


@dataclass(frozen=True)
class Header:
    node: str
    epoch: int
    seq: int
    ts: int
    gen: int
    v: int = VERSION

    def to_map(self) -> dict[str, Any]:
        return {"v": self.v, "node": self.node, "epoch": self.epoch, "seq": self.seq, "ts": self.ts, "gen": self.gen}


def new_epoch() -> int:
    """A random non-zero 64-bit epoch: a new one means every earlier message is void."""
    return secrets.randbits(64) or 1


def header_from_map(m: Any) -> Header:
    if not isinstance(m, dict):
        raise ProtocolError("header", f"expected a map, got {type(m).__name__}")
    for key in ("v", "node", "epoch", "seq", "ts", "gen"):
        if key not in m:
            raise ProtocolError(f"header.{key}", "missing")
    if type(m["v"]) is not int:
        raise ProtocolError("header.v", f"expected int, got {describe(m['v'])}")
    if m["v"] != VERSION:
        raise ProtocolError("header.v", f"unsupported protocol version {describe(m['v'])} (this is {VERSION})")
    node = check_node(m["node"], "header.node")
    epoch = uint64(m["epoch"], "header.epoch")
    seq = uint64(m["seq"], "header.seq")
    if seq < 1:
        raise ProtocolError("header.seq", "seq starts at 1")
    if type(m["ts"]) is not int:
        raise ProtocolError("header.ts", f"expected int ns, got {describe(m['ts'])}")
    gen = uint64(m["gen"], "header.gen")
    if gen < 1:
        raise ProtocolError("header.gen", "gen starts at 1")
    return Header(node=node, epoch=epoch, seq=seq, ts=m["ts"], gen=gen, v=m["v"])


def encode_header(h: Header) -> bytes:
    return pack(h.to_map())


class HeaderPacker:
    """:func:`encode_header` for one sender, whose node and epoch never change: that part of
    the frame is packed once, so a header costs packing three ints (an agent sends one per
    device per window). Its bytes are encode_header's (tests/test_protocol.py)."""

    def __init__(self, node: str, epoch: int) -> None:
        check_node(node, "node")
        uint64(epoch, "epoch")
        # The map's keys in Header.to_map order: v, node, epoch, then the three that vary.
        self._prefix = b"".join((b"\x86", pack("v"), pack(VERSION), pack("node"), pack(node), pack("epoch"),
                                 pack(epoch), pack("seq")))
        self._ts, self._gen = pack("ts"), pack("gen")
        self._pack = packer()

    def pack(self, seq: int, ts: int, gen: int) -> bytes:
        p = self._pack
        return b"".join((self._prefix, p(seq), self._ts, p(ts), self._gen, p(gen)))


def decode_header(data: bytes, node: Optional[str] = None) -> Header:
    """The header frame, checked. ``node``: the node its topic names (already checked there),
    which lets a usual header skip the general checks (see :func:`usual_header`)."""
    m = unpack(data, "header")
    if node is not None:
        h = usual_header(m, node)
        if h is not None:
            return h
    return header_from_map(m)


_new_header = object.__new__
_set_attr = object.__setattr__  # past the frozen dataclass's refusal


def usual_header(m: Any, node: str) -> Optional[Header]:
    """The header of map ``m`` when it is the usual one: exactly the six keys, valid values,
    and the node of its topic (equal to a checked name, so the name check is done); else None
    and :func:`header_from_map` decides (and names what is wrong).

    Every feed message has a header, so this is on the client's per-message path: it accepts
    exactly what :func:`header_from_map` accepts of such a map (tests/test_protocol.py checks
    the two agree), for a quarter of the time; and it builds the frozen :class:`Header` by
    making the checked map its ``__dict__`` (its keys are exactly the field names; the map
    was just unpacked and nothing else holds it), which skips six ``object.__setattr__``
    calls of the dataclass's ``__init__`` and a copy of the map."""
    if type(m) is not dict or len(m) != 6:
        return None
    try:
        v, n, epoch, seq, ts, gen = m["v"], m["node"], m["epoch"], m["seq"], m["ts"], m["gen"]
    except KeyError:
        return None
    if (type(v) is int and v == VERSION and n == node
            and type(epoch) is int and 0 <= epoch <= _UINT64_MAX
            and type(seq) is int and 1 <= seq <= _UINT64_MAX
            and type(ts) is int
            and type(gen) is int and 1 <= gen <= _UINT64_MAX):
        h: Header = _new_header(Header)
        _set_attr(h, "__dict__", m)
        return h
    return None
