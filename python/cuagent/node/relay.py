"""cuagent relay (PROTOCOL.md §7): many agents in, one feed out, frames untouched.

Forwarding (XSUB→XPUB) runs on a thread of its own: frames are never decoded there, so seq
and epoch stay those of the origin node. Downstream subscriptions do not travel upstream (the
relay takes all of ``cua1/`` from every agent anyway): the forwarding thread reads them to
bound what each subscriber can make the relay hold (:mod:`cuagent.node.subscriptions`), which
libzmq's own proxy, forwarding them upstream, could not do.

The relay also follows every upstream as a client (snapshot join, gaps, restarts) keeping the
latest raw frames per topo/state topic, and answers ``snapshot``/``ping`` on its own sync
socket from that cache. Since it speaks the agent's protocol on both sides, relays stack.

A node the relay has not heard for the stale interval is withheld from its snapshots (its
cached frames would pass for current) and announced on the relay's own feed with a
``node_stale`` event, under the relay's name; ``node_back`` when it is heard again. The events
enter the proxy through an inproc PUB that the XSUB also follows, so the proxy thread stays
the only user of the forwarding sockets.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from dataclasses import dataclass
from typing import Optional, Sequence

import zmq

from .. import wire
from ..client import STALE_AFTER_S, Client, Endpoint, FrameCache
from ..curve import ClientKeys, ServerKeys, apply_client
from ..polling import poll_timeout_ms
from . import sockets
from .server import FeedServer, Ping, SnapshotContent

log = logging.getLogger("cuagent.relay")

# Messages forwarded per pass before subscriptions and the control socket get a look.
FORWARD_BATCH = 256


@dataclass
class RelayConfig:
    upstreams: Sequence[Endpoint | str]
    name: str
    feed: str = "tcp://*:7720"
    sync: str = "tcp://*:7721"
    sndhwm: int = sockets.DEFAULT_SNDHWM
    # CURVE (PROTOCOL.md §6): serve with these keys and admit only their allow-list, and/or
    # connect upstream as this client.
    curve: Optional[ServerKeys] = None
    upstream_curve: Optional[ClientKeys] = None
    # Seconds without a heartbeat before a node is withheld and announced stale (§3.3, §7).
    stale_after_s: float = STALE_AFTER_S

    def __post_init__(self) -> None:
        wire.check_node(self.name, "--name")
        if not self.upstreams:
            raise ValueError("a relay needs at least one upstream (--connect)")
        if not 0 < self.stale_after_s < 1e6:
            raise ValueError(f"--stale-after-s must be > 0 and < 1e6 s, got {self.stale_after_s}")


class Relay:
    def __init__(self, config: RelayConfig, context: Optional[zmq.Context[zmq.Socket[bytes]]] = None) -> None:
        self.config = config
        self.ctx = context or zmq.Context.instance()
        self.epoch = wire.new_epoch()
        self._stop = threading.Event()
        # Forwarding sockets: created here, used only by the proxy thread from start() on.
        self._xsub = self.ctx.socket(zmq.XSUB)
        self._xsub.setsockopt(zmq.LINGER, 0)
        self._xsub.setsockopt(zmq.RCVHWM, 100_000)
        sockets.heartbeats(self._xsub)
        apply_client(self._xsub, config.upstream_curve)
        try:
            # Its feed socket (and guard) is used by the forwarding thread only, from run() on.
            self.server = FeedServer(self.ctx, config.feed, config.sync, self, config.sndhwm, config.curve)
        except OSError:
            self._xsub.close(0)
            raise
        self.feed_endpoint, self.sync_endpoint = self.server.feed_endpoint, self.server.sync_endpoint
        self.feed_guard, self.sync_stats = self.server.feed_guard, self.server.sync_stats
        self.forward_stats: dict[str, int] = {"messages": 0}
        self.client = Client(config.upstreams, context=self.ctx, curve=config.upstream_curve,
                             stale_after_s=config.stale_after_s)
        # The latest topo/state frames of every upstream node: what snapshots serve.
        self.cache = FrameCache()
        self.client.observe(self.cache)
        # The relay's own events (node_stale/node_back), as node ``name`` of epoch ``epoch``.
        self.stale: set[str] = set()  # nodes announced stale and withheld from snapshots
        self._event_topic = wire.build_topic("event", config.name)
        self._event_seq = 0
        self._events = self.ctx.socket(zmq.PUB)
        self._events.setsockopt(zmq.LINGER, 0)
        events_addr = f"inproc://cuagent-relay-events-{id(self):x}"
        self._events.bind(events_addr)
        self._xsub.connect(events_addr)
        # Take everything upstream regardless of who is subscribed below: a downstream
        # subscription then never has to travel to an agent before it takes effect, so a
        # client joining through the relay cannot miss messages sent while it propagated.
        self._xsub.send(b"\x01" + wire.PREFIX.encode())
        for endpoint in self.client.endpoints:
            self._xsub.connect(endpoint.feed)
        self._control_addr = f"inproc://cuagent-relay-control-{id(self):x}"
        self._control = self.ctx.socket(zmq.PAIR)
        self._control.bind(self._control_addr)
        self._proxy_thread: Optional[threading.Thread] = None

    def stop(self) -> None:
        self._stop.set()

    def _proxy(self) -> None:
        """Forward upstream messages down, whole and untouched; bound subscriptions; stop on
        any message on the control socket."""
        control = self.ctx.socket(zmq.PAIR)
        control.connect(self._control_addr)
        xsub, xpub, server = self._xsub, self.server.feed, self.server
        poller = zmq.Poller()
        for sock in (xsub, xpub, control):
            poller.register(sock, zmq.POLLIN)
        try:
            while True:
                ready = dict(poller.poll(1000))
                if ready.get(control):
                    return
                if ready.get(xsub):
                    self.forward_stats["messages"] += self._forward(xsub, xpub)
                server.serve_subscriptions(bool(ready.get(xpub)))
        except zmq.ContextTerminated:
            pass
        finally:
            control.close(0)

    @staticmethod
    def _forward(xsub: zmq.Socket[bytes], xpub: zmq.Socket[bytes]) -> int:
        """Pass up to FORWARD_BATCH whole messages down, frame by frame without copying
        (about half recv_multipart's cost: no getsockopt(RCVMORE) per frame). XSUB hands
        over only complete messages, and XPUB drops at a subscriber's HWM rather than block."""
        recv, send = xsub.recv, xpub.send
        for n in range(FORWARD_BATCH):
            try:
                frame = recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return n
            while frame.more:
                send(frame, zmq.SNDMORE, copy=False)
                frame = recv(copy=False)
            send(frame, 0, copy=False)
        return FORWARD_BATCH

    def run(self) -> None:
        log.info(
            "relay %s epoch %016x: feed %s, sync %s, upstreams %s",
            self.config.name, self.epoch, self.feed_endpoint, self.sync_endpoint,
            ", ".join(f"{e.feed} (sync {e.sync})" for e in self.client.endpoints),
        )
        self._proxy_thread = threading.Thread(target=self._proxy, name="cuagent-relay-proxy", daemon=True)
        self._proxy_thread.start()
        try:
            while not self._stop.is_set():
                poller = zmq.Poller()
                poller.register(self.server.sync, zmq.POLLIN)
                for sock in self.client.poll_sockets():
                    poller.register(sock, zmq.POLLIN)
                # At most 100 ms, to notice stop().
                try:
                    ready = dict(poller.poll(poll_timeout_ms(min(0.1, self.client.next_deadline()))))
                except zmq.ZMQError as e:
                    if e.errno != errno.EINTR:
                        raise
                    continue
                # Cache first: a snapshot answered right after sees what has arrived.
                self.client.process()
                self._track_staleness()
                if ready.get(self.server.sync):
                    self.server.serve_sync()
        finally:
            self._control.send(b"TERMINATE")
            self._proxy_thread.join(timeout=5)
            log.info("relay %s stopping: %s, forwarded %s, feed subscriptions %s", self.config.name,
                     self.client.stats, self.forward_stats, self.feed_guard.stats)

    def close(self) -> None:
        self.client.close()
        for sock in (self._xsub, self._control, self._events):
            sock.close(0)
        self.server.close()

    # ------------------------------------------------------------------ staleness
    def _track_staleness(self) -> None:
        """Announce each node that went stale in the client's view, and each heard again."""
        view = self.client.view.nodes
        for name, node in view.items():
            if node.stale and name not in self.stale:
                self.stale.add(name)
                silent = time.monotonic() - node.last_heard
                log.warning("node %s is stale (no heartbeat for %.1f s): withheld from snapshots", name, silent)
                self._announce("node_stale", name, f"no heartbeat from {name} for {silent:.1f} s")
        for name in sorted(self.stale):
            # A node gone from the view (restarted, being re-joined) is back once it is there again.
            again = view.get(name)
            if again is not None and not again.stale:
                self.stale.discard(name)
                log.info("node %s is heard again: served again", name)
                self._announce("node_back", name, f"{name} is heard again")

    def _announce(self, kind: str, node: str, detail: str) -> None:
        self._event_seq += 1
        header = wire.Header(self.config.name, self.epoch, self._event_seq, time.time_ns(), 1)
        body = wire.encode_event_body(kind, detail, node=node)
        try:
            self._events.send_multipart(wire.encode_frames(self._event_topic, header, body), zmq.NOBLOCK)
        except zmq.Again:
            pass  # PUB drops at its HWM; the seq shows the loss downstream

    # ------------------------------------------------------------------ sync (FeedServer's SyncSource)
    def ping(self) -> Ping:
        return Ping(self.config.name, self.epoch, 1,
                    {"relay": True, "nodes": sorted(self.client.view.nodes), "stale": sorted(self.stale)})

    def snapshot(self, prefix: str) -> SnapshotContent:
        # A stale node's topo and state are withheld (its seqs stay: they are what was sent).
        kept = {topic: frames for topic, frames in self.cache.frames.items()
                if topic.startswith(prefix) and wire.node_of(topic) not in self.stale}
        seqs = {topic: seq for topic, seq in self.client.seqs.items() if topic.startswith(prefix)}
        nodes = {n for n in map(wire.node_of, seqs) if n is not None}
        epochs = {n: self.client.epochs[n] for n in nodes if n in self.client.epochs}
        # One node served: its own epoch, as its agent would answer. Several: each header
        # carries its node's epoch, and "epochs" lists them; "epoch" is then the relay's.
        # (Served: with messages, or for a follower of hb/event topics, not withheld.)
        served = {n for n in map(wire.node_of, kept) if n is not None} or nodes - self.stale
        epoch = epochs.get(next(iter(served)), self.epoch) if len(served) == 1 else self.epoch
        if self._event_topic.startswith(prefix):
            if self._event_seq:
                seqs[self._event_topic] = self._event_seq
            # Listed even before its first event, so that a client applies that event.
            epochs[self.config.name] = self.epoch
        now = time.monotonic()
        silent = {n: round(now - self.client.view.nodes[n].last_heard, 3)
                  for n in nodes if n in self.client.view.nodes}
        return SnapshotContent(epoch, kept.values(), seqs,
                               {"epochs": epochs, "stale": sorted(self.stale & nodes), "silent_s": silent})
