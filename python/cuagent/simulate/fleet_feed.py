"""A synthetic fleet: one process that speaks the agent protocol for many nodes (PROTOCOL.md
§2–5), each with its own epoch, seqs and heartbeats, from frames recorded once
(:mod:`.fleet_recording`). For load-testing relays, clients and schedulers against thousands
of nodes without thousands of processes (``cuagent fleet``, ``bench/fanin.py``).

What each node does, as an agent on its first window would: ``topo`` (seq 1, then every topo
interval), one ``state`` per device every period and after them the node summary (``sum``,
§3.5: every ``summary_every`` windows, its own seqs, one per summary sent), an ``hb`` every
heartbeat interval listing the last seq of each of its topics (its ``sum`` topic's included). The bodies are the recorded ones, shared by every node
(node ``i`` plays the recording from its own offset, so nodes differ at any moment); only the
header frame is encoded per message, and it is one frame per node and window (every device
of a node shares node, epoch, seq, ts and gen).

Pacing: the nodes are spread evenly across the period (node ``i`` publishes at ``i / N`` of
it), so the feed is a steady stream rather than one burst per period. Each node's windows end
on its own grid (``ts`` is when it was due), so a subscriber's ``now - ts`` is the delivery
time plus whatever the publisher ran late, not an artefact of the spreading. A publisher more
than one period behind does what the agent does with windows it missed: it skips them, and
their seqs (PROTOCOL.md §4: a client counts a gap; ``ts`` jumps by as many periods), and
counts them (``skipped_windows``, in the ping reply), so offered and achieved rates are told
apart honestly.

One thread publishes and answers ``sync`` (:class:`~cuagent.node.server.FeedServer`): a
snapshot is consistent with the feed's seqs by construction, as the agent's is. The snapshot
of several nodes is answered as a relay answers it (§7): the fleet's own epoch, and each
node's in ``epochs``.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import zmq

from .. import wire
from ..node.agent import AGENT_VERSION
from ..node.server import FeedServer, Ping, SnapshotContent
from ..polling import poll_timeout_ms
from .fleet_recording import Recording

log = logging.getLogger("cuagent.fleet")

# Queued messages per subscriber before the feed drops for it: one relay takes the feed of
# every node here, so the agent's 1,000 (10 s of one node) would be ~6 ms of 2,000 nodes.
DEFAULT_SNDHWM = 200_000
# Slots (node windows) published before the sync socket and subscriptions get a look.
BATCH_SLOTS = 64


@dataclass
class FleetConfig:
    nodes: int
    gpus: int = 8
    rate_hz: float = 10.0
    feed: str = "tcp://*:7710"
    sync: str = "tcp://*:7711"
    # Node names are <name>-<index>, index from ``first``; ``name`` is also the fleet's own
    # name in ping replies.
    name: str = "fleet"
    first: int = 0
    hb_interval_s: float = 1.0
    topo_interval_s: float = 10.0
    sndhwm: int = DEFAULT_SNDHWM
    # The node summary after every this many windows, as `cuagent run --summary-every`; 0: none.
    summary_every: int = 1

    def __post_init__(self) -> None:
        if self.nodes < 1 or self.gpus < 1 or self.first < 0:
            raise ValueError("a fleet needs at least one node of at least one GPU, from index >= 0")
        if not self.rate_hz > 0 or not self.hb_interval_s > 0 or not self.topo_interval_s > 0:
            raise ValueError("rate, heartbeat and topo intervals must be > 0")
        if self.summary_every < 0:
            raise ValueError(f"summary every {self.summary_every} windows: expected >= 0 (0: no summary)")
        wire.check_node(self.node_name(self.first + self.nodes - 1), "--name")

    def node_name(self, index: int) -> str:
        return f"{self.name}-{index:05d}"


@dataclass
class FleetStats:
    """What the fleet sent; ``late_s`` holds how late each of the last slots went out."""

    messages: dict[str, int] = field(default_factory=lambda: {"topo": 0, "state": 0, "sum": 0, "hb": 0})
    bytes: int = 0
    slots: int = 0  # node windows published
    skipped_windows: int = 0  # node windows skipped (publisher more than a period behind)
    started: float = 0.0
    late_s: list[float] = field(default_factory=list)

    def as_map(self, offered_msgs_per_s: float) -> dict[str, Any]:
        elapsed = max(1e-9, time.monotonic() - self.started) if self.started else 0.0
        late = sorted(self.late_s)
        sent = sum(self.messages.values())
        return {"messages": dict(self.messages), "bytes": self.bytes, "slots": self.slots,
                "skipped_windows": self.skipped_windows, "elapsed_s": round(elapsed, 3),
                "offered_msgs_per_s": round(offered_msgs_per_s, 1),
                "achieved_msgs_per_s": round(sent / elapsed, 1) if elapsed else 0.0,
                "late_ms_p50": round(late[len(late) // 2] * 1e3, 3) if late else None,
                "late_ms_p99": round(late[int(len(late) * 0.99)] * 1e3, 3) if late else None}


class _Node:
    """One simulated node: its topics, epoch and where its seqs stand."""

    __slots__ = ("name", "epoch", "states", "state_topics", "state_frames", "topo", "topo_topic", "hb", "hb_topic", "topo_body",
                 "topo_seq", "hb_seq", "window", "header", "topo_header", "seqs", "sum", "sum_topic", "sum_seq",
                 "sum_header", "sum_window")

    def __init__(self, name: str, topics: list[str], topo_body: bytes) -> None:
        self.name = name
        self.epoch = wire.new_epoch()
        self.state_topics = topics
        self.states = [t.encode() for t in topics]
        # Sent without a copy, as the recorded bodies are: a frame can be sent many times.
        self.state_frames = [zmq.Frame(t) for t in self.states]
        self.topo_topic = wire.build_topic("topo", name)
        self.topo = self.topo_topic.encode()
        self.hb_topic = wire.build_topic("hb", name)
        self.hb = self.hb_topic.encode()
        self.sum_topic = wire.build_topic("sum", name)
        self.sum = zmq.Frame(self.sum_topic.encode())
        self.sum_seq = 0  # one per summary sent: a window skipped sends none, and skips no sum seq
        self.sum_header = b""
        self.sum_window = -1  # the window of the last summary sent (its records' row)
        self.topo_body = topo_body
        self.topo_seq = 0
        self.hb_seq = 0
        self.window = -1  # index of the last window published (its state seq is window + 1)
        self.header = b""  # the header of that window's states
        self.topo_header = b""
        # The hb's seqs map, kept up to date: topic -> last seq sent.
        self.seqs: dict[str, int] = {}


class FleetFeed:
    """Publishes ``recording`` for ``config.nodes`` nodes until :meth:`stop`. Sockets are bound
    in the constructor and used only by the thread that calls :meth:`run`."""

    def __init__(self, recording: Recording, config: FleetConfig,
                 context: Optional[zmq.Context[zmq.Socket[bytes]]] = None) -> None:
        self.recording = recording
        self.config = config
        self.epoch = wire.new_epoch()
        self.stats = FleetStats()
        self._stop = threading.Event()
        self._ctx = context or zmq.Context.instance()
        started_ns = time.time_ns()
        devices = recording.devices
        self.nodes: list[_Node] = []
        for i in range(config.nodes):
            name = config.node_name(config.first + i)
            topics = [wire.build_topic("state", name, devices[d % len(devices)].id) for d in range(config.gpus)]
            # host is the node's name: the fleet plays every node, from one process.
            topo = recording.topo_body(wire.AgentInfo(AGENT_VERSION, name, os.getpid(), started_ns))
            self.nodes.append(_Node(name, topics, topo))
        self._body_frames = [[zmq.Frame(b) for b in row] for row in recording.states]
        self._body_bytes = [sum(len(row[d % len(row)]) for d in range(config.gpus)) for row in recording.states]
        self._sum_frames = [zmq.Frame(b) for b in recording.sums]
        self._hb_every = max(1, round(config.hb_interval_s * config.rate_hz))
        self._topo_every = max(1, round(config.topo_interval_s * config.rate_hz))
        self.server = FeedServer(self._ctx, config.feed, config.sync, self, config.sndhwm)
        self.feed_endpoint, self.sync_endpoint = self.server.feed_endpoint, self.server.sync_endpoint

    @property
    def offered_msgs_per_s(self) -> float:
        cfg = self.config
        per_node = cfg.gpus * cfg.rate_hz + cfg.rate_hz / self._hb_every + cfg.rate_hz / self._topo_every
        if cfg.summary_every:
            per_node += cfg.rate_hz / cfg.summary_every
        return cfg.nodes * per_node

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.server.close(feed_linger_ms=200)

    # ------------------------------------------------------------------ publishing
    def run(self) -> None:
        cfg = self.config
        log.info("fleet %s epoch %016x: %d nodes x %d GPUs (%s profile) at %g Hz, %s .. %s, feed %s, sync %s, "
                 "offered %.0f msg/s", cfg.name, self.epoch, cfg.nodes, cfg.gpus, self.recording.profile, cfg.rate_hz,
                 self.nodes[0].name, self.nodes[-1].name, self.feed_endpoint, self.sync_endpoint,
                 self.offered_msgs_per_s)
        poller = zmq.Poller()
        poller.register(self.server.sync, zmq.POLLIN)
        poller.register(self.server.feed, zmq.POLLIN)
        slots_per_s = cfg.nodes * cfg.rate_hz
        n = cfg.nodes
        t0 = time.monotonic()
        wall0 = time.time_ns()
        self.stats.started = t0
        done = 0  # slots published or skipped: slot s is node s % n's window s // n
        while not self._stop.is_set():
            now = time.monotonic()
            due = int((now - t0) * slots_per_s) + 1
            if due - done > n:
                # More than a period behind: those windows are missed, as an agent misses them.
                self.stats.skipped_windows += due - n - done
                done = due - n
            end = min(due, done + BATCH_SLOTS)
            for slot in range(done, end):
                self._publish_slot(slot % n, slot // n, wall0 + int(slot / slots_per_s * 1e9))
            if end > done:
                self._note_late(time.monotonic() - (t0 + (end - 1) / slots_per_s))
            done = end
            wait = 0.0 if done < due else t0 + done / slots_per_s - time.monotonic()
            try:
                ready = dict(poller.poll(poll_timeout_ms(min(max(0.0, wait), 0.1))))
            except zmq.ZMQError as e:
                if e.errno == errno.EINTR:
                    continue
                raise
            if ready.get(self.server.sync):
                self.server.serve_sync()
            self.server.serve_subscriptions(bool(ready.get(self.server.feed)))
        log.info("fleet %s stopping: %s", cfg.name, self.stats.as_map(self.offered_msgs_per_s))

    def _note_late(self, late: float) -> None:
        lates = self.stats.late_s
        if len(lates) >= 4096:
            del lates[:2048]
        lates.append(late)

    def _publish_slot(self, index: int, window: int, ts: int) -> None:
        """Node ``index``'s window ``window``: its topo and heartbeat when due, and its states.
        ``phase`` staggers the nodes' periodic messages and recorded windows."""
        stats = self.stats
        node = self.nodes[index]
        phase = window + index
        send = self.server.feed.send
        if window == 0 or phase % self._topo_every == 0:
            node.topo_seq += 1
            node.topo_header = wire.encode_header(wire.Header(node.name, node.epoch, node.topo_seq, ts, 1))
            self._send(node.topo, node.topo_header, node.topo_body)
            node.seqs[node.topo_topic] = node.topo_seq
            stats.messages["topo"] += 1
        seq = window + 1  # windows skipped before this one are seqs skipped: a gap downstream
        header = node.header = wire.encode_header(wire.Header(node.name, node.epoch, seq, ts, 1))
        node.window = window
        row = phase % len(self._body_frames)
        bodies = self._body_frames[row]
        more = zmq.SNDMORE | zmq.NOBLOCK
        for d, topic in enumerate(node.state_frames):
            try:
                send(topic, more, copy=False)
                send(header, more)
                send(bodies[d % len(bodies)], zmq.NOBLOCK, copy=False)
            except zmq.Again:  # XPUB drops at a subscriber's HWM; this is only belt and braces
                pass
        stats.messages["state"] += len(node.states)
        stats.bytes += self._body_bytes[row] + sum(map(len, node.states)) + len(header) * len(node.states)
        stats.slots += 1
        every = self.config.summary_every
        if every and (node.sum_window < 0 or window - node.sum_window >= every):
            self._summary(node, window, row, ts)
        if window == 0 or phase % self._hb_every == 0:
            self._heartbeat(node, ts, seq)

    def _summary(self, node: _Node, window: int, row: int, ts: int) -> None:
        """The node's summary of window ``window`` (records of recorded row ``row``), after its
        states as the agent sends it; ``ts`` is the window's end, which the records are aged to."""
        node.sum_seq += 1
        node.sum_window = window
        header = node.sum_header = wire.encode_header(wire.Header(node.name, node.epoch, node.sum_seq, ts, 1))
        body = self._sum_frames[row % len(self._sum_frames)]
        try:
            send = self.server.feed.send
            send(node.sum, zmq.SNDMORE | zmq.NOBLOCK, copy=False)
            send(header, zmq.SNDMORE | zmq.NOBLOCK)
            send(body, zmq.NOBLOCK, copy=False)
        except zmq.Again:
            pass
        node.seqs[node.sum_topic] = node.sum_seq
        self.stats.messages["sum"] += 1
        self.stats.bytes += len(node.sum_topic) + len(header) + len(self.recording.sums[row % len(self._sum_frames)])

    def _heartbeat(self, node: _Node, ts: int, state_seq: int) -> None:
        node.hb_seq += 1
        seqs = node.seqs
        for topic in node.state_topics:
            seqs[topic] = state_seq
        seqs[node.hb_topic] = node.hb_seq  # the hb's own topic, with the seq it carries
        uptime = time.monotonic() - self.stats.started
        body = wire.pack(wire.encode_hb_body(seqs, self.recording.rate_hz, 0, uptime))
        self._send(node.hb, wire.encode_header(wire.Header(node.name, node.epoch, node.hb_seq, ts, 1)), body)
        self.stats.messages["hb"] += 1

    def _send(self, topic: bytes, header: bytes, body: bytes) -> None:
        try:
            self.server.feed.send_multipart([topic, header, body], zmq.NOBLOCK)
        except zmq.Again:
            pass
        self.stats.bytes += len(topic) + len(header) + len(body)

    # ------------------------------------------------------------------ sync (FeedServer's SyncSource)
    def ping(self) -> Ping:
        cfg = self.config
        return Ping(cfg.name, self.epoch, 1, {"fleet": {
            "nodes": cfg.nodes, "gpus": cfg.gpus, "rate_hz": cfg.rate_hz, "profile": self.recording.profile,
            "first": self.nodes[0].name, "last": self.nodes[-1].name,
            **self.stats.as_map(self.offered_msgs_per_s)}})

    def snapshot(self, prefix: str) -> SnapshotContent:
        """The latest topo and state of every node under ``prefix`` that has published, and
        the seq of each of their topics (§4.3); ``epochs`` lists each node's (§7)."""
        rec = self.recording
        messages: list[list[bytes]] = []
        seqs: dict[str, int] = {}
        epochs: dict[str, int] = {}
        everything = wire.PREFIX.startswith(prefix)
        for i, node in enumerate(self.nodes):
            if node.window < 0:
                continue
            if not everything and not any(p.startswith(prefix) or prefix.startswith(p)
                                          for p in wire.node_prefixes(node.name)):
                continue
            phase = node.window + i
            bodies = rec.states[phase % len(rec.states)]
            listed = len(seqs)
            if node.topo_topic.startswith(prefix):
                messages.append([node.topo, node.topo_header, node.topo_body])
                seqs[node.topo_topic] = node.topo_seq
            for d, topic in enumerate(node.state_topics):
                if topic.startswith(prefix):
                    messages.append([node.states[d], node.header, bodies[d % len(bodies)]])
                    seqs[topic] = node.window + 1
            if node.sum_seq and node.sum_topic.startswith(prefix):
                sum_row = (node.sum_window + i) % len(self._body_frames)
                messages.append([node.sum_topic.encode(), node.sum_header, rec.sums[sum_row % len(rec.sums)]])
                seqs[node.sum_topic] = node.sum_seq
            if node.hb_seq and node.hb_topic.startswith(prefix):
                seqs[node.hb_topic] = node.hb_seq
            if len(seqs) > listed:
                epochs[node.name] = node.epoch
        # One node: its own epoch, as its agent would answer; several: each header carries its
        # node's, and "epochs" lists them (the relay's convention, §7).
        epoch = next(iter(epochs.values())) if len(epochs) == 1 else self.epoch
        return SnapshotContent(epoch, messages, seqs, {"epochs": epochs})

