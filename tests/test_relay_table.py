"""The relay's table (cuagent._core.RelayTable, PROTOCOL.md §4, §7) message by message, with
explicit times: what it serves in snapshots after restarts, lost devices, silent nodes,
summaries, upstream snapshots and malformed input."""

from __future__ import annotations

import msgpack
import pytest

from cuagent import _core, wire
from test_protocol import AGENT, h100_device, h100_state

S = 1_000_000_000  # ns
DEV = h100_device()
STATE = wire.pack(wire.encode_state_body(h100_state(), DEV.counters))


def topo_body(ids, lost=()):
    devices = [wire.encode_device(DEV) | {"id": i} for i in ids]
    return wire.pack(wire.with_device_status({"agent": wire.encode_topo_body([DEV], AGENT)["agent"], "devices": devices},
                                             set(lost)))


class Node:
    """One node's messages, numbered as its agent would (§2)."""

    def __init__(self, name="n1", epoch=7):
        self.name, self.epoch, self.seqs = name, epoch, {}

    def msg(self, kind, body, device=None, ts=1, seq=None, gen=1):
        topic = wire.build_topic(kind, self.name, device)
        self.seqs[topic] = seq if seq is not None else self.seqs.get(topic, 0) + 1
        return [topic.encode(), wire.encode_header(wire.Header(self.name, self.epoch, self.seqs[topic], ts, gen)), body]

    def topo(self, ids=("d0", "d1"), lost=(), gen=1):
        return self.msg("topo", topo_body(ids, lost), gen=gen)

    def state(self, device, ts=1, gen=1):
        return self.msg("state", STATE, device, ts, gen=gen)

    def hb(self, topo_seq=None):
        topic = wire.build_topic("hb", self.name)
        seqs = dict(self.seqs)
        if topo_seq is not None:
            seqs[wire.build_topic("topo", self.name)] = topo_seq
        return self.msg("hb", wire.pack(wire.encode_hb_body(seqs, 1.0, 0, 1.0)))

    def sum(self, ts, gen=1):
        return self.msg("sum", wire.pack({"devices": 8}), ts=ts, gen=gen)


def served(table, prefix="cua1/", now_ns=None):
    messages, seqs, epochs, silent, stale, refused = table.snapshot(prefix, now_ns)
    # Every frame served carries the seq the reply lists for its topic.
    for topic, header, _body in messages:
        assert msgpack.unpackb(header)["seq"] == seqs[topic.decode()], topic
    return {t.decode(): msgpack.unpackb(h)["seq"] for t, h, _ in messages}, seqs, epochs, stale, refused


def test_a_node_heard_from_its_first_topo_is_served_without_a_join():
    table, n = _core.RelayTable(), Node()
    for frames in (n.topo(), n.state("d0"), n.state("d1"), n.state("d0")):
        assert table.ingest(frames, now_ns=0)
    assert table.take_joins() == []
    frames, seqs, epochs, _, _ = served(table)
    assert frames == {"cua1/topo/n1/": 1, "cua1/state/n1/d0/": 2, "cua1/state/n1/d1/": 1}
    assert seqs == frames and epochs == {"n1": 7}
    assert table.nodes() == [("n1", False)]


def test_a_node_joined_midway_is_not_served_until_joined_then_a_restart_forgets_it():
    table, n = _core.RelayTable(), Node()
    n.topo()  # sent before the relay listened
    table.ingest(n.state("d0"), now_ns=0)
    assert table.take_joins() == [("n1", 7, 1)]
    assert served(table)[1] == {}  # seqs without the topo would strand a joining client
    assert table.merge_message(n.msg("topo", topo_body(["d0", "d1"]), seq=1), now_ns=0)
    table.mark_joined("n1", 7)
    assert served(table)[0] == {"cua1/topo/n1/": 1, "cua1/state/n1/d0/": 1}
    # A restart: everything of epoch 7 is void; the new epoch is joined again.
    n2 = Node(epoch=8)
    table.ingest(n2.state("d1"), now_ns=0)
    assert table.stats()["restarts"] == 1 and table.take_joins() == [("n1", 8, 1)]
    table.mark_joined("n1", 7)  # a late answer for the old epoch settles nothing
    assert table.join_needed("n1") == 8
    table.ingest(n2.topo(), now_ns=0)
    table.mark_joined("n1", 8)
    frames, seqs, epochs, _, _ = served(table)
    assert frames == {"cua1/topo/n1/": 1, "cua1/state/n1/d1/": 1} and epochs == {"n1": 8}


def test_a_lost_devices_state_is_withheld_and_not_served_again_until_its_next_window():
    table, n = _core.RelayTable(), Node()
    for frames in (n.topo(), n.state("d0"), n.state("d1")):
        table.ingest(frames, now_ns=0)
    table.ingest(n.topo(lost=["d1"]), now_ns=0)
    frames, seqs, _, _, _ = served(table)
    assert "cua1/state/n1/d1/" not in frames and seqs["cua1/state/n1/d1/"] == 1  # its seq stays listed
    table.ingest(n.topo(), now_ns=0)  # back: its last window before the loss is not current
    assert "cua1/state/n1/d1/" not in served(table)[0]
    table.ingest(n.state("d1"), now_ns=0)
    assert served(table)[0]["cua1/state/n1/d1/"] == 2
    # A device gone from the topo altogether goes the same way.
    table.ingest(n.topo(ids=["d0"]), now_ns=0)
    assert set(served(table)[0]) == {"cua1/topo/n1/", "cua1/state/n1/d0/"}


def test_a_silent_node_goes_stale_is_withheld_and_comes_back_when_heard():
    table, n = _core.RelayTable(), Node()
    for frames in (n.topo(), n.state("d0"), n.hb()):
        table.ingest(frames, now_ns=0)
    assert table.check_stale(3.0, now_ns=2 * S) == []
    assert table.check_stale(3.0, now_ns=4 * S) == [("n1", True, 4.0)]
    assert table.check_stale(3.0, now_ns=5 * S) == []  # each change once
    frames, seqs, _, stale, _ = served(table, now_ns=5 * S)
    assert frames == {} and stale == ["n1"] and seqs["cua1/state/n1/d0/"] == 1
    table.ingest(n.hb(), now_ns=6 * S)
    assert table.check_stale(3.0, now_ns=6 * S) == [("n1", False, 0.0)]
    assert set(served(table)[0]) == {"cua1/topo/n1/", "cua1/state/n1/d0/"}


def test_a_heartbeat_listing_a_newer_topo_or_a_state_of_an_unknown_device_asks_for_a_join():
    table, n = _core.RelayTable(), Node()
    table.ingest(n.topo(), now_ns=0)
    table.ingest(n.hb(topo_seq=2), now_ns=0)  # topo 2 was lost on the way
    assert table.take_joins() == [("n1", 7, 2)]
    table.ingest(n.msg("topo", topo_body(["d0", "d1"]), seq=2), now_ns=0)
    assert table.join_needed("n1") is None
    table.ingest(n.state("d9"), now_ns=0)
    assert table.take_joins() == [("n1", 7, 4)]
    assert "cua1/state/n1/d9/" not in served(table)[0]  # its topo does not list it


@pytest.mark.parametrize("new_ids", [("d0",), ("d0", "d1")], ids=["other devices", "same body"])
def test_a_new_topo_gen_drops_the_states_and_summaries_of_the_old_one(new_ids):
    """§3.1, §4: the agent drops every state and summary of an old gen at a new one (their
    shape may not match the new topo); a relay whose snapshot paired them with the new topo
    made clients decode old windows against it. The same body under a new gen (a rebuilt
    engine) too."""
    table, n = _core.RelayTable(), Node()
    for frames in (n.topo(), n.state("d0"), n.state("d1"), n.sum(ts=S)):
        table.ingest(frames, now_ns=0)
    table.ingest(n.topo(ids=new_ids, gen=2), now_ns=0)
    assert served(table)[0] == {"cua1/topo/n1/": 2}  # was: the two gen-1 states and the gen-1 sum
    table.ingest(n.state("d0", gen=2), now_ns=0)
    table.ingest(n.state("d1", gen=1), now_ns=0)  # a late one of the old gen: not held
    assert served(table)[0] == {"cua1/topo/n1/": 2, "cua1/state/n1/d0/": 2}
    assert table.take_joins() == []
    table.ingest(n.state("d0", gen=3), now_ns=0)  # its gen's topo was missed: a join fetches it
    assert [name for name, _, _ in table.take_joins()] == ["n1"]


def test_summaries_go_on_once_per_interval_of_their_windows():
    table, n = _core.RelayTable(summary_interval_ns=S), Node()
    table.ingest(n.topo(), now_ns=0)
    sent = [ts for ts in range(0, 35 * S // 10, S // 10) if table.ingest(n.sum(ts), now_ns=0)]
    assert sent == [0, S, 2 * S, 3 * S]
    # The table's seq is the last forwarded one's: what the feed carried.
    assert table.seq("cua1/sum/n1/") == 31 and served(table)[0]["cua1/sum/n1/"] == 31
    assert table.ingest(n.sum(S), now_ns=0)  # a clock that stepped back starts over
    assert not table.ingest(n.sum(S + 1), now_ns=0)
    assert table.stats()["summaries_skipped"] == 32
    everything = _core.RelayTable()
    assert all(everything.ingest(n.sum(ts), now_ns=0) for ts in range(10))


def test_a_summary_after_a_topo_change_goes_on_at_once():
    # A device lost: the agent re-publishes topo and sends a summary at once (§3.5); a relay
    # downsampling to one a second must not hold that one back.
    table, n = _core.RelayTable(summary_interval_ns=S), Node()
    table.ingest(n.topo(), now_ns=0)
    assert table.ingest(n.sum(0), now_ns=0)
    assert not table.ingest(n.sum(S // 10), now_ns=0)
    table.ingest(n.topo(), now_ns=0)  # the same topo again: nothing changed
    assert not table.ingest(n.sum(2 * S // 10), now_ns=0)
    table.ingest(n.topo(lost=["d1"]), now_ns=0)
    assert table.ingest(n.sum(3 * S // 10), now_ns=0)
    assert not table.ingest(n.sum(4 * S // 10), now_ns=0)  # and the interval counts from it
    assert table.ingest(n.sum(13 * S // 10), now_ns=0)


def test_a_nodes_first_topo_heard_after_its_summaries_is_no_change():
    # A relay that starts while the node runs hears a summary before it has the node's topo
    # (a join brings it): that topo is the first it knows, not a change, so the next summary
    # within the interval still waits.
    table, n = _core.RelayTable(summary_interval_ns=S), Node()
    n.topo()  # sent before the relay listened
    assert table.ingest(n.sum(0), now_ns=0)
    assert table.merge_message(n.msg("topo", topo_body(["d0", "d1"]), seq=1), now_ns=0)
    assert not table.ingest(n.sum(S // 10), now_ns=0)
    assert table.ingest(n.sum(S), now_ns=0)


def test_an_upstream_snapshot_fills_in_what_is_older_and_never_moves_back():
    table, n = _core.RelayTable(), Node()
    for frames in (n.topo(), n.state("d0"), n.state("d0"), n.state("d0")):
        table.ingest(frames, now_ns=0)
    assert not table.merge_message(n.msg("state", STATE, "d0", seq=2), now_ns=0)
    assert table.merge_message(n.msg("state", STATE, "d0", seq=5), now_ns=0)
    other = Node(epoch=9)
    assert not table.merge_message(other.state("d0"), now_ns=0)  # the feed decides restarts
    assert not table.merge_seq("cua1/state/n1/d0/", 9, 50, now_ns=0)
    # A seq beyond the frames held (a device upstream withholds): its frames are not current.
    assert table.merge_seq("cua1/state/n1/d0/", 7, 6, now_ns=0)
    frames, seqs, _, _, _ = served(table)
    assert "cua1/state/n1/d0/" not in frames and seqs["cua1/state/n1/d0/"] == 6
    assert table.merge_seq("cua1/event/n1/", 7, 4, now_ns=0) and table.seq("cua1/event/n1/") == 4


def test_malformed_messages_are_forwarded_untouched_and_change_nothing():
    table, n = _core.RelayTable(), Node()
    good = n.state("d0")
    bad = [
        good[:2],  # two frames
        good + [b"x"],  # four
        [b"cua1/state/n1/", good[1], good[2]],  # a state topic without device
        [good[0], b"\x80", good[2]],  # an empty header map
        [b"cua1/state/n2/d0/", good[1], good[2]],  # the header names another node
        [good[0], wire.encode_header(wire.Header("n1", 7, 1, 1, 1))[:-1], good[2]],  # cut short
    ]
    for frames in bad:
        assert table.ingest(frames, now_ns=0)
    stats = table.stats()
    # (A well-formed topic is remembered, within max_topics, even when its header is not.)
    assert stats["malformed"] == len(bad) and stats["nodes"] <= 2 and served(table)[1] == {}


def test_a_body_that_is_no_msgpack_is_never_spliced_into_a_reply():
    table, n = _core.RelayTable(), Node()
    table.ingest(n.topo(), now_ns=0)
    table.ingest(n.msg("state", b"\xc1", "d0"), now_ns=0)
    table.ingest(n.msg("state", b"\xa2\xff\xfe", "d1"), now_ns=0)  # a string that is no UTF-8
    frames, seqs, _, _, refused = served(table)
    assert set(frames) == {"cua1/topo/n1/"} and refused == 2 and seqs["cua1/state/n1/d0/"] == 1
    # An unreadable topo serves no frame, nor any state (nothing to place them by).
    table.ingest(n.msg("topo", wire.pack({"devices": "none"})), now_ns=0)
    frames, seqs, _, _, _ = served(table)
    assert frames == {} and seqs["cua1/topo/n1/"] == 2 and table.stats()["unreadable_bodies"] == 1


def test_the_relays_own_events_are_counted_but_never_joined_or_aged():
    table = _core.RelayTable(own_node="relay-x")
    me = Node("relay-x", epoch=3)
    table.ingest(me.msg("event", wire.pack(wire.encode_event_body("node_stale", "x", node="n1"))), now_ns=0)
    assert table.take_joins() == [] and table.nodes() == []
    _, seqs, epochs, _, _ = served(table)
    assert seqs == {"cua1/event/relay-x/": 1} and epochs == {"relay-x": 3}
    assert table.check_stale(1.0, now_ns=100 * S) == []


def test_topics_beyond_the_bound_are_forwarded_but_not_kept():
    table, n = _core.RelayTable(max_topics=2), Node()
    assert all(table.ingest(n.state(f"d{i}"), now_ns=0) for i in range(4))
    assert table.stats()["topics"] == 2 and table.stats()["untracked"] == 2


@pytest.mark.parametrize("bad", [b"", b"\x00", "not bytes"])
def test_frames_must_be_bytes_like(bad):
    table = _core.RelayTable()
    if isinstance(bad, str):
        with pytest.raises(TypeError):
            table.ingest([bad, bad, bad])
    else:
        assert table.ingest([bad, bad, bad]) and table.stats()["malformed"] == 1


def test_a_relays_own_event_stream_is_never_forgotten_however_quiet():
    # Relays send no hb: an upstream relay is a node of events only, quiet for as long as it
    # has nothing to announce. Forgetting it made clients take its next event for a new node's
    # (and drop it as covered by the join's snapshot). Agents that fall silent are forgotten.
    table, agent, relay = _core.RelayTable(), Node("n1"), Node("relay-u", epoch=9)
    for frames in (agent.topo(), agent.hb(), relay.msg("event", wire.pack({"type": "node_back", "detail": "x",
                                                                           "node": "n0"}))):
        assert table.ingest(frames, now_ns=0)
    assert [node for node, _ in table.forget_silent(300.0, now_ns=1000 * S)] == ["n1"]
    assert table.seq("cua1/event/relay-u/") == 1 and table.seq("cua1/topo/n1/") == 0


PREFIXES = ["cua1/", "cua1/state/", "cua1/state/n1", "cua1/state/n1/", "cua1/state/n1/d0/", "cua1/state/n1/d",
            "cua1/topo/n1/", "cua1/hb/n10/", "cua1/sum/n2/", "cua1/state/n3/", "cua1/state/nobody/",
            "cua1/nokind/n1/", "cua1/state//", "cua2/state/n1/"]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_a_snapshot_under_any_prefix_is_the_whole_snapshot_cut_to_that_prefix(prefix):
    """A prefix within one node reads that node's topics alone (not the whole table): what it
    serves must be what the whole snapshot serves under that prefix, for nodes served, stale,
    being joined and unknown, and for prefixes that name a node only in part (n1 covers n10)."""
    table, nodes = _core.RelayTable(), {name: Node(name) for name in ("n1", "n10", "n2", "n3")}
    for name in ("n1", "n10", "n2"):
        n = nodes[name]
        for frames in (n.topo(), n.state("d0"), n.state("d1"), n.hb(), n.sum(1)):
            table.ingest(frames, now_ns=0)
    for name in ("n1", "n10"):
        table.ingest(nodes[name].hb(), now_ns=9 * S)
    assert [c[0] for c in table.check_stale(5.0, now_ns=9 * S)] == ["n2"]
    nodes["n3"].topo()  # n3 heard midway: being joined, not served
    table.ingest(nodes["n3"].state("d0"), now_ns=9 * S)

    def cut(reply):
        messages, seqs, epochs, silent, stale_nodes, refused = reply
        seqs = {t: s for t, s in seqs.items() if t.startswith(prefix)}
        nodes = {wire.node_of(t) for t in seqs}
        return ({t.decode(): (h, b) for t, h, b in messages if t.decode().startswith(prefix)}, seqs,
                {n: e for n, e in epochs.items() if n in nodes}, {n: s for n, s in silent.items() if n in nodes},
                sorted(n for n in stale_nodes if n in nodes), refused)

    whole = cut(table.snapshot("cua1/", 9 * S))
    reply = table.snapshot(prefix, 9 * S)
    assert cut(reply) == whole and reply[1].keys() == whole[1].keys()
    topos = [t.startswith(b"cua1/topo/") for t, _, _ in reply[0]]
    assert topos == sorted(topos, reverse=True)  # topo first
    assert (whole[0] != {}) == (prefix in ("cua1/", "cua1/state/", "cua1/state/n1", "cua1/state/n1/",
                                           "cua1/state/n1/d0/", "cua1/state/n1/d", "cua1/topo/n1/"))
