"""cuagent relay (PROTOCOL.md §7): many agents in, one feed out, frames untouched.

Forwarding (XSUB→XPUB) runs on a thread of its own, in native code (:class:`cuagent._core.
RelayForwarder`) on the very libzmq pyzmq loaded: whole messages, never copied, and never
decoded, so seq and epoch stay those of the origin node. On the way it reads each message's
topic and header into a :class:`cuagent._core.RelayTable`, which keeps per topo/state/sum topic
the latest frames (sharing libzmq's payload) and per topic the last seq carried, per node its
epoch and when its last hb arrived. Snapshots are assembled from that table: raw frames,
bodies never decoded. Where that libzmq cannot be found (pyzmq built with a static one), or
with ``--forwarder python``, the same loop runs in Python (about 10 µs per message) and feeds
the same table.

Downstream subscriptions do not travel upstream (the relay takes all of ``cua1/`` from every
agent anyway): the forwarding thread returns to Python whenever the XPUB holds some, to bound
what each subscriber can make the relay hold (:mod:`cuagent.node.subscriptions`), which
libzmq's own proxy, forwarding them upstream, could not do.

A ``sum`` message (one node's summary per window) is forwarded only when its header's ts is
at least ``summary_interval_s`` past the node's last forwarded one (0: all); a gap in their
seqs needs no resync, and the table's seq is that of the last forwarded.

With ``kinds`` (``--kinds topo,hb,sum,event``: a summaries tier) the relay subscribes upstream
to those kinds only and joins only their prefixes: the rest never reaches it, so it is not
in its table, feed or snapshots either.

The relay joins its upstreams (:mod:`cuagent.node.relay_joins`) for what it did not see pass,
and answers ``snapshot``/``ping`` on its own sync socket. Since it speaks the agent's protocol
on both sides, relays stack.

A node the relay has not heard for the stale interval is withheld from its snapshots (its
cached frames would pass for current) and announced on the relay's own feed with a
``node_stale`` event, under the relay's name; ``node_back`` when it is heard again. One not
heard at all for the forget interval (``--forget-after-s``) leaves the table, its frames and
epoch with it (``node_gone``): a node heard after that is a new one, joined again. The events
enter the forwarder through an inproc PUB that the XSUB also follows, so the forwarding thread
stays the only user of the forwarding sockets.
"""

from __future__ import annotations

import errno
import importlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Optional, Sequence

import zmq

from .. import _core, ipv6, wire
from ..client import STALE_AFTER_S, Endpoint
from ..curve import ClientKeys, ServerKeys, apply_client
from ..feed.endpoint import as_endpoint
from . import sockets
from .relay_joins import UpstreamJoins
from .server import FeedServer, Ping, SnapshotContent

log = logging.getLogger("cuagent.relay")

# Messages the Python loop forwards per pass before subscriptions and the control socket get a look.
FORWARD_BATCH = 256
# The longest the native forwarder runs before Python's subscription guard gets its timers.
HOUSEKEEPING_MS = 50
# The longest the sync thread waits before it checks staleness and joins.
SYNC_POLL_S = 0.1
# How often staleness and forgetting are checked (a pass over every node under the table's
# lock, which the forwarding thread waits for): a small part of the stale interval.
STALENESS_EVERY_S = 0.25
# A node not heard at all for this long leaves the table (its memory with it): 100 times the
# stale interval, long enough for a reboot or a network partition to heal without a node_gone.
FORGET_AFTER_S = 300.0
FORWARDERS = ("native", "python")


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
    # Seconds without hearing anything of a node (no message, no hb per an upstream's
    # silent_s) before it is dropped from the table and announced gone (§7). None: 300 s, or
    # twice stale_after_s where that is longer (a long stale interval keeps working alone).
    forget_after_s: Optional[float] = None
    # Forward a node's sum message only this many seconds (of its header ts) after the last.
    summary_interval_s: float = 0.0
    # "native": the C++ forwarder (falls back to "python" where libzmq cannot be found).
    forwarder: str = "native"
    # The kinds it carries (§7): upstream it subscribes to, and joins, only these (default all).
    kinds: Sequence[str] = wire.KINDS

    def __post_init__(self) -> None:
        wire.check_node(self.name, "--name")
        if not self.upstreams:
            raise ValueError("a relay needs at least one upstream (--connect)")
        if not 0 < self.stale_after_s < 1e6:
            raise ValueError(f"--stale-after-s must be > 0 and < 1e6 s, got {self.stale_after_s}")
        if self.forget_after_s is not None and not self.stale_after_s < self.forget_after_s < 1e6:
            raise ValueError(f"--forget-after-s must be > --stale-after-s ({self.stale_after_s:g} s) and < 1e6 s, "
                             f"got {self.forget_after_s}")
        if not 0 <= self.summary_interval_s <= 86400:
            raise ValueError(f"--summary-interval-s must be from 0 to 86400 s, got {self.summary_interval_s}")
        if self.forwarder not in FORWARDERS:
            raise ValueError(f"--forwarder must be one of {', '.join(FORWARDERS)}, got {self.forwarder!r}")
        self.kinds = carried_kinds(self.kinds)

    @property
    def forget_interval_s(self) -> float:
        if self.forget_after_s is not None:
            return self.forget_after_s
        return max(FORGET_AFTER_S, 2 * self.stale_after_s)


# Whatever else a relay carries, it needs hb (staleness, topo seqs) and topo (joins, serving).
REQUIRED_KINDS = ("topo", "hb")


def carried_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    """``--kinds`` checked: kinds of the protocol, topo and hb among them; in the protocol's order."""
    shown = ",".join(kinds)
    unknown = [k for k in kinds if k not in wire.KINDS]
    if unknown or not kinds:
        raise ValueError(f"--kinds {shown!r}: {', '.join(map(repr, unknown)) or 'empty'} is not a kind: "
                         f"expected a comma-separated list of {','.join(wire.KINDS)} with topo and hb")
    missing = [k for k in REQUIRED_KINDS if k not in kinds]
    if missing:
        raise ValueError(f"--kinds {shown!r} lacks {','.join(missing)}: a relay needs topo and hb (hb for "
                         f"staleness, topo for joins), e.g. --kinds topo,hb,sum,event")
    return tuple(k for k in wire.KINDS if k in kinds)


def pyzmq_backend_file() -> str:
    """The file of pyzmq's compiled backend: the libzmq its sockets live in is the one it
    links. Empty when there is none (a CFFI backend): the forwarder then looks for libzmq by name."""
    for name in ("zmq.backend.cython._zmq", "zmq.backend.cython.socket"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        path = getattr(module, "__file__", None)
        if isinstance(path, str):
            return path
    return ""


class Relay:
    def __init__(self, config: RelayConfig, context: Optional[zmq.Context[zmq.Socket[bytes]]] = None) -> None:
        self.config = config
        self.ctx = context or zmq.Context.instance()
        self.epoch = wire.new_epoch()
        self._stop = threading.Event()
        # Why forwarding stopped on its own (a libzmq error), logged there; None otherwise.
        self.failure: Optional[str] = None
        # Forwarding sockets: created here, used only by the forwarding thread from run() on.
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
        self.table = _core.RelayTable(round(config.summary_interval_s * 1e9), config.name)
        endpoints = [as_endpoint(e) for e in config.upstreams]
        self.joins = UpstreamJoins(self.ctx, endpoints, self.table, config.name, config.upstream_curve,
                                   kinds=config.kinds)
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
        if set(config.kinds) == set(wire.KINDS):
            self._xsub.send(b"\x01" + wire.PREFIX.encode())
        else:
            # Only the kinds it carries (--kinds), filtered upstream, where libzmq filters by
            # prefix: what it does not carry never reaches it. Its own events always pass.
            for kind in config.kinds:
                self._xsub.send(b"\x01" + wire.kind_prefix(kind).encode())
            if "event" not in config.kinds:
                self._xsub.send(b"\x01" + self._event_topic.encode())
        for endpoint in endpoints:
            # ZMQ_IPV6 per upstream: on for an IPv6 literal, off again for the next (ipv6.py).
            ipv6.enable_for(self._xsub, endpoint.feed)
            self._xsub.connect(endpoint.feed)
        control_addr = f"inproc://cuagent-relay-control-{id(self):x}"
        self._control = self.ctx.socket(zmq.PAIR)
        self._control.bind(control_addr)
        # Its peer belongs to the forwarding thread (the native loop polls it).
        self._control_peer = self.ctx.socket(zmq.PAIR)
        self._control_peer.setsockopt(zmq.LINGER, 0)
        self._control_peer.connect(control_addr)
        self._forwarder = self._native_forwarder() if config.forwarder == "native" else None
        self.forwarding = "native" if self._forwarder is not None else "python"
        self._python_forwarded = 0
        self._proxy_thread: Optional[threading.Thread] = None

    def _native_forwarder(self) -> Optional[_core.RelayForwarder]:
        anchor = pyzmq_backend_file()
        try:
            path, version = _core.find_libzmq(anchor)
            if tuple(version) != zmq.zmq_version_info():
                raise RuntimeError(f"{path} is libzmq {version}, pyzmq reports {zmq.zmq_version_info()}")
            return _core.RelayForwarder(self.table, self._xsub.underlying, self.server.feed.underlying,
                                        self._control_peer.underlying, anchor)
        except RuntimeError as e:
            log.warning("relay: forwarding in Python (about 10 µs per message): no native forwarder, "
                        "pyzmq's libzmq is not usable: %s", e)
            return None

    @property
    def forward_stats(self) -> dict[str, int]:
        if self._forwarder is not None:
            stats = self._forwarder.stats()
            return {"forwarded": stats["forwarded"], "dropped": stats["dropped"], "send_failed": stats["send_failed"]}
        return {"forwarded": self._python_forwarded}

    def stop(self) -> None:
        self._stop.set()

    # ------------------------------------------------------------------ forwarding thread
    def _proxy(self) -> None:
        """Forward upstream messages down, whole and untouched; bound subscriptions; stop on
        any message on the control socket."""
        try:
            if self._forwarder is not None:
                self._forward_native(self._forwarder)
            else:
                self._forward_python()
        except zmq.ContextTerminated:
            pass
        except Exception as e:  # a libzmq error: nothing forwards any more, so the relay stops
            log.error("relay: forwarding failed, stopping: %s", e)
            self.failure = str(e)
            self._stop.set()

    def _forward_native(self, forwarder: _core.RelayForwarder) -> None:
        done = forwarder.WAKE_CONTROL | forwarder.WAKE_TERMINATED
        server = self.server
        while True:
            wake = forwarder.run(HOUSEKEEPING_MS)
            if wake & done:
                return
            server.serve_subscriptions(bool(wake & forwarder.WAKE_SUBSCRIPTIONS))

    def _forward_python(self) -> None:
        xsub, xpub, server = self._xsub, self.server.feed, self.server
        poller = zmq.Poller()
        for sock in (xsub, xpub, self._control_peer):
            poller.register(sock, zmq.POLLIN)
        while True:
            ready = dict(poller.poll(HOUSEKEEPING_MS))
            if ready.get(self._control_peer):
                return
            if ready.get(xsub):
                self._python_forwarded += self._forward_batch(xsub, xpub)
            server.serve_subscriptions(bool(ready.get(xpub)))

    def _forward_batch(self, xsub: zmq.Socket[bytes], xpub: zmq.Socket[bytes]) -> int:
        """Pass up to FORWARD_BATCH whole messages down, without copying (frame by frame: no
        getsockopt(RCVMORE) per frame), each read into the table first. XSUB hands over only
        complete messages, and XPUB drops at a subscriber's HWM rather than block."""
        recv, send, ingest = xsub.recv, xpub.send, self.table.ingest
        sent = 0
        for _ in range(FORWARD_BATCH):
            try:
                frame = recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            frames = [frame]
            while frame.more:
                frame = recv(copy=False)
                frames.append(frame)
            if ingest(frames):
                for f in frames[:-1]:
                    send(f, zmq.SNDMORE, copy=False)
                send(frames[-1], 0, copy=False)
                sent += 1
        return sent

    # ------------------------------------------------------------------ sync thread
    def run(self) -> None:
        log.info(
            "relay %s epoch %016x: %s, upstreams %s; forwarding %s%s",
            self.config.name, self.epoch, self.server.listening,
            ", ".join(f"{u.endpoint.feed} (sync {u.endpoint.sync})" for u in self.joins.upstreams),
            self.forwarding,
            f", one summary per node per {self.config.summary_interval_s:g} s" if self.config.summary_interval_s else "",
        )
        self._proxy_thread = threading.Thread(target=self._proxy, name="cuagent-relay-forward", daemon=True)
        self._proxy_thread.start()
        next_staleness = 0.0
        try:
            while not self._stop.is_set():
                poller = zmq.Poller()
                poller.register(self.server.sync, zmq.POLLIN)
                for sock in self.joins.poll_sockets():
                    poller.register(sock, zmq.POLLIN)
                try:
                    ready = dict(poller.poll(round(SYNC_POLL_S * 1000)))
                except zmq.ZMQError as e:
                    if e.errno != errno.EINTR:
                        raise
                    continue
                # Joins first: a snapshot answered right after sees what they brought.
                now = time.monotonic()
                self.joins.process(now)
                if now >= next_staleness:
                    next_staleness = now + STALENESS_EVERY_S
                    self._track_staleness()
                if ready.get(self.server.sync):
                    self.server.serve_sync()
        finally:
            self._control.send(b"TERMINATE")
            self._proxy_thread.join(timeout=5)
            log.info("relay %s stopping: table %s, forwarded %s, joins %s, feed subscriptions %s", self.config.name,
                     self.table.stats(), self.forward_stats, self.joins.stats, self.feed_guard.stats)

    def close(self) -> None:
        self.joins.close()
        for sock in (self._xsub, self._control, self._control_peer, self._events):
            sock.close(0)
        self.server.close()

    # ------------------------------------------------------------------ staleness
    def _track_staleness(self) -> None:
        """Announce each node that went stale in the table, each heard again, and each
        forgotten."""
        for node, stale, silent in self.table.check_stale(self.config.stale_after_s):
            if stale:
                self.stale.add(node)
                log.warning("node %s is stale (no heartbeat for %.1f s): withheld from snapshots", node, silent)
                self._announce("node_stale", node, f"no heartbeat from {node} for {silent:.1f} s")
            elif node in self.stale:
                self.stale.discard(node)
                log.info("node %s is heard again: served again", node)
                self._announce("node_back", node, f"{node} is heard again")
        for node, silent in self.table.forget_silent(self.config.forget_interval_s):
            self.stale.discard(node)
            self.joins.forget(node)
            log.warning("node %s is gone (nothing heard for %.1f s): forgotten", node, silent)
            self._announce("node_gone", node, f"nothing heard from {node} for {silent:.1f} s")

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
        nodes = [name for name, _stale in self.table.nodes()]
        return Ping(self.config.name, self.epoch, 1, {"relay": True, "nodes": nodes, "stale": sorted(self.stale),
                                                      "kinds": list(self.config.kinds),
                                                      "forget_after_s": self.config.forget_interval_s})

    def snapshot(self, prefix: str) -> SnapshotContent:
        # From the table at one moment: a stale node's topo and state are withheld (its seqs
        # stay: they are what was sent), and so is a state its node's topo does not serve.
        messages, seqs, epochs, silent, stale, refused = self.table.snapshot(prefix)
        if refused:
            self.sync_stats["refused_bodies"] = self.sync_stats.get("refused_bodies", 0) + refused
            log.warning("snapshot: %d frame(s) withheld: their bodies are not well-formed msgpack", refused)
        own = self.config.name
        # One node served: its own epoch, as its agent would answer. Several: each header
        # carries its node's epoch, and "epochs" lists them; "epoch" is then the relay's.
        # (Served: with messages, or for a follower of hb/event topics, not withheld.)
        served = {n for n in (wire.node_of(m[0].decode()) for m in messages) if n is not None}
        served = served or {n for n in epochs if n != own} - set(stale)
        epoch = epochs.get(next(iter(served)), self.epoch) if len(served) == 1 else self.epoch
        if self._event_topic.startswith(prefix):
            # Listed even before its first event, so that a client applies that event.
            epochs[own] = self.epoch
        extra = {"epochs": epochs, "stale": sorted(stale), "silent_s": {n: round(s, 3) for n, s in silent.items()},
                 # A client drops a node silent this long by its own clock too: the node_gone
                 # that says so may never reach it (this relay restarted and never heard the
                 # node, or the event was lost in a gap).
                 "forget_after_s": self.config.forget_interval_s}
        if set(self.config.kinds) != set(wire.KINDS):
            extra["kinds"] = list(self.config.kinds)  # its clients count no loss of the others (§3.3)
        return SnapshotContent(epoch, messages, seqs, extra)
