"""The relay's native readers (cpp/src/relay/) against cuagent.wire and Python's msgpack, under
hypothesis: a header, a topic or a frame is valid for the relay exactly when the Python
decoder accepts it, with the same values, and nothing malformed makes them fail otherwise
than by saying so (they run in the relay's forwarding loop on every message)."""

from __future__ import annotations

import msgpack
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cuagent import _core, wire

SETTINGS = settings(max_examples=400, deadline=None)


def python_header(data: bytes):
    try:
        h = wire.decode_header(data)
    except wire.ProtocolError:
        return None
    return (h.node, h.epoch, h.seq, h.ts, h.gen)


def python_topic(data: bytes):
    try:
        t = wire.parse_topic(data)
    except wire.ProtocolError:
        return None
    return (t.kind, t.node, t.device)


def python_well_formed(data: bytes) -> bool:
    try:
        msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, TypeError):
        return False
    return True


# --------------------------------------------------------------------------- values

ints = st.one_of(st.integers(-(1 << 63), (1 << 64) - 1), st.sampled_from([0, 1, 2, -1, (1 << 64) - 1, -(1 << 63)]))
scalars = st.one_of(st.none(), st.booleans(), ints, st.floats(allow_nan=True), st.text(max_size=8),
                    st.binary(max_size=8))
values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
                      max_leaves=8)
node_names = st.one_of(st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True), st.text(max_size=70))
# Keys: ours, others, and some Python can hash but are no strings (bin, int, None, float).
keys = st.one_of(st.sampled_from(["v", "node", "epoch", "seq", "ts", "gen"]), st.text(max_size=5), st.binary(max_size=3),
                 st.integers(-5, 5), st.none())


@st.composite
def header_maps(draw):
    """Mostly valid headers, each field now and then wrong, missing, doubled or joined by others."""
    m = {
        "v": draw(st.one_of(st.just(1), st.just(1), ints, values)),
        "node": draw(st.one_of(st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True), node_names, values)),
        "epoch": draw(st.one_of(ints, values)),
        "seq": draw(st.one_of(st.integers(1, (1 << 64) - 1), ints, values)),
        "ts": draw(st.one_of(ints, values)),
        "gen": draw(st.one_of(st.integers(1, 1 << 20), ints, values)),
    }
    for key in draw(st.lists(st.sampled_from(sorted(m)), max_size=2, unique=True)):
        del m[key]
    extra = draw(st.dictionaries(keys, values, max_size=3))
    return {**m, **{k: v for k, v in extra.items() if k not in m}}


def pack(obj) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


@st.composite
def mutated(draw, base):
    """A packed value, then bytes flipped, cut, inserted or appended."""
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "append"]))
        if op == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
        elif op == "cut" and data:
            del data[draw(st.integers(0, len(data) - 1)):]
        elif op == "insert":
            data.insert(draw(st.integers(0, len(data))), draw(st.integers(0, 255)))
        else:
            data += draw(st.binary(max_size=4))
    return bytes(data)


# --------------------------------------------------------------------------- headers

def test_the_agents_own_headers_read_alike():
    for h in (wire.Header("node-a", 1, 1, 0, 1), wire.Header("n" * 64, (1 << 64) - 1, (1 << 64) - 1, -(1 << 63), 7),
              wire.Header("gpu-01.x_y", 12345, 99, 1_795_766_599_900_000_000, 3)):
        data = wire.encode_header(h)
        assert _core.parse_feed_header(data) == python_header(data) == (h.node, h.epoch, h.seq, h.ts, h.gen)


@SETTINGS
@given(header_maps())
@example({"v": 1, "node": "a", "epoch": 1, "seq": 1, "ts": 1, "gen": 1, (1, 2): 3})  # an unhashable key
@example({"v": True, "node": "a", "epoch": 1, "seq": 1, "ts": 1, "gen": 1})  # a bool is no int
@example({"v": 1, "node": "a", "epoch": 1, "seq": 1, "ts": 1.0, "gen": 1})
@example({"v": 1, "node": "a", "epoch": -1, "seq": 1, "ts": 1, "gen": 1})
def test_a_header_map_reads_as_the_python_decoder_reads_it(m):
    data = pack(m)
    assert _core.parse_feed_header(data) == python_header(data)


@SETTINGS
@given(mutated(header_maps().map(pack)))
def test_a_damaged_header_reads_as_the_python_decoder_reads_it(data):
    assert _core.parse_feed_header(data) == python_header(data)


@SETTINGS
@given(st.binary(max_size=80))
def test_random_bytes_never_pass_for_a_header_unless_python_agrees(data):
    assert _core.parse_feed_header(data) == python_header(data)


def test_doubled_keys_count_once_the_last_as_in_a_python_dict():
    good = pack({"v": 1, "node": "a", "epoch": 1, "seq": 5, "ts": 1, "gen": 1})
    # {.. "seq": "x", "seq": 5}: msgpack keeps the last; so must the relay.
    doubled = b"\x87" + good[1:] + b"\xa3seq\xa1x"
    assert python_header(doubled) is None and _core.parse_feed_header(doubled) is None
    doubled = b"\x87\xa3seq\xa1x" + good[1:]
    assert python_header(doubled) == _core.parse_feed_header(doubled) == ("a", 1, 5, 1, 1)


def test_a_string_that_is_no_utf8_spoils_the_header_for_both():
    for bad in (b"\xa2\xc0\x80", b"\xa3\xed\xa0\x80", b"\xa4\xf4\x90\x80\x80", b"\xa1\x80"):
        data = b"\x87" + pack({"v": 1, "node": "a", "epoch": 1, "seq": 5, "ts": 1, "gen": 1})[1:] + b"\xa1k" + bad
        assert python_header(data) is None and _core.parse_feed_header(data) is None, bad


# --------------------------------------------------------------------------- topics

topic_texts = st.one_of(
    st.builds(lambda k, n, d: f"cua1/{k}/{n}/" + (f"{d}/" if d is not None else ""),
              st.sampled_from(list(wire.KINDS) + ["x", ""]), node_names, st.none() | st.text(max_size=130)),
    st.text(max_size=40))


@SETTINGS
@given(topic_texts)
@example("cua1/state/n/" + "é" * 128 + "/")  # 128 characters, 256 bytes
@example("cua1/state/n/" + "é" * 129 + "/")
@example("cua1/event/n/a\x00b/")
@example("cua1/topo/n/d/")
@example("cua1/state/n/")
@example("cua1/sum/n/")
def test_a_topic_reads_as_wire_parses_it(text):
    data = text.encode("utf-8", "surrogatepass")
    assert _core.parse_feed_topic(data) == python_topic(data)


@SETTINGS
@given(mutated(topic_texts.map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_a_damaged_topic_reads_as_wire_parses_it(data):
    assert _core.parse_feed_topic(data) == python_topic(data)


# --------------------------------------------------------------------------- whole frames

deep = st.integers(1020, 1030).map(lambda n: [b"\x91" * n + b"\xc0", b"\x91" * n + b"\x90", b"\x81\xc0" * n + b"\xc0"])


def ext(code: int, data: bytes) -> bytes:
    """An ext value of any type code (msgpack.ExtType takes 0-127 only): fixext or ext 8."""
    fixed = {1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8}
    head = bytes([fixed[len(data)]]) if len(data) in fixed else bytes([0xc7, len(data)])
    return head + code.to_bytes(1, "big", signed=True) + data


exts = st.builds(ext, st.integers(-128, 127), st.binary(max_size=17))
timestamps = st.one_of(
    st.binary(min_size=0, max_size=13).map(lambda d: ext(-1, d)),
    st.integers(0, (1 << 64) - 1).map(lambda v: b"\xd7\xff" + v.to_bytes(8, "big")),
    st.builds(lambda ns, s: b"\xc7\x0c\xff" + ns.to_bytes(4, "big") + s.to_bytes(8, "big", signed=True),
              st.integers(0, (1 << 32) - 1), st.integers(-(1 << 63), (1 << 63) - 1)))


@SETTINGS
@given(st.one_of(mutated(values.map(pack)), mutated(header_maps().map(pack)), st.binary(max_size=40), exts, timestamps,
                 mutated(exts), mutated(timestamps)))
def test_a_frame_is_well_formed_exactly_when_pythons_msgpack_takes_it(data):
    assert _core.msgpack_well_formed(data) == python_well_formed(data)


@settings(max_examples=30, deadline=None)
@given(deep)
def test_nesting_is_bounded_where_pythons_msgpack_bounds_it(cases):
    for data in cases:
        assert _core.msgpack_well_formed(data) == python_well_formed(data), (len(data), data[-2:])


def test_real_bodies_are_well_formed():
    from test_protocol import AGENT, h100_device, h100_state

    dev = h100_device()
    for body in (wire.encode_topo_body([dev], AGENT), wire.encode_state_body(h100_state(), dev.counters),
                 wire.encode_hb_body({"cua1/topo/a/": 3}, 1000.0, 0, 2.5)):
        assert _core.msgpack_well_formed(wire.pack(body))


# --------------------------------------------------------------------------- upstream replies

def _message(node: str, kind: str, seq: int, epoch: int) -> list[bytes]:
    topic = f"cua1/{kind}/{node}/" + ("d0/" if kind == "state" else "")
    body = {"devices": [{"id": "d0"}], "x": seq} if kind == "topo" else {"x": seq}
    return [topic.encode(), wire.encode_header(wire.Header(node, epoch, seq, 1, 1)), wire.pack(body)]


@st.composite
def replies(draw):
    nodes = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True))
    epoch = draw(st.integers(1, 5))
    messages = [_message(n, k, draw(st.integers(1, 9)), epoch) for n in nodes for k in ("topo", "state")]
    seqs = {m[0].decode(): msgpack.unpackb(m[1])["seq"] for m in messages}
    seqs.update({f"cua1/hb/{n}/": draw(st.integers(1, 9)) for n in nodes})
    extra = draw(st.sampled_from([{}, {"epochs": {n: epoch for n in nodes}, "stale": [], "silent_s": {nodes[0]: 1.5}}]))
    return wire.snapshot_reply(epoch, messages, seqs, **extra)


def python_reply_ok(data: bytes) -> bool:
    try:
        wire.decode_snapshot_reply(data)
    except wire.ProtocolError:
        return False
    return True


@SETTINGS
@given(st.one_of(replies(), mutated(replies()), st.binary(max_size=40),
                 mutated(st.just(wire.snapshot_reply(1, [], {})))))
def test_an_upstream_reply_is_merged_exactly_when_the_python_decoder_takes_it(data):
    table = _core.RelayTable()
    ok, error, _relay, _nodes = table.merge_snapshot(data, now_ns=0)
    assert ok == python_reply_ok(data), error
    assert ok or table.stats()["merged"] == 0  # all or nothing


@SETTINGS
@given(replies())
def test_a_merged_reply_serves_its_frames_as_they_came(data):
    table = _core.RelayTable()
    ok, _error, relay, nodes = table.merge_snapshot(data, now_ns=0)
    snap = wire.decode_snapshot_reply(data)
    assert ok and relay == ("epochs" in snap.extra)
    assert {n for n, _ in nodes} == {wire.node_of(t) for t in snap.seqs}
    for node, epoch in nodes:
        table.mark_joined(node, epoch)
    messages, seqs, epochs, _silent, _stale, _refused = table.snapshot("cua1/", now_ns=0)
    assert seqs == snap.seqs and set(epochs) == {n for n, _ in nodes}
    # Every topo and state frame, byte for byte.
    assert sorted(messages) == sorted((m[0], m[1], m[2]) for m in snap.messages)
