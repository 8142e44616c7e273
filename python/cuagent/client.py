"""cuagent.client — the library a scheduler imports to follow one or many agents or relays.

It joins with the clone pattern of PROTOCOL.md §4 (subscribe, queue, snapshot, replay),
detects gaps and restarts and resynchronises, marks nodes stale after 3 s without a
heartbeat, and keeps a live :class:`ClusterView`::

    from cuagent.client import Client
    with Client(["tcp://gpu01:7710", "tcp://gpu02:7710"]) as client:
        client.wait_ready(timeout=5)
        for dev in client.view.rank_devices():
            print(dev.node, dev.id, dev.idle_units)
        for update in client.updates(duration=10):    # or client.on_update(callback),
            ...                                       # or `async for u in client.aupdates()`

Everything runs in the caller's thread: :meth:`Client.poll` does all socket work, so there is
no hidden thread and no lock (one Client per thread).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Iterable, Iterator, NamedTuple, Optional, Sequence

import numpy as np
import zmq

from . import wire
from .polling import poll_timeout_ms
from .curve import ClientKeys, apply_client
from .wire import Device, Header, ProtocolError, State, Topic

log = logging.getLogger("cuagent.client")

STALE_AFTER_S = 3.0  # PROTOCOL.md §3.3
SNAPSHOT_TIMEOUT_S = 2.0
JOIN_WAIT_S = 1.2  # longest wait for a first feed message before the first snapshot (hb: 1 s)
MAX_BUFFERED = 100_000  # feed messages queued per link while (re)joining


class Endpoint(NamedTuple):
    feed: str
    sync: str


def parse_endpoint(spec: str) -> Endpoint:
    """``FEED[,SYNC]``; for ``tcp://host:port`` the sync endpoint defaults to port + 1."""
    feed, _, sync = spec.partition(",")
    feed, sync = feed.strip(), sync.strip()
    if not feed:
        raise ValueError(f"endpoint {spec!r}: no feed endpoint")
    if not sync:
        if not feed.startswith("tcp://") or feed.rsplit(":", 1)[-1].isdigit() is False:
            raise ValueError(f"endpoint {spec!r}: give the sync endpoint too, as FEED,SYNC")
        host, port = feed.rsplit(":", 1)
        sync = f"{host}:{int(port) + 1}"
    return Endpoint(feed, sync)


def _as_endpoint(e: Endpoint | str | Sequence[str]) -> Endpoint:
    if isinstance(e, Endpoint):
        return e
    if isinstance(e, str):
        return parse_endpoint(e)
    return Endpoint(*e)


# --------------------------------------------------------------------------- the view


@dataclass
class DeviceView:
    node: str
    topology: Device
    state: Optional[State] = None
    ts: int = 0  # header ts of the state: unix ns at the end of its window
    seq: int = 0
    # The topo's `status` (PROTOCOL.md §3.1): "ok", or "lost" (no state, never ranked).
    status: str = wire.DEVICE_OK

    @property
    def id(self) -> str:
        return self.topology.id

    @property
    def lost(self) -> bool:
        """The agent reports this device as not serving (e.g. fallen off the bus)."""
        return self.status != wire.DEVICE_OK

    @property
    def idle_units(self) -> Optional[float]:
        return None if self.state is None else self.state.idle_units

    def _finest_state(self) -> Optional[tuple[str, np.ndarray]]:
        """(level, states) at the finest level that carries states, or None."""
        if self.state is None:
            return None
        for level in reversed(self.topology.levels):
            entry = self.state.levels.get(level)
            if entry is not None and "state" in entry:
                return level, entry["state"]
        return None

    def unit_states(self) -> Optional[np.ndarray]:
        """Per-unit states (uint8[units]), expanded from a coarser level through the layout
        when that is where states are measured; None when neither allows it."""
        found = self._finest_state()
        if found is None:
            return None
        level, states = found
        if level == self.topology.unit:
            return states
        ancestors = self.topology.layout.get(level)
        if ancestors is None:
            return None
        valid = ancestors < states.shape[0]
        out = np.full(self.topology.units, wire.IDLE, np.uint8)
        out[valid] = states[ancestors[valid]]
        return out

    def thrashing_units(self) -> np.ndarray:
        """Indices of the units in the thrashing state (empty when unknown)."""
        states = self.unit_states()
        if states is None:
            return np.empty(0, np.intp)
        return np.flatnonzero(states == wire.THRASHING)

    def idle_groups(self, level: Optional[str] = None) -> list[int]:
        """The elements of ``level`` (default: the coarsest, GPC or XCD) whose units are all idle.

        Needs the layout unless states are measured at that level itself. Units the layout
        could not place (an ancestor index beyond the level's count) belong to no group."""
        level = level or self.topology.levels[0]
        if level not in self.topology.levels:
            raise ValueError(f"{level!r} is not a level of {self.id} ({self.topology.levels})")
        if level not in self.topology.counts:
            return []  # its size is unknown (no layout): no group can be shown idle
        found = self._finest_state()
        if found is None:
            return []
        state_level, states = found
        n = self.topology.counts[level]
        if state_level == level:
            return [int(i) for i in np.flatnonzero(states == wire.IDLE)]
        unit_states = self.unit_states()
        ancestors = self.topology.layout.get(level)
        if unit_states is None or ancestors is None:
            return []
        valid = ancestors < n
        busy: np.ndarray = np.zeros(n, bool)
        busy[ancestors[valid][unit_states[valid] != wire.IDLE]] = True
        present: np.ndarray = np.zeros(n, bool)
        present[ancestors[valid]] = True
        return [int(i) for i in np.flatnonzero(present & ~busy)]

    def partition_idle_units(self) -> dict[str, float]:
        """Estimated idle units per partition: from per-unit means where the partition's unit
        ids and unit-level ``active`` are known, else from its ``sm_active``."""
        out: dict[str, float] = {}
        if self.state is None:
            return out
        unit_level = self.state.levels.get(self.topology.unit, {})
        active = unit_level.get("active")
        for p in self.topology.partitions:
            if active is not None and p.unit_ids is not None and len(p.unit_ids):
                out[p.id] = float(np.sum(1.0 - active.mean[p.unit_ids]))
            elif "sm_active" in self.state.partition.get(p.id, {}):
                out[p.id] = (1.0 - float(self.state.partition[p.id]["sm_active"])) * p.units
            elif len(self.topology.partitions) == 1 and self.state.idle_units is not None:
                out[p.id] = self.state.idle_units
        return out


@dataclass
class NodeView:
    name: str
    epoch: int
    gen: int = 1
    agent: Optional[wire.AgentInfo] = None
    devices: dict[str, DeviceView] = field(default_factory=dict)
    heartbeat: Optional[wire.Heartbeat] = None
    last_heard: float = field(default_factory=time.monotonic)  # monotonic time of the last hb
    stale: bool = False


class ClusterView:
    """nodes → devices → topology + latest state. Maintained by a :class:`Client`."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeView] = {}

    def __iter__(self) -> Iterator[DeviceView]:
        return self.devices()

    def devices(self, include_stale: bool = True) -> Iterator[DeviceView]:
        for node in self.nodes.values():
            if include_stale or not node.stale:
                yield from node.devices.values()

    def device(self, node: str, device: str) -> DeviceView:
        return self.nodes[node].devices[device]

    def rank_devices(self, include_stale: bool = False) -> list[DeviceView]:
        """Devices with a known state, most idle units first (a lost device never)."""
        devs = [d for d in self.devices(include_stale) if d.idle_units is not None and not d.lost]
        return sorted(devs, key=lambda d: (-d.idle_units, d.node, d.id))  # type: ignore[operator]

    def rank_partitions(self, include_stale: bool = False) -> list[tuple[DeviceView, str, float]]:
        """(device, partition id, idle units), most idle first."""
        rows = [(d, pid, idle) for d in self.devices(include_stale) if not d.lost
                for pid, idle in d.partition_idle_units().items()]
        return sorted(rows, key=lambda r: (-r[2], r[0].node, r[0].id, r[1]))


# --------------------------------------------------------------------------- client


class Update(NamedTuple):
    """One change to the view: a feed ``kind`` (topo/state/hb/event), or ``restart``
    (a node's epoch changed; its old data is gone) or ``stale`` (no heartbeat for 3 s)."""

    kind: str
    node: str
    device: Optional[str]
    header: Optional[Header]
    body: Any


@dataclass
class ClientStats:
    messages: int = 0  # feed messages received
    applied: int = 0  # messages (feed or snapshot) applied to the view
    duplicates: int = 0  # dropped because seq <= the last applied (snapshot overlap)
    gaps: int = 0  # messages known lost (seq jumps, heartbeat seqs)
    gap_events: int = 0  # times a loss was detected
    resyncs: int = 0  # snapshots requested after the initial join
    restarts: int = 0  # node epochs that changed
    decode_errors: int = 0
    snapshot_timeouts: int = 0


@dataclass
class _Buffered:
    topic: Topic
    topic_str: str
    header: Header
    body: Any
    frames: Sequence[bytes]


class _Link:
    """One upstream (an agent or a relay): its SUB and its sync DEALER."""

    def __init__(self, ctx: zmq.Context, endpoint: Endpoint, prefixes: list[str], rcvhwm: int,
                 curve: Optional[ClientKeys] = None) -> None:
        self.ctx = ctx
        self.curve = curve
        self.endpoint = endpoint
        self.prefixes = prefixes
        self.sub = ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.RCVHWM, rcvhwm)
        apply_client(self.sub, curve)
        for prefix in prefixes:
            self.sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        self.sub.connect(endpoint.feed)
        self.dealer: Optional[zmq.Socket] = None
        self.joining = True  # until the first full snapshot is applied
        # The first snapshot waits until the feed has delivered something (proof that our
        # subscription reached the publisher; a snapshot taken before that could miss the
        # messages sent in between), or JOIN_WAIT_S at most for a quiet prefix.
        self.feed_seen = False
        self.created = time.monotonic()
        self.resyncing: set[str] = set()  # nodes whose messages wait for a snapshot
        self.pending: deque[tuple[str, Optional[str]]] = deque((p, None) for p in prefixes)
        self.inflight: Optional[tuple[str, Optional[str], float]] = None
        self.buffer: list[_Buffered] = []
        self._new_dealer()

    def _new_dealer(self) -> None:
        # A fresh DEALER per retry: a late reply to an abandoned request can never be
        # mistaken for the answer to the next one.
        if self.dealer is not None:
            self.dealer.close(0)
        dealer = self.dealer = self.ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        apply_client(dealer, self.curve)
        dealer.connect(self.endpoint.sync)

    def close(self) -> None:
        self.sub.close(0)
        if self.dealer is not None:
            self.dealer.close(0)


class Client:
    """Follows one or many endpoints (agents or relays) and keeps :attr:`view` current.

    ``endpoints``: ``"tcp://host:7710"`` (sync at port + 1), ``"FEED,SYNC"`` or
    :class:`Endpoint`. ``prefixes``: topic prefixes to follow (default everything).
    ``keep_frames``: also keep the latest raw frames per topo/state topic (for relays).
    ``rcvhwm``: messages queued per endpoint before ZeroMQ drops (the gaps are then counted).
    ``curve``: client keys (:class:`cuagent.curve.ClientKeys`) for agents/relays that run CURVE."""

    def __init__(
        self,
        endpoints: Iterable[Endpoint | str | Sequence[str]],
        prefixes: Sequence[str] = (wire.PREFIX,),
        context: Optional[zmq.Context] = None,
        keep_frames: bool = False,
        stale_after_s: float = STALE_AFTER_S,
        snapshot_timeout_s: float = SNAPSHOT_TIMEOUT_S,
        rcvhwm: int = 100_000,
        curve: Optional[ClientKeys] = None,
    ) -> None:
        self.ctx = context or zmq.Context.instance()
        self.curve = curve
        self.prefixes = list(prefixes)
        for prefix in self.prefixes:
            if not prefix.startswith(wire.PREFIX) and not wire.PREFIX.startswith(prefix):
                raise ValueError(f"prefix {prefix!r} cannot match any cua1/ topic")
        self.view = ClusterView()
        self.stats = ClientStats()
        self.seqs: dict[str, int] = {}  # topic -> last seq applied (current epoch of its node)
        self.epochs: dict[str, int] = {}  # node -> epoch
        self.frames: dict[str, Sequence[bytes]] = {}  # topic -> latest topo/state frames
        self.keep_frames = keep_frames
        self.stale_after_s = stale_after_s
        self.snapshot_timeout_s = snapshot_timeout_s
        self._callbacks: list[Callable[[Update], None]] = []
        self._updates: list[Update] = []
        self.links = [_Link(self.ctx, _as_endpoint(e), self.prefixes, rcvhwm, curve) for e in endpoints]
        if not self.links:
            raise ValueError("no endpoints given")
        for link in self.links:
            self._send_next_request(link)

    # ------------------------------------------------------------------ public API
    def close(self) -> None:
        for link in self.links:
            link.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def on_update(self, callback: Callable[[Update], None]) -> None:
        """Call ``callback(update)`` for every change, from inside :meth:`poll`."""
        self._callbacks.append(callback)

    @property
    def ready(self) -> bool:
        """Every endpoint has answered its first snapshot."""
        return not any(link.joining for link in self.links)

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.ready and time.monotonic() < deadline:
            self.poll(min(0.05, max(0.0, deadline - time.monotonic())))
        return self.ready

    def poll_sockets(self) -> list[zmq.Socket]:
        """The sockets that have work for :meth:`process` when readable (to embed the client
        in another poll loop, as the relay does)."""
        socks = []
        for link in self.links:
            socks.append(link.sub)
            if link.inflight is not None and link.dealer is not None:
                socks.append(link.dealer)
        return socks

    def poll(self, timeout: float = 0.0) -> list[Update]:
        """Wait up to ``timeout`` s for traffic, process everything available, return updates."""
        poller = zmq.Poller()
        for sock in self.poll_sockets():
            poller.register(sock, zmq.POLLIN)
        try:
            poller.poll(poll_timeout_ms(min(timeout, self.next_deadline())))
        except zmq.ZMQError as e:
            if e.errno != errno.EINTR:
                raise
        return self.process()

    async def apoll(self, timeout: float = 0.0) -> list[Update]:
        """:meth:`poll` for asyncio: waits without blocking the event loop."""
        import zmq.asyncio

        poller = zmq.asyncio.Poller()
        for sock in self.poll_sockets():
            poller.register(sock, zmq.POLLIN)
        await poller.poll(max(0.0, min(timeout, self.next_deadline())) * 1000.0)
        return self.process()

    def updates(self, duration: Optional[float] = None) -> Iterator[Update]:
        """Iterate over updates as they happen, for ``duration`` s (None: forever)."""
        end = None if duration is None else time.monotonic() + duration
        while end is None or time.monotonic() < end:
            remaining = 0.25 if end is None else min(0.25, max(0.0, end - time.monotonic()))
            yield from self.poll(remaining)

    async def aupdates(self, duration: Optional[float] = None) -> AsyncIterator[Update]:
        end = None if duration is None else time.monotonic() + duration
        while end is None or time.monotonic() < end:
            remaining = 0.25 if end is None else min(0.25, max(0.0, end - time.monotonic()))
            for update in await self.apoll(remaining):
                yield update
            await asyncio.sleep(0)

    # ------------------------------------------------------------------ processing
    def next_deadline(self) -> float:
        """Seconds until a snapshot times out or a node would go stale."""
        now = time.monotonic()
        due = [link.inflight[2] + self.snapshot_timeout_s - now for link in self.links if link.inflight]
        due += [link.created + JOIN_WAIT_S - now for link in self.links if link.joining and not link.inflight]
        due += [n.last_heard + self.stale_after_s - now for n in self.view.nodes.values() if not n.stale]
        return max(0.0, min(due)) if due else 1.0

    def process(self) -> list[Update]:
        """Handle everything already received (never blocks); return the updates."""
        for link in self.links:
            self._drain_sync(link)
            for _ in range(10_000):  # bounded so that sync replies and timers get their turn
                try:
                    frames = link.sub.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self.stats.messages += 1
                self._receive(link, frames)
            self._drain_sync(link)
        self._check_timers()
        updates, self._updates = self._updates, []
        for update in updates:
            for cb in self._callbacks:
                cb(update)
        return updates

    def _emit(self, kind: str, node: str, device: Optional[str], header: Optional[Header], body: Any) -> None:
        self._updates.append(Update(kind, node, device, header, body))

    def _check_timers(self) -> None:
        now = time.monotonic()
        for link in self.links:
            if link.inflight is None and link.pending:
                self._send_next_request(link)
            if link.inflight is not None and now - link.inflight[2] > self.snapshot_timeout_s:
                self.stats.snapshot_timeouts += 1
                log.info("snapshot from %s timed out; retrying", link.endpoint.sync)
                prefix, node, _ = link.inflight
                link.inflight = None
                link.pending.appendleft((prefix, node))
                link._new_dealer()
                self._send_next_request(link)
        for view in self.view.nodes.values():
            if not view.stale and now - view.last_heard > self.stale_after_s:
                view.stale = True
                log.warning("node %s is stale: no heartbeat for %.0f s", view.name, now - view.last_heard)
                self._emit("stale", view.name, None, None, None)

    # ------------------------------------------------------------------ feed messages
    def _receive(self, link: _Link, frames: list[bytes]) -> None:
        try:
            topic, topic_str, header, body = wire.decode_envelope(frames)
        except ProtocolError as e:
            self.stats.decode_errors += 1
            log.debug("undecodable feed message: %s", e)
            return
        msg = _Buffered(topic, topic_str, header, body, frames)
        if not link.feed_seen:
            link.feed_seen = True
            self._send_next_request(link)
        if link.joining or topic.node in link.resyncing:
            if len(link.buffer) >= MAX_BUFFERED:
                link.buffer.pop(0)  # the seq check will count what this loses
            link.buffer.append(msg)
            return
        self._ingest(link, msg)

    def _ingest(self, link: _Link, msg: _Buffered) -> None:
        node, header = msg.topic.node, msg.header
        epoch = self.epochs.get(node)
        if epoch is None:
            # A node we have no snapshot of (it appeared after we joined): join it.
            self._resync(link, node, msg, reason="new node")
            return
        if header.epoch != epoch:
            self.stats.restarts += 1
            log.warning("node %s restarted (epoch %016x -> %016x): resynchronising", node, epoch, header.epoch)
            self._discard_node(node)
            self._emit("restart", node, None, header, None)
            self._resync(link, node, msg, reason="restart")
            return
        last = self.seqs.get(msg.topic_str, 0)
        if header.seq <= last:
            self.stats.duplicates += 1
            return
        if header.seq > last + 1:
            self.stats.gaps += header.seq - last - 1
            self.stats.gap_events += 1
            if msg.topic.kind == "topo":
                # A lost topo may mean a topology we do not know: only a snapshot can tell.
                self._resync(link, node, msg, reason="topo gap")
                return
        self.seqs[msg.topic_str] = header.seq
        self._apply(link, msg)

    def _apply(self, link: _Link, msg: _Buffered) -> None:
        kind, node = msg.topic.kind, msg.topic.node
        nv = self.view.nodes.get(node)
        try:
            if kind == "topo":
                self._apply_topo(msg)
            elif kind == "state":
                dv = nv.devices.get(msg.topic.device) if nv else None  # type: ignore[arg-type]
                if dv is None:
                    # A state for a device the topo we hold does not list: we missed a topo.
                    self._resync(link, node, None, reason=f"state for unknown device {msg.topic.device}")
                    return
                if dv.lost:
                    return  # the agent says no state of it is current (§3.1 status)
                dv.state = wire.decode_state_body(msg.body, dv.topology)
                dv.ts, dv.seq = msg.header.ts, msg.header.seq
                if self.keep_frames:
                    self.frames[msg.topic_str] = msg.frames
                self._emit("state", node, dv.id, msg.header, dv.state)
            elif kind == "hb":
                hb = wire.decode_hb_body(msg.body)
                if nv is not None:
                    nv.heartbeat, nv.last_heard = hb, time.monotonic()
                    if nv.stale:
                        nv.stale = False
                        log.info("node %s is heard again", node)
                self._emit("hb", node, None, msg.header, hb)
                self._check_hb_seqs(link, node, msg.topic_str, hb)
            else:
                ev = wire.decode_event_body(msg.body)
                self._emit("event", node, msg.topic.device, msg.header, ev)
            self.stats.applied += 1
        except ProtocolError as e:
            self.stats.decode_errors += 1
            log.debug("bad %s body from %s: %s", kind, node, e)

    def _apply_topo(self, msg: _Buffered) -> None:
        topo = wire.decode_topo_body(msg.body)
        node = msg.topic.node
        nv = self.view.nodes.get(node)
        if nv is None:
            nv = self.view.nodes[node] = NodeView(node, msg.header.epoch)
        old = nv.devices
        nv.devices = {}
        for dev in topo.devices:
            dv = DeviceView(node, dev, status=topo.device_status(dev.id))
            prev = old.get(dev.id)
            if dv.lost:
                # Its last window is no longer current: a follower holds no state for it, as
                # a client joining now gets none from the snapshot.
                self.frames.pop(wire.build_topic("state", node, dev.id), None)
            # Keep the latest window across a topo re-publish when the shape is unchanged.
            elif prev is not None and prev.topology.counts == dev.counts and prev.topology.counters == dev.counters:
                dv.state, dv.ts, dv.seq = prev.state, prev.ts, prev.seq
            nv.devices[dev.id] = dv
        for gone in set(old) - set(nv.devices):
            self.frames.pop(wire.build_topic("state", node, gone), None)
        nv.agent, nv.gen, nv.epoch = topo.agent, msg.header.gen, msg.header.epoch
        if self.keep_frames:
            self.frames[msg.topic_str] = msg.frames
        self._emit("topo", node, None, msg.header, topo)

    def _check_hb_seqs(self, link: _Link, node: str, hb_topic: str, hb: wire.Heartbeat) -> None:
        """A heartbeat lists the last seq of every topic: anything we lack there was lost
        (a quiet topic, such as a topo every 10 s, shows its losses no other way)."""
        for topic, seq in hb.seqs.items():
            if topic == hb_topic or not isinstance(topic, str) or not self._subscribed(topic):
                continue
            # A heartbeat speaks for its own node only (§3.3): a topic of another node, or a
            # key that is no topic, must never move seqs (another node's messages would then
            # be dropped as already seen, and a relay would serve the bogus seq onwards).
            try:
                if wire.parse_topic(topic).node != node:
                    continue
            except ProtocolError:
                continue
            last = self.seqs.get(topic, 0)
            if seq > last:
                self.stats.gaps += seq - last
                self.stats.gap_events += 1
                if topic.startswith(f"{wire.PREFIX}topo/"):
                    self._resync(link, node, None, reason="topo lost (heartbeat)")
                    return
                self.seqs[topic] = seq

    def _subscribed(self, topic: str) -> bool:
        return any(topic.startswith(p) for p in self.prefixes)

    def _discard_node(self, node: str) -> None:
        self.view.nodes.pop(node, None)
        self.epochs.pop(node, None)
        tables: list[dict[str, Any]] = [self.seqs, self.frames]
        for table in tables:
            for topic in [t for t in table if t.split("/", 3)[2] == node]:
                del table[topic]

    # ------------------------------------------------------------------ snapshots
    def _resync(self, link: _Link, node: str, msg: Optional[_Buffered], reason: str) -> None:
        if msg is not None:
            link.buffer.append(msg)
        if node in link.resyncing:
            return
        if reason not in ("new node",):
            self.stats.resyncs += 1
        log.info("resync %s via %s: %s", node, link.endpoint.sync, reason)
        link.resyncing.add(node)
        for prefix in self._node_prefixes(node):
            link.pending.append((prefix, node))
        self._send_next_request(link)

    def _node_prefixes(self, node: str) -> list[str]:
        """The narrowest snapshot prefixes covering what we follow of ``node``."""
        out: list[str] = []
        for topic_prefix in wire.node_prefixes(node):
            for sub in self.prefixes:
                if topic_prefix.startswith(sub):
                    out.append(topic_prefix)
                elif sub.startswith(topic_prefix):
                    out.append(sub)
        return sorted(set(out))

    def _send_next_request(self, link: _Link) -> None:
        if link.inflight is not None or not link.pending:
            return
        if link.joining and not link.feed_seen and time.monotonic() - link.created < JOIN_WAIT_S:
            return  # _check_timers / _receive send it
        prefix, node = link.pending.popleft()
        assert link.dealer is not None
        try:
            link.dealer.send(wire.snapshot_request(prefix), zmq.NOBLOCK)
        except zmq.Again:
            pass  # not connected yet: the timeout retries
        link.inflight = (prefix, node, time.monotonic())

    def _drain_sync(self, link: _Link) -> None:
        while link.inflight is not None and link.dealer is not None:
            try:
                data = link.dealer.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            prefix, node, _ = link.inflight
            link.inflight = None
            try:
                snap = wire.decode_snapshot_reply(data)
            except ProtocolError as e:
                self.stats.decode_errors += 1
                log.warning("bad snapshot reply from %s: %s", link.endpoint.sync, e)
                link.pending.appendleft((prefix, node))
                self._send_next_request(link)
                continue
            self._apply_snapshot(link, snap, node)
            if not link.pending:
                self._finish_join(link)
            self._send_next_request(link)

    def _apply_snapshot(self, link: _Link, snap: wire.Snapshot, only_node: Optional[str]) -> None:
        decoded: dict[str, list[_Buffered]] = {}
        for frames in snap.messages:
            try:
                topic, topic_str, header, body = wire.decode_envelope(frames)
            except ProtocolError as e:
                self.stats.decode_errors += 1
                log.debug("bad message in snapshot: %s", e)
                continue
            if only_node is None or topic.node == only_node:
                decoded.setdefault(topic.node, []).append(_Buffered(topic, topic_str, header, body, frames))
        # Nodes known only by their seqs (a follower of hb or event topics: a snapshot holds
        # none of their messages) take their epoch from the reply: a relay lists each node's
        # in "epochs"; otherwise the reply's "epoch" is the node's when it is the only one.
        seq_nodes = {t.split("/", 3)[2] for t in snap.seqs if isinstance(t, str) and t.count("/") >= 3}
        extra_epochs = snap.extra.get("epochs")
        listed = extra_epochs if isinstance(extra_epochs, dict) else {}
        # A relay lists itself among "epochs" before it has published any event of its own
        # (§7): with that epoch known, its first event is applied, not taken for a new node
        # whose snapshot would then cover (and drop) it.
        seq_nodes |= {n for n in listed if isinstance(n, str) and wire.NODE_RE.fullmatch(n)}
        if only_node is not None:
            seq_nodes &= {only_node}
        bare: dict[str, int] = {}
        for node in seq_nodes - set(decoded):
            epoch = listed.get(node)
            if epoch is None and len(seq_nodes) == 1 and "epochs" not in snap.extra:
                epoch = snap.epoch
            if type(epoch) is int:
                bare[node] = epoch
        for node, epoch in bare.items():
            if self.epochs.get(node) not in (None, epoch):
                self.stats.restarts += 1
                self._discard_node(node)
                self._emit("restart", node, None, None, None)
            self.epochs[node] = epoch
            for seq_topic, seq in snap.seqs.items():
                if isinstance(seq_topic, str) and seq_topic.split("/", 3)[2:3] == [node]:
                    self.seqs[seq_topic] = max(self.seqs.get(seq_topic, 0), seq)
        silent = snap.extra.get("silent_s")
        for node, msgs in decoded.items():
            epoch = msgs[0].header.epoch
            if self.epochs.get(node) not in (None, epoch):
                self.stats.restarts += 1
                self._discard_node(node)
                self._emit("restart", node, None, msgs[0].header, None)
            self.epochs[node] = epoch
            held = dict(self.seqs)  # what we had applied before this snapshot
            for seq_topic, seq in snap.seqs.items():
                if isinstance(seq_topic, str) and seq_topic.split("/", 3)[2:3] == [node]:
                    self.seqs[seq_topic] = max(self.seqs.get(seq_topic, 0), seq)
            # topo first: states are decoded against it.
            for msg in sorted(msgs, key=lambda m: m.topic.kind != "topo"):
                if msg.header.epoch != epoch:
                    continue  # a relay caught mid-restart; the feed will tell us
                if msg.header.seq <= held.get(msg.topic_str, 0):
                    continue  # already applied (or something newer): never apply twice
                self._apply(link, msg)
            nv = self.view.nodes.get(node)
            if nv is not None:
                # A relay says how long it has not heard the node (§7): a node silent there
                # goes stale here as soon as it does there, not a full interval later.
                age = silent.get(node, 0.0) if isinstance(silent, dict) else 0.0
                age = float(age) if type(age) in (int, float) and 0.0 <= age < 1e9 else 0.0
                nv.last_heard = time.monotonic() - age

    def _finish_join(self, link: _Link) -> None:
        link.joining = False
        link.resyncing.clear()
        buffered, link.buffer = link.buffer, []
        for msg in buffered:
            self._replay(link, msg)

    def _replay(self, link: _Link, msg: _Buffered) -> None:
        if link.joining or msg.topic.node in link.resyncing:
            link.buffer.append(msg)
        else:
            self._ingest(link, msg)
