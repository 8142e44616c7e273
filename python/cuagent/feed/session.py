"""Following one upstream (an agent or a relay), PROTOCOL.md §4: join with the clone pattern
(subscribe, queue, snapshot, replay), gaps, restarts and resynchronisation.

A :class:`Session` owns one upstream's SUB and sync DEALER. What every session of a client
shares (which seqs and epochs have been applied, the view, the updates, the observers) is one
:class:`~cuagent.feed.feed_state.FeedState`: a node heard through two upstreams is still
applied once.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any, Optional, Sequence

import zmq

from .. import ipv6, wire
from ..curve import ClientKeys, apply_client
from ..wire import ProtocolError, Topic
from .endpoint import Endpoint
from .feed_state import RETIRED_EPOCHS, FeedState
from .lazy import LazyState
from .outage import Outage
from .queued import HeldMessages
from .received import NOT_UNPACKED, Received
from .requests import RequestQueue
from .snapshot_faults import SnapshotFaults, retry_wait
from .snapshot_replies import epochs_disagree, merged_replies
from .updates import Update
from .view import DeviceView, NodeView

log = logging.getLogger("cuagent.client")

JOIN_WAIT_S = 1.2  # longest wait for a first feed message before the first snapshot (hb: 1 s)
MAX_BUFFERED = 100_000  # feed messages queued per upstream while (re)joining
# A source that knows nothing yet of a node whose messages it forwards (a relay still joining
# a node that came back) is asked again after RESYNC_RETRY_S (snapshot_faults.py), doubling,
# RESYNC_TRIES times in all (waits of 0.05 .. 3.2 s, 6.35 s in all): then the node's queued
# messages are dropped, and its next one starts over. Asked at once each time, a client would
# send a request per round trip (and a relay scans its whole table for each).
RESYNC_TRIES = 8
_SUM_PREFIX = wire.kind_prefix("sum")
_ASKED = float("inf")
_peek_topic = wire.topics.peek_topic
_usual_summary_records = wire.summary.usual_summary_records
_usual_header = wire.header.usual_header
_new_update = tuple.__new__  # Update(...) without its Python-level __new__: for the hottest paths


class Session:
    """One upstream: its SUB and its sync DEALER, and where its join stands."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], endpoint: Endpoint, state: FeedState, rcvhwm: int,
                 curve: Optional[ClientKeys] = None) -> None:
        self.ctx = ctx
        self.curve = curve
        self.endpoint = endpoint
        self.state = state
        self.sub = ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.RCVHWM, rcvhwm)
        apply_client(self.sub, curve)
        for prefix in state.prefixes:
            self.sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        ipv6.enable_for(self.sub, endpoint.feed)
        self.sub.connect(endpoint.feed)
        self.dealer: Optional[zmq.Socket[bytes]] = None
        self.joining = True  # until the first full snapshot is applied
        # The first snapshot waits until the feed has delivered something (proof that our
        # subscription reached the publisher; a snapshot taken before that could miss the
        # messages sent in between), or JOIN_WAIT_S at most for a quiet prefix.
        self.feed_seen = False
        self.created = time.monotonic()
        self.resyncing: set[str] = set()  # nodes whose messages wait for a snapshot
        # Nodes whose snapshot reply knew nothing of them: node -> (such replies, when to ask
        # again; inf: asked). Their messages stay queued meanwhile.
        self.unknown: dict[str, tuple[int, float]] = {}
        # Snapshot requests unanswered and replies refused: waits and their log lines.
        self.faults = SnapshotFaults(log, endpoint.sync, curve, state.snapshot_timeout_s)
        self.unknown_outages: dict[str, Outage] = {}  # node -> its source knowing nothing of it
        # The kinds this source carries, from its snapshot replies (None: all, §3.3).
        self.carried: Optional[frozenset[str]] = None
        self.pending = RequestQueue((p, None) for p in state.prefixes)
        # The replies so far of the join (None) or of a node's resync, and when the first of
        # their requests was sent: applied together once the last is in (merged_replies).
        self.collected: dict[Optional[str], tuple[list[wire.Snapshot], float]] = {}
        self.inflight: Optional[tuple[str, Optional[str], float]] = None
        self.buffer: HeldMessages[Received] = HeldMessages(MAX_BUFFERED)
        self._new_dealer()
        self._send_next_request()

    def _new_dealer(self) -> None:
        if self.dealer is not None:
            self.dealer.close(0)
        self.dealer = self.faults.dealer(self.ctx, self.curve)

    def close(self) -> None:
        self.sub.close(0)
        if self.dealer is not None:
            self.dealer.close(0)
        self.faults.close()

    # ------------------------------------------------------------------ driving
    def poll_sockets(self) -> list[zmq.Socket[bytes]]:
        socks = [self.sub]
        if self.inflight is not None and self.dealer is not None:
            socks.append(self.dealer)
        return socks

    def deadlines(self, now: float) -> list[float]:
        """Seconds until this session's snapshot times out, its first one is due, or a node
        its source knew nothing of is asked for again."""
        out = [at - now for _, at in self.unknown.values() if at != _ASKED]
        if self.inflight:
            out.append(self.inflight[2] + self.faults.reply_wait() - now)
        elif self.joining:
            out.append(self.created + JOIN_WAIT_S - now)
        if self.pending and self.faults.hold_until > now:
            out.append(self.faults.hold_until - now)
        return out

    def process(self) -> None:
        """Handle everything already received (never blocks)."""
        self._drain_sync()
        for _ in range(10_000):  # bounded so that sync replies and timers get their turn
            try:
                frames = self.sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            self.state.stats.messages += 1
            self.receive(frames)
        self._drain_sync()

    def check_timers(self, now: float) -> None:
        for unknown, (tries, at) in self.unknown.items():
            if at <= now:
                self.unknown[unknown] = (tries, _ASKED)
                self.pending.extend((prefix, unknown) for prefix in self.state.node_prefixes(unknown))
        if self.inflight is None and self.pending:
            self._send_next_request()
        if self.inflight is not None and now - self.inflight[2] > self.faults.reply_wait():
            self.state.stats.snapshot_timeouts += 1
            self.faults.timed_out(now)
            prefix, node, _ = self.inflight
            self.inflight = None
            self.pending.appendleft((prefix, node))
            self._new_dealer()
            self._send_next_request()

    def join_from(self, snap: wire.Snapshot) -> None:
        """Join from ``snap`` as if it answered the first snapshot request, with no request
        sent: for feeding a session by hand (bench/feed_ingest.py measures ingest so)."""
        self.pending.clear()
        self.inflight = None
        self.feed_seen = True
        self._apply_snapshot(snap, None, None)
        self._finish_join()

    # ------------------------------------------------------------------ feed messages
    # False: every summary takes the general path (a test compares the two on random feeds).
    sum_fast_path = True

    def receive(self, frames: list[bytes]) -> None:
        """Handle one feed message (what :meth:`process` does with each it reads)."""
        # A topic seen before is parsed already: the usual summary takes its own path, and
        # the general path starts from the parse.
        parsed = _peek_topic(frames[0]) if len(frames) == 3 else None
        if parsed is not None and parsed[0].kind == "sum" and self.sum_fast_path \
                and self._receive_sum(parsed, frames):
            return
        try:
            msg = self._received(frames, parsed)
        except wire.UnknownKind:
            self.state.stats.unknown_kinds += 1  # a newer agent's kind: ignored (§8)
            return
        except ProtocolError as e:
            self.state.stats.decode_errors += 1
            log.debug("undecodable feed message: %s", e)
            return
        topic = msg.topic
        if not self.feed_seen:
            self.feed_seen = True
            self._send_next_request()
        if self.joining or topic.node in self.resyncing:
            self.buffer.append(topic.node, msg)  # the oldest dropped beyond MAX_BUFFERED
            if topic.kind == "event":
                # A relay's node_gone, queued: taken now, for the snapshot whose seqs may then
                # cover it (dropped on replay) may hold the forgotten node (§7).
                try:
                    self._forget_if_gone(node=topic.node, ev=wire.decode_event_body(msg.body))
                except ProtocolError:
                    pass  # counted when replayed
            return
        self._ingest(msg)

    def _forget_if_gone(self, node: str, ev: wire.Event) -> None:
        gone = ev.extra.get("node")
        if ev.type == "node_gone" and isinstance(gone, str) and gone != node:
            self.state.forget_node(gone)  # its relay forgot it: so does the view

    def _receive_sum(self, parsed: tuple[Topic, str], frames: list[bytes]) -> bool:
        """The general path (:meth:`_received`, :meth:`_ingest`, :meth:`_apply`) for the usual
        summary, spelled out: a node's summary in its current epoch, with the usual body
        (:func:`~cuagent.wire.summary.usual_summary_records`), while joined. There are
        thousands a second (one per node per window, all the same few steps), and a summary
        replaces every earlier one of its node, so it needs the seq counter only: no gap
        accounting, no queueing. False (having changed nothing): not such a summary, the
        general path takes it (and names what is wrong with it, if anything)."""
        topic, topic_str = parsed
        node = topic.node
        if self.joining or not self.feed_seen or node in self.resyncing:
            return False
        feed = self.state
        try:
            header = _usual_header(wire.unpack(frames[1], "header"), node)
        except ProtocolError:
            return False
        # An unusual header (the general path checks it), a new node (no epoch held) or a
        # restart (the general path joins or resyncs the node).
        if header is None or header.epoch != feed.epochs.get(node):
            return False
        raw = _usual_summary_records(frames[2])
        if raw is None:
            return False
        stats = feed.stats
        seq = header.seq
        last = feed.seqs.get(topic_str, 0)
        if seq <= last:
            stats.duplicates += 1
            return True
        if seq > last + 1:
            stats.summaries_skipped += seq - last - 1  # no loss (§3.5)
        if not last:
            feed.node_topics.setdefault(node, set()).add(topic_str)
        feed.seqs[topic_str] = seq
        try:
            summary = feed.view.summaries.apply_records(node, header, raw)
            if feed.observers:  # the body is unpacked only if an observer reads it
                feed.applied(Received(topic, topic_str, header, NOT_UNPACKED, frames), summary)
        except ProtocolError as e:
            stats.decode_errors += 1
            log.debug("bad %s body from %s: %s", "sum", node, e)
            return True
        feed.updates.append(_new_update(Update, ("sum", node, None, header, summary)))
        stats.applied += 1
        return True

    def _received(self, frames: Sequence[bytes], parsed: Optional[tuple[Topic, str]] = None) -> Received:
        """Topic and header checked; the body unpacked, except a state's in a lazy client
        (left packed until read: most of a message's cost, and most are never read).
        ``parsed``: the topic frame's parse, when :meth:`receive` has it."""
        topic, topic_str, header = wire.decode_head(frames, parsed)
        if topic.kind == "state" and self.state.lazy:
            return Received(topic, topic_str, header, NOT_UNPACKED, frames)
        return Received(topic, topic_str, header, wire.unpack(frames[2], "body"), frames)

    def _ingest(self, msg: Received) -> None:
        node, header = msg.topic.node, msg.header
        epoch = self.state.epochs.get(node)
        if epoch is None:
            # A node we have no snapshot of (it appeared after we joined): join it.
            self._resync(node, msg, reason="new node")
            return
        if header.epoch != epoch and header.epoch in self.state.retired.get(node, ()):
            self.state.stats.old_epoch += 1
            return
        if header.epoch != epoch:
            self.state.stats.restarts += 1
            log.warning("node %s restarted (epoch %016x -> %016x): resynchronising", node, epoch, header.epoch)
            self.state.discard_node(node)
            self.state.emit("restart", node, None, header, None)
            self._resync(node, msg, reason="restart")
            return
        last = self.state.seqs.get(msg.topic_str, 0)
        if header.seq <= last:
            self.state.stats.duplicates += 1
            return
        if header.seq > last + 1 and msg.topic.kind == "sum":
            # Each summary replaces every earlier one of its node, and a relay may forward
            # only some (§3.5): the ones skipped are no loss.
            self.state.stats.summaries_skipped += header.seq - last - 1
        elif header.seq > last + 1:
            self.state.stats.gaps += header.seq - last - 1
            self.state.stats.gap_events += 1
            if msg.topic.kind == "topo":
                # A lost topo may mean a topology we do not know: only a snapshot can tell.
                self._resync(node, msg, reason="topo gap")
                return
        if not last:
            self.state.node_topics.setdefault(node, set()).add(msg.topic_str)
        self.state.seqs[msg.topic_str] = header.seq
        self._apply(msg)

    def _apply(self, msg: Received) -> None:
        kind, node = msg.topic.kind, msg.topic.node
        nv = self.state.view.nodes.get(node)
        try:
            if kind == "topo":
                self._apply_topo(msg)
            elif kind == "state":
                if not self._apply_state(msg, nv):
                    return
            elif kind == "hb":
                hb = wire.decode_hb_body(msg.body)
                if nv is not None:
                    nv.heartbeat, nv.last_heard = hb, time.monotonic()
                    # Live (no snapshot holds a heartbeat, §4): the node's clock for its windows' age.
                    nv.clock.heard(msg.header.ts, nv.last_heard)
                    self.state.gone_pending.discard(node)  # alive on some path
                    if nv.stale:
                        nv.stale = False
                        log.info("node %s is heard again", node)
                self.state.applied(msg, hb)
                self.state.emit("hb", node, None, msg.header, hb)
                self._check_hb_seqs(node, msg.topic_str, hb)
            elif kind == "sum":
                summary = self.state.view.summaries.apply(node, msg.header, msg.body)
                self.state.applied(msg, summary)
                self.state.emit("sum", node, None, msg.header, summary)
            else:
                ev = wire.decode_event_body(msg.body)
                self._forget_if_gone(node, ev)
                self.state.applied(msg, ev)
                self.state.emit("event", node, msg.topic.device, msg.header, ev)
            self.state.stats.applied += 1
        except ProtocolError as e:
            self.state.stats.decode_errors += 1
            log.debug("bad %s body from %s: %s", kind, node, e)

    def _apply_state(self, msg: Received, nv: Optional[NodeView]) -> bool:
        """Apply one state message (False: not applied). A lazy client keeps its body as it
        came, for the view to decode when read; an eager one decodes it here (and raises
        ProtocolError, for :meth:`_apply` to count, when it is malformed)."""
        device, node = msg.topic.device, msg.topic.node
        dv = nv.devices.get(device) if nv is not None and device is not None else None
        if dv is None:
            # A state for a device the topo we hold does not list: we missed a topo.
            self._resync(node, None, reason=f"state for unknown device {device}")
            return False
        if dv.status != wire.DEVICE_OK:
            return False  # lost: the agent says no state of it is current (§3.1 status)
        header, feed = msg.header, self.state
        if nv is not None and header.gen != nv.gen:
            # Another gen than the topo held (§4): an older one's window has the old shape
            # (a relay may still hold one); a newer one means we missed its topo.
            if header.gen > nv.gen:
                self._resync(node, None, reason=f"state of gen {header.gen}, topo of gen {nv.gen}")
            return False
        body: Any
        if feed.lazy:
            body = LazyState(msg.frames[2], dv.topology, header, feed.report_bad_state)
            dv.receive(body)
        else:
            body = dv.state = wire.decode_state_body(msg.body, dv.topology)
            dv.ts, dv.seq = header.ts, header.seq
        # FeedState.applied and .emit, spelled out: this is every state message's path.
        if feed.observers:
            feed.applied(msg, body)
        feed.updates.append(Update("state", node, device, header, body))
        return True

    def _apply_topo(self, msg: Received) -> None:
        topo = wire.decode_topo_body(msg.body)
        node = msg.topic.node
        nv = self.state.view.nodes.get(node)
        if nv is None:
            nv = self.state.view.nodes[node] = NodeView(node, msg.header.epoch)
        old = nv.devices
        nv.devices = {}
        for dev in topo.devices:
            dv = DeviceView(node, dev, status=topo.device_status(dev.id),
                            profiling_paused=topo.profiling_paused.get(dev.id), clock=nv.clock)
            prev = old.get(dev.id)
            # Keep the latest window across a topo re-publish when the shape is unchanged (a
            # lost device's last window is no longer current: it keeps none).
            if not dv.lost and prev is not None and prev.topology.counts == dev.counts and prev.topology.counters == dev.counters:
                dv.keep_window_of(prev)
            nv.devices[dev.id] = dv
        nv.agent, nv.gen, nv.epoch = topo.agent, msg.header.gen, msg.header.epoch
        self.state.applied(msg, topo)
        self.state.emit("topo", node, None, msg.header, topo)

    def _check_hb_seqs(self, node: str, hb_topic: str, hb: wire.Heartbeat) -> None:
        """A heartbeat lists the last seq of every topic: anything we lack there was lost
        (a quiet topic, such as a topo every 10 s, shows its losses no other way)."""
        for topic, seq in hb.seqs.items():
            if topic == hb_topic or not isinstance(topic, str) or not self.state.subscribed(topic) \
                    or topic.startswith(_SUM_PREFIX):  # summaries not received are no loss (§3.5)
                continue
            # A heartbeat speaks for its own node only (§3.3): a topic of another node, or a
            # key that is no topic, must never move seqs (another node's messages would then
            # be dropped as already seen, and a relay would serve the bogus seq onwards).
            try:
                parsed = wire.parse_topic(topic)
            except ProtocolError:
                continue
            if parsed.node != node:
                continue
            last = self.state.seqs.get(topic)
            if last is None:
                # A relay that carries some kinds only (§7) forwards the hb as sent, listing
                # them all: a topic of another kind is none of ours to have lost.
                if self.carried is not None and parsed.kind not in self.carried:
                    continue
                last = 0
                self.state.node_topics.setdefault(node, set()).add(topic)
            if seq > last:
                self.state.stats.gaps += seq - last
                self.state.stats.gap_events += 1
                if topic.startswith(wire.kind_prefix("topo")):
                    self._resync(node, None, reason="topo lost (heartbeat)")
                    return
                self.state.seqs[topic] = seq

    # ------------------------------------------------------------------ snapshots
    def _resync(self, node: str, msg: Optional[Received], reason: str) -> None:
        if msg is not None:
            self.buffer.append(node, msg)
        if node in self.resyncing:
            return
        if reason not in ("new node",):
            self.state.stats.resyncs += 1
        # A node its source keeps knowing nothing of comes round again with each message
        # after its queue was dropped: said once (_source_knows_nothing_of), not per round.
        level = logging.DEBUG if node in self.unknown_outages else logging.INFO
        log.log(level, "resync %s via %s: %s", node, self.endpoint.sync, reason)
        self.resyncing.add(node)
        for prefix in self.state.node_prefixes(node):
            self.pending.append((prefix, node))
        self._send_next_request()

    def _send_next_request(self) -> None:
        if self.inflight is not None or not self.pending or time.monotonic() < self.faults.hold_until:
            return
        if self.joining and not self.feed_seen and time.monotonic() - self.created < JOIN_WAIT_S:
            return  # _check_timers / _receive send it
        prefix, node = self.pending.popleft()
        assert self.dealer is not None
        try:
            self.dealer.send(wire.snapshot_request(prefix), zmq.NOBLOCK)
        except zmq.Again:
            pass  # not connected yet: the timeout retries
        self.inflight = (prefix, node, time.monotonic())

    def _drain_sync(self) -> None:
        while self.inflight is not None and self.dealer is not None:
            try:
                data = self.dealer.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            prefix, node, sent = self.inflight
            self.inflight = None
            now = time.monotonic()
            self.faults.replied(now)
            try:
                snap = wire.decode_snapshot_reply(data)
            except ProtocolError as e:
                self.state.stats.decode_errors += 1
                self.faults.refused_reply(now, str(e))
                self.pending.appendleft((prefix, node))
                continue
            self.faults.accepted(now)
            replies, first_sent = self.collected.setdefault(node, ([], sent))
            replies.append(snap)
            if self.pending.waiting_for(node):
                self._send_next_request()
                continue  # more of this join's or node's replies to come
            del self.collected[node]
            if len(replies) > 1 and epochs_disagree(replies, node):
                log.info("a node restarted while %s answered the %s's snapshot requests: asking again",
                         self.endpoint.sync, "join" if node is None else f"node {node}")
                self.pending.extend((p, node) for p in (self.state.prefixes if node is None
                                                        else self.state.node_prefixes(node)))
                self._send_next_request()
                continue
            snap = merged_replies(replies)
            if node is not None and self._lacks_topo(snap, node):
                self._source_knows_nothing_of(node, "has no topo yet of")
            else:
                self._apply_snapshot(snap, node, first_sent)
                self._retire_left_epochs(node)
                if node is not None and node in self.state.epochs:
                    self.unknown.pop(node, None)
                    outage = self.unknown_outages.pop(node, None)
                    if outage is not None:
                        outage.ended(now, f"{self.endpoint.sync} has node {node} again")
                    self._release(node)
                elif node is not None:
                    self._source_knows_nothing_of(node, "knows nothing yet of")
            if not self.pending:
                self._finish_join()
            self._send_next_request()

    def _retire_left_epochs(self, only_node: Optional[str]) -> None:
        """A snapshot set a node's epoch E: an epoch of its queued messages that comes before
        one of them in E is one the node has left (it restarted while they were queued), not
        a restart to come. Retired, so that replaying them does not "restart" it back."""
        before: dict[str, set[int]] = {}
        left: dict[str, set[int]] = {}
        epochs = self.state.epochs
        for node in list(self.buffer.nodes()) if only_node is None else [only_node]:
            current = epochs.get(node)
            if current is None:
                continue
            for msg in self.buffer.of(node):
                if msg.header.epoch != current:
                    before.setdefault(node, set()).add(msg.header.epoch)
                elif node in before:
                    left.setdefault(node, set()).update(before.pop(node))
        for node, gone in left.items():
            retired = self.state.retired.setdefault(node, deque(maxlen=RETIRED_EPOCHS))
            retired.extend(e for e in gone if e not in retired)

    def _release(self, node: str) -> None:
        """A node resynchronised: its queued messages are applied now, not when every other
        node's snapshot is in too (on a relay's cold start that can be long)."""
        if self.joining:
            return
        self.resyncing.discard(node)
        for msg in self._take_queued(node):
            self._replay(msg)

    def _take_queued(self, node: str) -> list[Received]:
        """Remove ``node``'s queued messages from the queue, and return them in order."""
        return self.buffer.take(node)

    def _lacks_topo(self, snap: wire.Snapshot, node: str) -> bool:
        """The replies about ``node``, held by no view here, have its states or list its topo,
        but hold no topo of it (a relay still joining it): nothing to decode the states with."""
        topo = wire.build_topic("topo", node)
        if node in self.state.view.nodes or not self.state.subscribed(topo):
            return False
        raw, states = topo.encode(), wire.build_topic("state", node).encode()
        if any(frames[0] == raw for frames in snap.messages):
            return False
        return topo in snap.seqs or any(bytes(frames[0]).startswith(states) for frames in snap.messages)

    def _source_knows_nothing_of(self, node: str, what: str) -> None:
        """A node's snapshot replies held nothing of it, or not its topo (a relay still joining
        it, or one that has forgotten it since): ask again later, its messages queued
        meanwhile; after RESYNC_TRIES such replies, drop them. A source that never learns the
        node goes round that cycle for as long as the node's messages come: said once, at
        WARNING (then as an :class:`Outage` reminds), not at every reply."""
        now = time.monotonic()
        tries = self.unknown.get(node, (0, 0.0))[0] + 1
        outage = self.unknown_outages.get(node)
        if tries >= RESYNC_TRIES:
            del self.unknown[node]
            self.resyncing.discard(node)
            dropped = self._take_queued(node)
            if outage is None:
                # Nodes met once and not since (gone for good) are not remembered for ever.
                for old in [n for n, o in self.unknown_outages.items() if now - o.last > 2 * o.remind_s]:
                    del self.unknown_outages[old]
                outage = self.unknown_outages[node] = Outage(log, f"rounds of {RESYNC_TRIES} tries")
            outage.failed(now, f"{self.endpoint.sync} {what} node {node} after {tries} tries: its {len(dropped)} "
                               f"queued messages are dropped; its next message starts over",
                          f"{self.endpoint.sync} still {what} node {node}")
            return
        wait = retry_wait(tries)
        # The first try of the first round at INFO (a relay still joining the node: usual);
        # the rest, and every round of a source that keeps knowing nothing, at DEBUG.
        level = logging.INFO if tries == 1 and outage is None else logging.DEBUG
        log.log(level, "%s %s node %s: asking again in %.2f s", self.endpoint.sync, what, node, wait)
        self.unknown[node] = (tries, now + wait)
        self.resyncing.add(node)

    def _apply_snapshot(self, snap: wire.Snapshot, only_node: Optional[str], sent: Optional[float]) -> None:
        """Apply a snapshot reply (of ``only_node``'s topics, or all) to a request sent at
        ``sent`` (monotonic s; None: no request)."""
        kinds = snap.extra.get("kinds")
        # The kinds this source carries (§3.3, §7): all, unless its reply says otherwise.
        self.carried = frozenset(k for k in kinds if isinstance(k, str)) if isinstance(kinds, list) else None
        decoded: dict[str, list[Received]] = {}
        for frames in snap.messages:
            try:
                msg = self._received(frames)
            except wire.UnknownKind:
                self.state.stats.unknown_kinds += 1
                continue
            except ProtocolError as e:
                self.state.stats.decode_errors += 1
                log.debug("bad message in snapshot: %s", e)
                continue
            if only_node is None or msg.topic.node == only_node:
                decoded.setdefault(msg.topic.node, []).append(msg)
        # Nodes known only by their seqs (a follower of hb or event topics: a snapshot holds
        # none of their messages) take their epoch from the reply: a relay lists each node's
        # in "epochs"; otherwise the reply's "epoch" is the node's when it is the only one.
        # The reply's seqs by node, once: each node below takes its own (a pass over all of
        # them per node made a join of N nodes O(N²)).
        seqs_of: dict[str, list[tuple[str, int]]] = {}
        for seq_topic, seq in snap.seqs.items():
            seq_node = wire.node_of(seq_topic) if isinstance(seq_topic, str) else None
            if seq_node is not None:
                seqs_of.setdefault(seq_node, []).append((seq_topic, seq))
        seq_nodes = set(seqs_of)
        extra_epochs = snap.extra.get("epochs")
        listed = extra_epochs if isinstance(extra_epochs, dict) else {}
        # A relay lists itself among "epochs" before it has published any event of its own
        # (§7): with that epoch known, its first event is applied, not taken for a new node
        # whose snapshot would then cover (and drop) it.
        seq_nodes |= {n for n in listed if isinstance(n, str) and wire.NODE_RE.fullmatch(n)}
        if only_node is not None:
            seq_nodes &= {only_node}
        if sent is not None and self.state.gone_at:
            # Forgotten by a relay (node_gone) after this was asked: the reply's copy of the
            # node is older than that. Heard again, the node is joined anew.
            for node in [n for n in decoded if self.state.gone_at.get(n, sent) > sent]:
                del decoded[node]
            seq_nodes = {n for n in seq_nodes if self.state.gone_at.get(n, sent) <= sent}
        bare: dict[str, int] = {}
        for node in seq_nodes - set(decoded):
            epoch = listed.get(node)
            if epoch is None and len(seq_nodes) == 1 and "epochs" not in snap.extra:
                epoch = snap.epoch
            if type(epoch) is int:
                bare[node] = epoch
        for node, epoch in bare.items():
            if epoch in self.state.retired.get(node, ()):
                continue  # a source caught before the node's restart: the feed has the new epoch
            if self.state.epochs.get(node) not in (None, epoch):
                self.state.stats.restarts += 1
                self.state.discard_node(node)
                self.state.emit("restart", node, None, None, None)
            self.state.epochs[node] = epoch
            self._raise_seqs(node, seqs_of.get(node, ()))
        silent = snap.extra.get("silent_s")
        for node, msgs in decoded.items():
            epoch = msgs[0].header.epoch
            if epoch in self.state.retired.get(node, ()):
                continue  # a relay caught before the node's restart: the feed has the new epoch
            if self.state.epochs.get(node) not in (None, epoch):
                self.state.stats.restarts += 1
                self.state.discard_node(node)
                self.state.emit("restart", node, None, msgs[0].header, None)
            self.state.epochs[node] = epoch
            seqs = self.state.seqs
            held = {m.topic_str: seqs.get(m.topic_str, 0) for m in msgs}  # applied before this snapshot
            self._raise_seqs(node, seqs_of.get(node, ()))
            # topo first: states are decoded against it.
            for msg in sorted(msgs, key=lambda m: m.topic.kind != "topo"):
                if msg.header.epoch != epoch:
                    continue  # a relay caught mid-restart; the feed will tell us
                if msg.header.seq <= held.get(msg.topic_str, 0):
                    continue  # already applied (or something newer): never apply twice
                self._apply(msg)
            nv = self.state.view.nodes.get(node)
            if nv is not None:
                # A relay says how long it has not heard the node (§7): a node silent there
                # goes stale here as soon as it does there, not a full interval later.
                age = silent.get(node, 0.0) if isinstance(silent, dict) else 0.0
                age = float(age) if type(age) in (int, float) and 0.0 <= age < 1e9 else 0.0
                nv.last_heard = time.monotonic() - age
                self.state.dated_back = True
        # Last: a restart above drops what was held of the node, its forget interval too.
        given = snap.extra.get("forget_after_s")
        forget = float(given) if isinstance(given, (int, float)) and 0 < given < 1e9 else None
        for node in [*bare, *decoded]:
            if forget is None:
                self.state.forget_after.pop(node, None)
            else:
                self.state.forget_after[node] = forget

    def _raise_seqs(self, node: str, listed: Sequence[tuple[str, int]]) -> None:
        """A snapshot's seqs of ``node``'s topics: each topic's last seq is at least that."""
        seqs, topics = self.state.seqs, self.state.node_topics.setdefault(node, set())
        for topic, seq in listed:
            last = seqs.get(topic, 0)
            if seq > last:
                seqs[topic] = seq
                topics.add(topic)

    def _finish_join(self) -> None:
        self.joining = False
        self.resyncing.intersection_update(self.unknown)  # those wait for their next reply
        for msg in self.buffer.take_all():
            self._replay(msg)

    def _replay(self, msg: Received) -> None:
        if self.joining or msg.topic.node in self.resyncing:
            self.buffer.append(msg.topic.node, msg)
        else:
            self._ingest(msg)

