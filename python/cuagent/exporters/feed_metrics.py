"""What the Prometheus exporter knows about every node and device it hears of, kept from the
feed's own messages (PROTOCOL.md §3): topologies, the latest window of each device, counters
integrated over every window (unit-seconds, energy, windows, samples) and liveness.

Two sources feed it the same messages: :meth:`FeedMetrics.agent_hook` inside ``cuagent run``
(the agent hands each message it publishes, no socket in between), and
:meth:`FeedMetrics.client_update` for ``cuagent exporter`` (a :class:`cuagent.client.Client`
following any agents or relays). Either only appends the message to a queue; the work is
done in batches when Prometheus scrapes (or every ``DRAIN_AT`` messages), so the agent's
publish thread pays one append per message whatever the scrape interval.

Up: a device's latest window is exported while it is current by the agent's own clock
(:mod:`cuagent.feed.freshness`), not while it arrived recently: a snapshot replays a hung
device's last window (at the exporter's start, after each resync), and that window, however
old, arrives now. The node's clock is its latest heartbeat's ``ts`` (a snapshot never holds a
heartbeat: it is live) plus the time since it came, on this host's monotonic clock, so no two
hosts' clocks are compared: an agent host whose clock is off by minutes still has its live
windows exported and its old ones not. Inside ``cuagent run`` every message is live (the agent
hands each as it sends it), so each sets the clock. Before a node's first heartbeat this host's
wall clock stands in.

Missed windows: each device's windows end on a fixed grid (header ``ts``, §2), so a window
whose ``ts`` is more than one ``window_ns`` after the previous one means windows were not
seen (lost on the feed, or skipped by a publisher that fell behind); they are counted, not
filled in. A gap across a lost device or a restarted agent is not a miss: nothing was made.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from .. import wire
from ..feed.freshness import STALE_AFTER_S, NodeClock, current
from ..wire import AgentInfo, Device, Header, Heartbeat, State, Topic, Topo
from .unit_seconds import UnitSeconds, partition_elements

log = logging.getLogger("cuagent.exporters")

# No heartbeat for STALE_AFTER_S (PROTOCOL.md §3.3) is stale; a window older than that, or than
# three windows for publish intervals longer than 1 s, is not current (feed.freshness).
# Queued messages that the source's thread applies itself (about 1.6 s of windows of 8 GPUs),
# so that a scrape applies at most this many whatever its interval: the same work in total,
# and a scrape at 15 s stays as short as one at 1 s.
DRAIN_AT = 128


@dataclass
class DeviceMetrics:
    node: str
    device: Device
    ledger: UnitSeconds
    windows: int = 0
    missed: int = 0
    window_ns_total: int = 0
    samples: int = 0
    energy_j: float = 0.0
    last_ts: Optional[int] = None  # header ts (window end, Unix ns) of the latest window
    last_window_ns: int = 0
    last_arrival: Optional[float] = None  # monotonic time the latest window arrived (None: since went stale)
    lost: bool = False  # a device_lost event, or topo status other than ok, after its latest window
    profiling_paused: Optional[str] = None  # the topo's reason while its CUPTI counters are paused
    latest: Any = None  # the latest state body: a wire map (agent hook) or a decoded State
    clock: NodeClock = field(default_factory=NodeClock)  # its node's (NodeMetrics.clock)
    _decoded: Optional[State] = None
    _elements: Optional[dict[str, np.ndarray]] = None

    def state(self) -> Optional[State]:
        """The latest window, decoded against the topology (None before the first, or when
        it does not match the topology)."""
        if self._decoded is None and self.latest is not None:
            if isinstance(self.latest, State):
                self._decoded = self.latest
            else:
                try:
                    self._decoded = wire.decode_state_body(self.latest, self.device)
                except wire.ProtocolError as e:
                    log.warning("state of %s/%s does not match its topology: %s", self.node, self.device.id, e)
                    self.latest = None
        return self._decoded

    def partition_elements(self) -> dict[str, np.ndarray]:
        """For each partition, the element (at the state level) of each of its units."""
        if self._elements is None:
            self._elements = partition_elements(self.device)
        return self._elements

    def up(self, now: float) -> bool:
        """Its latest window is current at monotonic ``now`` (within the stale limit on the
        node's clock, not by when it arrived: see the module doc), and no loss or staleness
        was announced since."""
        if self.lost or self.last_arrival is None or self.last_ts is None:
            return False
        return current(self.last_ts, self.last_window_ns, self.clock.now_ns(now), STALE_AFTER_S)


@dataclass
class NodeMetrics:
    name: str
    gen: int = 0
    agent: Optional[AgentInfo] = None
    devices: dict[str, DeviceMetrics] = field(default_factory=dict)
    last_hb: Optional[float] = None  # monotonic
    # The node's present time on its own clock, from its live messages: its windows' age.
    clock: NodeClock = field(default_factory=NodeClock)
    rate_hz: Optional[float] = None
    dropped: Optional[int] = None

    def feed_up(self, now: float) -> bool:
        return self.last_hb is not None and now - self.last_hb <= STALE_AFTER_S


class FeedMetrics:
    """Nodes → devices → what their messages said. Thread-safe: sources push from their own
    thread; readers hold :attr:`lock` after :meth:`drain`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.nodes: dict[str, NodeMetrics] = {}
        self.decode_errors = 0
        # (kind, node, device, ts, gen, body, arrived, live): deque.append is atomic, so a
        # source never takes the lock unless the queue is long.
        self._queue: deque[tuple[str, str, Optional[str], int, int, Any, float, bool]] = deque()
        self._topics: dict[str, Topic] = {}

    # ------------------------------------------------------------------ sources
    def push(self, kind: str, node: str, device: Optional[str], ts: int, gen: int, body: Any,
             live: bool = True) -> None:
        """One message; ``live``: sent just now, never a snapshot's replay, so its ``ts`` sets
        the node's clock (:class:`~cuagent.feed.freshness.NodeClock`)."""
        self._queue.append((kind, node, device, ts, gen, body, time.monotonic(), live))
        if len(self._queue) >= DRAIN_AT and self.lock.acquire(blocking=False):
            # Never wait for a scrape in progress (it drains the queue itself).
            try:
                self._drain_locked()
            finally:
                self.lock.release()

    def agent_hook(self) -> Callable[[str, Header, Any], None]:
        """The callable for ``Agent.on_publish``: (topic, header, body map) of each message
        the agent sends. It never raises into the agent's loop."""
        topics = self._topics

        def hook(topic: str, header: Header, body: Any) -> None:
            try:
                parsed = topics.get(topic)
                if parsed is None:
                    parsed = topics[topic] = wire.parse_topic(topic)
                self.push(parsed.kind, parsed.node, parsed.device, header.ts, header.gen, body)
            except Exception:  # noqa: BLE001 — metrics must never stop the feed
                log.exception("metrics: could not take message %s", topic)

        return hook

    def client_update(self, update: Any) -> None:
        """For ``Client.on_update``: each :class:`cuagent.client.Update`. A state's ``body``
        is decoded here (every window counts); None is a body the client found malformed
        and counted already."""
        header, body = update.header, update.body
        if body is None and update.kind == "state":
            return
        # Only a heartbeat is sure to be live: a snapshot replays topo, state and sum (§4).
        self.push(update.kind, update.node, update.device, header.ts if header else 0, header.gen if header else 0,
                  body, update.kind == "hb")

    # ------------------------------------------------------------------ applying
    def drain(self) -> None:
        """Apply every queued message, in order, and fold the unit-seconds."""
        with self.lock:
            self.apply_queued()

    def apply_queued(self) -> None:
        """:meth:`drain` for a caller that holds :attr:`lock`."""
        self._drain_locked()
        for nv in self.nodes.values():
            for dm in nv.devices.values():
                dm.ledger.fold()

    def _drain_locked(self) -> None:
        while self._queue:
            kind, node, device, ts, gen, body, arrived, live = self._queue.popleft()
            try:
                self._apply(kind, node, device, ts, gen, body, arrived)
                if live and (nv := self.nodes.get(node)) is not None:
                    nv.clock.heard(ts, arrived)
            except (wire.ProtocolError, KeyError, TypeError, ValueError) as e:
                self.decode_errors += 1
                log.warning("metrics: %s message from %s not understood: %s", kind, node, e)

    def _apply(self, kind: str, node: str, device: Optional[str], ts: int, gen: int, body: Any,
               arrived: float) -> None:
        if kind == "state":
            nv = self.nodes.get(node)
            dm = nv.devices.get(device) if nv is not None and device is not None else None
            if dm is not None:  # a state before its topology cannot be interpreted
                self._window(dm, ts, body, arrived)
        elif kind == "topo":
            self._topology(node, gen, body if isinstance(body, Topo) else wire.decode_topo_body(body))
            nv = self.nodes[node]
            if nv.last_hb is None:
                nv.last_hb = arrived  # as a client joining by snapshot: heard now, stale 3 s on
        elif kind == "hb":
            nv = self._node(node)
            hb = body if isinstance(body, Heartbeat) else wire.decode_hb_body(body)
            nv.last_hb, nv.rate_hz, nv.dropped = arrived, hb.rate_hz, hb.dropped
        elif kind == "event":
            ev = body if isinstance(body, wire.Event) else wire.decode_event_body(body)
            nv = self.nodes.get(node)
            if ev.type == "device_lost" and nv is not None and device in nv.devices:
                nv.devices[device].lost = True
            elif ev.type == "node_stale":
                # A relay stopped hearing the node (§7): its feed and its GPUs are stale now,
                # not 3 s after the relay's own 3 s.
                stale = self.nodes.get(str(ev.extra.get("node")))
                if stale is not None:
                    stale.last_hb = None
                    for dm in stale.devices.values():
                        dm.last_arrival = None
            elif ev.type == "node_gone":
                # The relay forgot the node (§7): its series go, as a node never heard would.
                self.nodes.pop(str(ev.extra.get("node")), None)
        elif kind == "gone":
            # Dropped by the client without a node_gone (silent for its relay's forget interval).
            self.nodes.pop(node, None)
        elif kind == "restart":
            # A new agent process: the time it was away is no loss of ours, and its windows
            # start a new sequence.
            for dm in self._node(node).devices.values():
                dm.last_ts = None

    def _node(self, node: str) -> NodeMetrics:
        nv = self.nodes.get(node)
        if nv is None:
            nv = self.nodes[node] = NodeMetrics(node)
        return nv

    def _topology(self, node: str, gen: int, topo: Topo) -> None:
        nv = self._node(node)
        nv.agent, nv.gen = topo.agent, gen
        devices: dict[str, DeviceMetrics] = {}
        for dev in topo.devices:
            dm = nv.devices.get(dev.id)
            if dm is None:
                dm = DeviceMetrics(node, dev, UnitSeconds(dev), clock=nv.clock)
            elif wire.encode_device(dm.device) != wire.encode_device(dev):
                # A new partition layout (or any change of shape): the counts so far stay
                # with their labels; windows from now on map through the new topology.
                dm.ledger.rebind(dev)
                dm.device, dm.latest, dm._decoded, dm._elements = dev, None, None, None
            else:
                dm.device = dev
            if topo.device_status(dev.id) != wire.DEVICE_OK:
                dm.lost = True  # §3.1: lost (or a status we do not know) until its next window
            dm.profiling_paused = topo.profiling_paused.get(dev.id)
            devices[dev.id] = dm
        nv.devices = devices  # a device the topology no longer lists is no longer exported

    def _window(self, dm: DeviceMetrics, ts: int, body: Any, arrived: float) -> None:
        if dm.last_ts is not None and ts <= dm.last_ts:
            return  # already counted (a snapshot replaying the latest window)
        if isinstance(body, State):
            window_ns, samples, device_values = body.window_ns, body.samples, body.device
            entry = body.levels.get(dm.ledger.level) if dm.ledger.level else None
            states = entry.get("state") if entry else None
            states_bytes = states.tobytes() if states is not None else None
        else:
            window_ns, samples, device_values = body["window_ns"], body["samples"], body["device"]
            levels = body.get("levels")
            entry = levels.get(dm.ledger.level) if levels and dm.ledger.level else None
            states_bytes = entry.get("state") if entry else None
        if type(window_ns) is not int or window_ns <= 0:
            raise ValueError(f"window_ns {window_ns!r}")
        if dm.last_ts is not None and not dm.lost:
            gap = round((ts - dm.last_ts) / window_ns) - 1
            if gap > 0:
                dm.missed += gap
        dm.lost = False
        dm.last_ts, dm.last_window_ns, dm.last_arrival = ts, window_ns, arrived
        dm.windows += 1
        dm.window_ns_total += window_ns
        dm.samples += int(samples)
        power = device_values.get("power")
        if isinstance(power, (int, float)) and math.isfinite(power):
            dm.energy_j += power * window_ns / 1e9
        if isinstance(states_bytes, bytes):
            dm.ledger.add(window_ns, states_bytes)
        dm.latest, dm._decoded = body, None
