"""How a relay joins its upstreams (PROTOCOL.md §4, §7) without following them as a client.

The relay's table (:class:`cuagent._core.RelayTable`) learns everything from the frames it
forwards, except what was sent before it listened: the topo of a node that publishes one every
10 s, the seqs of quiet topics. So, like a client, it asks upstream for snapshots — once per
upstream when it starts (prefix ``cua1/``; a relay that carries only some kinds, one prefix per
kind), and for one node (the prefixes of the kinds it carries) when the table says that node
needs it (a node new to it or restarted, unless it saw that epoch's first topo; a topo its hb
says was lost; a state of a device its topo does not list) — and merges the replies into the
table, which keeps whatever is newer. Bodies are never decoded here either.

Each upstream gets its own DEALER (created on its first request), one request in flight, and
a timeout after which the request is sent again on a fresh socket, as a client does: 2 s,
doubling while the upstream stays silent, up to 30 s (``snapshot_wait``); a reply that cannot
be used is asked again after a wait too, longer each time. Either fault is logged once when it
starts, not at every retry (:class:`~cuagent.feed.snapshot_faults.SnapshotFaults`, as a client's). A node is
asked of the upstreams whose replies listed it; a node none listed yet, of the upstreams that
are relays (their replies carry ``epochs``) or have not answered yet, else of all.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Optional, Sequence

import zmq

from .. import wire
from .._core import RelayTable
from ..curve import ClientKeys
from ..feed.endpoint import Endpoint
from ..feed.session import JOIN_WAIT_S
from ..feed.snapshot_faults import SNAPSHOT_TIMEOUT_S, SnapshotFaults

log = logging.getLogger("cuagent.relay")

# At most one join of a node per this many seconds: a condition that a join cannot cure (an
# upstream as far behind as the relay) must not turn into a stream of requests.
JOIN_INTERVAL_S = 2.0
REASONS = {1: "new or restarted", 2: "topo lost (heartbeat)", 4: "state of a device its topo does not list"}


class _Upstream:
    """One upstream's sync socket and its queue of snapshot requests (prefix, node or None)."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], endpoint: Endpoint, curve: Optional[ClientKeys]) -> None:
        self.ctx, self.endpoint, self.curve = ctx, endpoint, curve
        self.dealer: Optional[zmq.Socket[bytes]] = None
        self.pending: deque[tuple[str, Optional[str]]] = deque()
        self.inflight: Optional[tuple[str, Optional[str], float]] = None
        self.answered = False  # its first (whole) snapshot merged
        self.relay = False  # its replies list "epochs": it carries many nodes
        # Requests unanswered and replies refused: waits and their log lines, as a client's.
        self.faults = SnapshotFaults(log, endpoint.sync, curve)

    def send_next(self, now: float) -> None:
        if self.inflight is not None or not self.pending or now < self.faults.hold_until:
            return
        if self.dealer is None:
            self._new_dealer()
        prefix, node = self.pending.popleft()
        assert self.dealer is not None
        try:
            self.dealer.send(wire.snapshot_request(prefix), zmq.NOBLOCK)
        except zmq.Again:
            pass  # not connected yet: the timeout sends it again
        self.inflight = (prefix, node, now)

    def timed_out(self, now: float) -> bool:
        if self.inflight is None or now - self.inflight[2] <= self.faults.reply_wait():
            return False
        # A fresh socket: a late reply to the abandoned request can never pass for the next.
        self.faults.timed_out(now)
        prefix, node, _ = self.inflight
        self.inflight = None
        self.pending.appendleft((prefix, node))
        self._new_dealer()
        return True

    def _new_dealer(self) -> None:
        if self.dealer is not None:
            self.dealer.close(0)
        self.dealer = self.faults.dealer(self.ctx, self.curve)

    def close(self) -> None:
        if self.dealer is not None:
            self.dealer.close(0)
        self.faults.close()


class UpstreamJoins:
    """The relay's snapshot requests to its upstreams, on the thread that serves its sync
    socket: :meth:`poll_sockets` to wait on, :meth:`process` when one is readable or a timer
    is due (every pass of the relay's loop)."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], endpoints: Sequence[Endpoint], table: RelayTable,
                 own_name: str, curve: Optional[ClientKeys] = None, kinds: Sequence[str] = wire.KINDS) -> None:
        self.table = table
        self.kinds = tuple(kinds)
        self.kind_prefixes = tuple(wire.kind_prefix(k) for k in self.kinds)
        # The first (whole) join: all of cua1/, or one snapshot per kind carried, topo first:
        # a node a reply brings is joined (served) at once, and one brought by an hb or sum
        # reply before its topo would be served without it (a client could not place its
        # summary records). The last reply marks joined the nodes the feed brought meanwhile.
        self.whole_prefixes = [wire.PREFIX] if set(self.kinds) == set(wire.KINDS) else \
            [wire.kind_prefix(k) for k in sorted(self.kinds, key=lambda k: k != "topo")]
        self.own_name = own_name
        self.upstreams = [_Upstream(ctx, e, curve) for e in endpoints]
        self.started = time.monotonic()
        self.first_sent = False
        self.node_upstreams: dict[str, set[int]] = {}  # node -> upstreams whose replies listed it
        self.wanted: dict[str, int] = {}  # node -> reasons, waiting for a join
        # node -> (epoch, requests outstanding per upstream asked)
        self.joining: dict[str, tuple[int, dict[int, int]]] = {}
        # (upstream, node): a node join's reply still in flight when the node was forgotten.
        self.unwanted_replies: set[tuple[int, str]] = set()
        self.first_deadline = 0.0
        self.next_join: dict[str, float] = {}  # node -> earliest time of its next join
        self.stats = {"snapshots": 0, "node_joins": 0, "bad_replies": 0, "timeouts": 0}

    @property
    def ready(self) -> bool:
        """Every upstream has answered its first snapshot."""
        return all(u.answered for u in self.upstreams)

    def poll_sockets(self) -> list[zmq.Socket[bytes]]:
        return [u.dealer for u in self.upstreams if u.inflight is not None and u.dealer is not None]

    def close(self) -> None:
        for u in self.upstreams:
            u.close()

    def process(self, now: float) -> None:
        """Merge the replies that arrived, queue the joins the table asks for, send requests."""
        if not self.first_sent:
            # Subscribed first (§4): ask once something arrived, or after the join wait.
            if self.table.stats()["messages"] == 0 and now - self.started < JOIN_WAIT_S:
                return
            self.first_sent = True
            self.first_deadline = now + SNAPSHOT_TIMEOUT_S
            for u in self.upstreams:
                u.pending.extend((prefix, None) for prefix in self.whole_prefixes)
        for i, u in enumerate(self.upstreams):
            self._drain(i, u, now)
            asked_for = u.inflight[1] if u.inflight is not None else None
            if u.timed_out(now):
                self.stats["timeouts"] += 1
                if asked_for is not None and (i, asked_for) in self.unwanted_replies:
                    # Asked for a node forgotten since: not asked again (timed_out queued it first).
                    self.unwanted_replies.discard((i, asked_for))
                    u.pending.popleft()
        for node, _epoch, reasons in self.table.take_joins():
            if node != self.own_name:
                self.wanted[node] = self.wanted.get(node, 0) | reasons
        self._start_joins(now)
        for u in self.upstreams:
            u.send_next(now)

    # ------------------------------------------------------------------ joins
    def _start_joins(self, now: float) -> None:
        # While the first snapshots are outstanding they may well bring what a node lacks (but
        # an upstream that does not answer holds up no one for long).
        if not self.wanted or not self.first_sent or (not self.ready and now < self.first_deadline):
            return
        for node in list(self.wanted):
            if node in self.joining or now < self.next_join.get(node, 0.0):
                continue
            reasons = self.wanted.pop(node)
            epoch = self.table.join_needed(node)
            if epoch is None:
                continue  # settled meanwhile (a first snapshot, the epoch's first topo)
            targets = self._targets(node)
            why = ", ".join(text for bit, text in REASONS.items() if reasons & bit)
            log.info("joining node %s (%s) via %s", node, why, ", ".join(self.upstreams[i].endpoint.sync for i in targets))
            prefixes = [p for p in wire.node_prefixes(node) if p.startswith(self.kind_prefixes)]
            for i in targets:
                self.upstreams[i].pending.extend((prefix, node) for prefix in prefixes)
            self.joining[node] = (epoch, {i: len(prefixes) for i in targets})
            self.next_join[node] = now + JOIN_INTERVAL_S
            self.stats["node_joins"] += 1

    def forget(self, node: str) -> None:
        """The table forgot ``node``: everything of its joins goes with it (wait, pacing, the
        upstreams that listed it, requests not sent), and a reply still in flight for it is
        not merged (it would bring the node back, joined, from before it was forgotten). If
        it comes back, it is joined as a new node, from whichever upstream has it."""
        self.wanted.pop(node, None)
        self.next_join.pop(node, None)
        self.joining.pop(node, None)
        self.node_upstreams.pop(node, None)
        for index, u in enumerate(self.upstreams):
            u.pending = deque(request for request in u.pending if request[1] != node)
            if u.inflight is not None and u.inflight[1] == node:
                self.unwanted_replies.add((index, node))

    def _targets(self, node: str) -> list[int]:
        known = self.node_upstreams.get(node)
        if known:
            return sorted(known)
        maybe = [i for i, u in enumerate(self.upstreams) if u.relay or not u.answered]
        return maybe or list(range(len(self.upstreams)))

    # ------------------------------------------------------------------ replies
    def _drain(self, index: int, u: _Upstream, now: float) -> None:
        while u.inflight is not None and u.dealer is not None:
            try:
                data = u.dealer.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            prefix, node, _ = u.inflight
            u.inflight = None
            u.faults.replied(now)
            if node is not None and (index, node) in self.unwanted_replies:
                self.unwanted_replies.discard((index, node))  # asked before the node was forgotten
                continue
            # Merged as it came: its frames go into the table as they are in the reply.
            ok, error, relay, covered = self.table.merge_snapshot(data, node or "")
            if not ok:
                self.stats["bad_replies"] += 1
                u.faults.refused_reply(now, error)
                u.pending.appendleft((prefix, node))
                continue
            u.faults.accepted(now)
            self.stats["snapshots"] += 1
            u.relay = u.relay or relay
            # The whole join's last reply (requests go one at a time, in order, and one that
            # failed goes first again): it carries the topos.
            whole_done = node is None and prefix == self.whole_prefixes[-1]
            for covered_node, epoch in covered:
                self.node_upstreams.setdefault(covered_node, set()).add(index)
                if whole_done:
                    self.table.mark_joined(covered_node, epoch)  # a whole snapshot joins every node it lists
            if whole_done:
                u.answered = True
            elif node is not None:
                self._request_done(node, index)

    def _request_done(self, node: str, index: int) -> None:
        joining = self.joining.get(node)
        if joining is None or index not in joining[1]:
            return
        epoch, left = joining
        left[index] -= 1
        if left[index] > 0:
            return
        # One upstream answered every prefix for that epoch: joined (even if it did not know
        # the node), without waiting for others, which may be down. Their answers still merge.
        del self.joining[node]
        self.table.mark_joined(node, epoch)
