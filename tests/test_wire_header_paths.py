"""The header decoder's two paths agree: given its topic's node, a usual header takes a short
path (the client's per-message path); whatever it accepts, the general path accepts alike,
with the same Header, and whatever it refuses is refused or decided by the general path. So
there is one header decoder in behaviour, whichever path a header takes."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cuagent.wire import Header, ProtocolError, decode_header, encode_header, header_from_map
from cuagent.wire.header import usual_header

_GOOD = Header("node-a", 7, 3, 1_700_000_000_000_000_000, 2).to_map()
_KEYS = ["v", "node", "epoch", "seq", "ts", "gen", "extra", 0]
# Each field's edges, and each wrong type.
_EDGES = [None, True, False, 0, 1, 2, -1, -(2**63), 2**63, 2**64 - 1, 1.0, 0.5, "node-a", "node-b", "a/b", "", b"\x01",
          [1], {"v": 1}]
_values = st.one_of(st.sampled_from(_EDGES), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False),
                    st.text(max_size=3))


def _outcome(fn: Any) -> Any:
    try:
        h = fn()
    except ProtocolError as e:
        return ("error", e.field)
    return ("ok", h, tuple(type(getattr(h, f)) for f in h.__dataclass_fields__))


@settings(max_examples=500, deadline=None)
@given(changes=st.lists(st.tuples(st.sampled_from(_KEYS), _values, st.booleans()), max_size=3),
       node=st.sampled_from(["node-a", "node-b"]))
def test_the_usual_path_decides_as_the_general_path(changes: list[Any], node: str) -> None:
    m: dict[Any, Any] = dict(_GOOD)
    for key, value, delete in changes:
        if delete:
            m.pop(key, None)
        else:
            m[key] = value
    data = msgpack.packb(m, use_bin_type=True)
    general = _outcome(lambda: header_from_map(msgpack.unpackb(data, strict_map_key=False)))
    fast = _outcome(lambda: decode_header(data, node))
    assert fast == general, m
    usual = usual_header(msgpack.unpackb(data, strict_map_key=False), node)
    if usual is not None:
        assert general[0] == "ok" and usual == general[1] and hash(usual) == hash(general[1]), m


@pytest.mark.parametrize("key", _KEYS)
@pytest.mark.parametrize("node", ["node-a", "node-b"])
def test_each_edge_of_each_field_is_decided_alike(key: Any, node: str) -> None:
    for value in _EDGES + [_DELETE]:
        m: dict[Any, Any] = {k: v for k, v in _GOOD.items() if not (k == key and value is _DELETE)}
        if value is not _DELETE:
            m[key] = value
        data = msgpack.packb(m, use_bin_type=True)
        general = _outcome(lambda: header_from_map(msgpack.unpackb(data, strict_map_key=False)))
        assert _outcome(lambda: decode_header(data, node)) == general, m


_DELETE = object()


def test_a_usual_header_takes_the_usual_path() -> None:
    # Else the property above would hold for want of anything to compare.
    h = Header("node-a", 2**64 - 1, 5, -3, 2**64 - 1)
    usual = usual_header(msgpack.unpackb(encode_header(h)), "node-a")
    assert usual == h and usual.seq == 5 and usual.v == 1
    assert usual_header(msgpack.unpackb(encode_header(h)), "node-b") is None  # another topic's node
