"""Many synthetic nodes behind one PUB + ROUTER, speaking the feed as an upstream relay would
(PROTOCOL.md §2-§5, §7): each node has its own epoch and seqs, publishes a topo, a state per
device per round and an hb per node now and then, can restart (a new epoch) or lose a device,
and the ROUTER answers snapshots of any prefix from what was last sent. For the relay's tests
(tests/test_relay_feed.py) and its bench (bench/relay_scale.py): one process offers the feed
of thousands of nodes.

Frames come from the one wire encoder. ``fast=True`` (the bench) patches seq and ts into a
header encoded once per topic instead of encoding each header: the same map, with seq as a
full 8-byte uint64 (msgpack allows it; the decoder takes it), so that a Python loop can offer
~100k messages a second.
"""

from __future__ import annotations

import random
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import zmq

from cuagent import wire

_SEQ_MARK = (1 << 64) - 1  # encodes as 0xcf + 8 bytes of 0xff: the bytes to patch


@dataclass
class _Topic:
    name: str
    raw: bytes
    header: bytearray  # fast: the encoded header, seq and ts patched in place
    seq_at: int
    ts_at: int


@dataclass
class SyntheticNode:
    name: str
    epoch: int
    devices: list[str]
    seqs: dict[str, int] = field(default_factory=dict)
    lost: set[str] = field(default_factory=set)
    topics: dict[str, _Topic] = field(default_factory=dict)


class SyntheticNodes:
    """``nodes`` nodes named ``<prefix>-<i>`` with ``topo_body`` (a topo map whose devices'
    ids name the state topics) and ``state_body`` (a state map, the same for every device)."""

    def __init__(self, feed: str, sync: str, nodes: int, topo_body: dict[str, Any], state_body: dict[str, Any],
                 prefix: str = "syn", seed: int = 1, fast: bool = False, sndhwm: int = 0,
                 ctx: Optional[zmq.Context[zmq.Socket[bytes]]] = None) -> None:
        self.ctx = ctx or zmq.Context.instance()
        self.rng = random.Random(seed)
        self.fast = fast
        self.topo_body = topo_body
        self.topo_bytes = wire.pack(topo_body)
        self.state_bytes = wire.pack(state_body)
        self.hb_template = (1000.0, 0, 1.0)
        self.pub = self.ctx.socket(zmq.PUB)
        # 0: never drop here (the tests check the relay's feed); the bench drops when the relay lags.
        self.pub.setsockopt(zmq.SNDHWM, sndhwm)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.bind(feed)
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.bind(sync)
        device_ids = [d["id"] for d in topo_body["devices"]]
        self.nodes = [SyntheticNode(f"{prefix}-{i:05d}", wire.new_epoch(), list(device_ids)) for i in range(nodes)]
        # Latest frames of every topo/state topic, as sent: what a snapshot serves.
        self.latest: dict[str, list[bytes]] = {}
        self.sent = 0
        self.snapshots = 0

    # ------------------------------------------------------------------ publishing
    def _frames(self, node: SyntheticNode, topic: str, body: bytes, ts: int) -> list[bytes]:
        seq = node.seqs.get(topic, 0) + 1
        node.seqs[topic] = seq
        if not self.fast:
            return [topic.encode(), wire.encode_header(wire.Header(node.name, node.epoch, seq, ts, 1)), body]
        t = node.topics.get(topic)
        if t is None:
            header = bytearray(wire.encode_header(wire.Header(node.name, node.epoch, _SEQ_MARK, 1 << 62, 1)))
            seq_at = bytes(header).index(b"\xa3seq\xcf") + 5
            ts_at = bytes(header).index(b"\xa2ts\xcf") + 4
            t = node.topics[topic] = _Topic(topic, topic.encode(), header, seq_at, ts_at)
        struct.pack_into(">Q", t.header, t.seq_at, seq)
        struct.pack_into(">Q", t.header, t.ts_at, ts)
        return [t.raw, bytes(t.header), body]

    def _send(self, frames: list[bytes], keep: bool) -> None:
        if keep:
            self.latest[frames[0].decode()] = frames
        self.pub.send_multipart(frames)
        self.sent += 1

    def topo(self, node: SyntheticNode, ts: Optional[int] = None) -> None:
        body = self.topo_bytes
        if node.lost:
            body = wire.pack(wire.with_device_status(self.topo_body, node.lost))
        self._send(self._frames(node, wire.build_topic("topo", node.name), body, ts or time.time_ns()), True)

    def state(self, node: SyntheticNode, device: str, ts: int) -> None:
        # The names were checked when the node was made: no build_topic per message.
        self._send(self._frames(node, f"cua1/state/{node.name}/{device}/", self.state_bytes, ts), True)

    def hb(self, node: SyntheticNode, ts: Optional[int] = None) -> None:
        """A heartbeat sent at ``ts`` on the node's clock (default this host's: now)."""
        topic = wire.build_topic("hb", node.name)
        seqs = dict(node.seqs)
        seqs[topic] = seqs.get(topic, 0) + 1
        body = wire.pack(wire.encode_hb_body(seqs, *self.hb_template))
        self._send(self._frames(node, topic, body, time.time_ns() if ts is None else ts), False)

    def event(self, node: SyntheticNode, kind: str, detail: str, device: Optional[str] = None) -> None:
        topic = wire.build_topic("event", node.name, device)
        self._send(self._frames(node, topic, wire.pack(wire.encode_event_body(kind, detail, device=device)),
                                time.time_ns()), False)

    def round(self, ts: int) -> None:
        """One window: a state of every device of every node that is not lost."""
        for node in self.nodes:
            for device in node.devices:
                if device not in node.lost:
                    self.state(node, device, ts)

    def start_all(self) -> None:
        for node in self.nodes:
            self.topo(node)

    def restart(self, node: SyntheticNode, topo_first: bool = True) -> None:
        """A new epoch: every seq starts again; without ``topo_first`` its first message is a
        state (a relay must then join it to get its topo)."""
        for topic in [t for t in self.latest if wire.node_of(t) == node.name]:
            del self.latest[topic]
        node.epoch = wire.new_epoch()
        node.seqs.clear()
        node.topics.clear()
        node.lost.clear()
        if topo_first:
            self.topo(node)
        else:
            self.state(node, node.devices[0], time.time_ns())
            self.topo(node)

    def lose(self, node: SyntheticNode, device: str) -> None:
        """A device lost (§3.1): topo says so, the event follows, no state until it is back."""
        node.lost.add(device)
        self.latest.pop(wire.build_topic("state", node.name, device), None)
        self.topo(node)
        self.event(node, "device_lost", "synthetic", device)

    def back(self, node: SyntheticNode, device: str) -> None:
        node.lost.discard(device)
        self.event(node, "device_back", "synthetic", device)
        self.topo(node)

    # ------------------------------------------------------------------ sync
    def serve(self) -> int:
        """Answer every queued snapshot request from what was last sent; how many."""
        n = 0
        while self.router.poll(0):
            ident, *_, raw = self.router.recv_multipart()
            request = wire.unpack_request(raw)
            prefix = request.get("prefix", wire.PREFIX) if isinstance(request, dict) else wire.PREFIX
            messages = [f for t, f in self.latest.items() if t.startswith(prefix)]
            seqs: dict[str, int] = {}
            epochs: dict[str, int] = {}
            for node in self.nodes:
                for topic, seq in node.seqs.items():
                    if topic.startswith(prefix):
                        seqs[topic] = seq
                        epochs[node.name] = node.epoch
            reply = wire.snapshot_reply(1, messages, seqs, epochs=epochs, stale=[], silent_s={})
            self.router.send_multipart([ident, reply])
            n += 1
        self.snapshots += n
        return n

    def close(self) -> None:
        self.pub.close(0)
        self.router.close(0)
