"""cuagent relay (PROTOCOL.md §7): many agents in, one feed out, frames untouched.

Forwarding (XSUB→XPUB) runs on a thread of its own: frames are never decoded there, so seq
and epoch stay those of the origin node. Downstream subscriptions do not travel upstream (the
relay takes all of ``cua1/`` from every agent anyway): the forwarding thread reads them to
bound what each subscriber can make the relay hold (:mod:`cuagent.subscriptions`), which
libzmq's own proxy, forwarding them upstream, could not do.

The relay also follows every upstream as a client (snapshot join, gaps, restarts) keeping the
latest raw frames per topo/state topic, and answers ``snapshot``/``ping`` on its own sync
socket from that cache. Since it speaks the agent's protocol on both sides, relays stack.
"""

from __future__ import annotations

import errno
import logging
import threading
from dataclasses import dataclass
from typing import Optional, Sequence

import zmq

from . import protocol, sockets
from .client import Client, Endpoint
from .curve import Authenticator, ClientKeys, ServerKeys, apply_client
from .subscriptions import SubscriptionGuard

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

    def __post_init__(self) -> None:
        protocol.check_node(self.name, "--name")
        if not self.upstreams:
            raise ValueError("a relay needs at least one upstream (--connect)")


class Relay:
    def __init__(self, config: RelayConfig, context: Optional[zmq.Context] = None) -> None:
        self.config = config
        self.ctx = context or zmq.Context.instance()
        self.epoch = protocol.new_epoch()
        self._stop = threading.Event()
        self.sync_stats: dict[str, int] = {}
        self._auth = Authenticator(self.ctx, config.curve) if config.curve is not None else None
        # Forwarding sockets: created here, used only by the proxy thread from start() on.
        self._xsub = self.ctx.socket(zmq.XSUB)
        self._xsub.setsockopt(zmq.LINGER, 0)
        self._xsub.setsockopt(zmq.RCVHWM, 100_000)
        sockets.heartbeats(self._xsub)
        apply_client(self._xsub, config.upstream_curve)
        try:
            self._xpub = sockets.bind_feed(self.ctx, config.feed, config.sndhwm, curve=config.curve)
            try:
                self.sync = sockets.bind_sync(self.ctx, config.sync, config.sndhwm, curve=config.curve)
            except OSError:
                self._xpub.close(0)
                raise
        except OSError:
            self._xsub.close(0)
            if self._auth is not None:
                self._auth.stop()
            raise
        self.feed_endpoint = sockets.bound_endpoint(self._xpub)
        self.sync_endpoint = sockets.bound_endpoint(self.sync)
        # Used by the forwarding thread only, from start() on.
        self.feed_guard = SubscriptionGuard(self._xpub, self.feed_endpoint)
        self.forward_stats: dict[str, int] = {"messages": 0}
        self.client = Client(config.upstreams, keep_frames=True, context=self.ctx, curve=config.upstream_curve)
        # Take everything upstream regardless of who is subscribed below: a downstream
        # subscription then never has to travel to an agent before it takes effect, so a
        # client joining through the relay cannot miss messages sent while it propagated.
        self._xsub.send(b"\x01" + protocol.PREFIX.encode())
        for link in self.client.links:
            self._xsub.connect(link.endpoint.feed)
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
        xsub, xpub, guard = self._xsub, self._xpub, self.feed_guard
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
                if ready.get(xpub):
                    guard.drain()
                guard.tick()
        except zmq.ContextTerminated:
            pass
        finally:
            control.close(0)

    @staticmethod
    def _forward(xsub: zmq.Socket, xpub: zmq.Socket) -> int:
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
            ", ".join(f"{link.endpoint.feed} (sync {link.endpoint.sync})" for link in self.client.links),
        )
        self._proxy_thread = threading.Thread(target=self._proxy, name="cuagent-relay-proxy", daemon=True)
        self._proxy_thread.start()
        try:
            while not self._stop.is_set():
                poller = zmq.Poller()
                poller.register(self.sync, zmq.POLLIN)
                for sock in self.client.poll_sockets():
                    poller.register(sock, zmq.POLLIN)
                # At most 100 ms, to notice stop().
                try:
                    ready = dict(poller.poll(sockets.poll_timeout_ms(min(0.1, self.client.next_deadline()))))
                except zmq.ZMQError as e:
                    if e.errno != errno.EINTR:
                        raise
                    continue
                # Cache first: a snapshot answered right after sees what has arrived.
                self.client.process()
                if ready.get(self.sync):
                    sockets.serve_requests(self.sync, self._answer, self.sync_stats)
        finally:
            self._control.send(b"TERMINATE")
            self._proxy_thread.join(timeout=5)
            log.info("relay %s stopping: %s, forwarded %s, feed subscriptions %s", self.config.name,
                     self.client.stats, self.forward_stats, self.feed_guard.stats)

    def close(self) -> None:
        self.client.close()
        for sock in (self._xsub, self._xpub, self.sync, self._control):
            sock.close(0)
        if self._auth is not None:
            self._auth.stop()

    def _answer(self, req: sockets.Request) -> bytes:
        if req.op == "ping":
            return protocol.pack({
                "ok": True, "v": protocol.VERSION, "node": self.config.name, "epoch": self.epoch, "gen": 1,
                "relay": True, "nodes": sorted(self.client.view.nodes),
            })
        if req.op == "snapshot":
            prefix = sockets.parse_snapshot_prefix(req)
            msgs = [frames for topic, frames in self.client.frames.items() if topic.startswith(prefix)]
            seqs = {topic: seq for topic, seq in self.client.seqs.items() if topic.startswith(prefix)}
            nodes = {topic.split("/", 3)[2] for topic in seqs}
            epochs = {n: self.client.epochs[n] for n in nodes if n in self.client.epochs}
            # One node: its own epoch, as its agent would answer. Several: each header carries
            # its node's epoch, and "epochs" lists them; "epoch" is then the relay's.
            epoch = next(iter(epochs.values())) if len(epochs) == 1 else self.epoch
            return protocol.snapshot_reply(epoch, msgs, seqs, epochs=epochs)
        raise sockets.RequestError(f"unknown op {req.op[:64]!r} (known: ping, snapshot)")
