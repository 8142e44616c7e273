"""What every :class:`~cuagent.feed.session.Session` of one client shares: which seqs and
epochs have been applied, the view, the updates not yet delivered, the observers, the counts.
One :class:`FeedState` for all of a client's upstreams: a node heard through two upstreams is
still applied once."""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Optional

from .. import wire
from ..wire import Header, ProtocolError
from .lazy import LazyState
from .received import FeedObserver, Received
from .updates import Update
from .view import ClusterView

log = logging.getLogger("cuagent.client")

RETIRED_EPOCHS = 8  # epochs a node has left that are remembered, to drop their late messages
GONE_KEPT_S = 120.0  # how long a relay's node_gone is remembered (FeedState.gone_at)


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
    unknown_kinds: int = 0  # messages of a kind this client does not know, ignored (§8)
    summaries_skipped: int = 0  # summaries never received: no loss, the next one replaces them (§3.5)
    old_epoch: int = 0  # messages of an epoch the node has already left (queued before a restart), dropped


class FeedState:
    """What every session of one client shares: the seqs and epochs applied, the view, the
    updates not yet delivered, the observers."""

    def __init__(self, prefixes: list[str], snapshot_timeout_s: float, lazy: bool = True) -> None:
        self.prefixes = prefixes
        self.snapshot_timeout_s = snapshot_timeout_s
        self.lazy = lazy  # state bodies decoded when read (feed/lazy.py), not when received
        self.report_bad_state = self.bad_state  # bound once: every lazy state body holds it
        self.view = ClusterView()
        self.stats = ClientStats()
        self.seqs: dict[str, int] = {}  # topic -> last seq applied (current epoch of its node)
        # node -> its topics in seqs (added where a topic first gets a seq): a node dropped
        # costs its own topics, not a pass over every node's (a rolling restart of N nodes
        # was O(N²)).
        self.node_topics: dict[str, set[str]] = {}
        self.epochs: dict[str, int] = {}  # node -> epoch
        # node -> the epochs it has left (the latest few). Epochs are random, so only this
        # tells a message of an old epoch, still queued or in flight when the node restarted,
        # from a restart: taking it for one would "restart" the node back, over and over.
        self.retired: dict[str, deque[int]] = {}
        self.updates: list[Update] = []
        self.observers: list[FeedObserver] = []
        # A node's last heartbeat was dated back (a relay's silent_s): staleness must be
        # looked for now, not at the deadline the client's last look found.
        self.dated_back = False
        # Nodes a relay forgot (node_gone) while this view still heard them: dropped once stale.
        self.gone_pending: set[str] = set()
        # node -> when a relay's node_gone dropped it (monotonic s): a snapshot reply to a
        # request sent before that, still in flight then or collected (one of several a join
        # takes), must not bring the node back (it would sit in the view as stale for good:
        # no node_gone comes again). Kept GONE_KEPT_S, longer than any join takes.
        self.gone_at: dict[str, float] = {}
        # node -> the forget interval (s) of the relay whose snapshot it was last joined from
        # (§7 forget_after_s): dropped once silent that long here, as that relay would have,
        # since its node_gone may never come (it restarted without hearing the node again,
        # or the event was lost). Not for a node joined from an agent: that one stays, stale.
        self.forget_after: dict[str, float] = {}

    def emit(self, kind: str, node: str, device: Optional[str], header: Optional[Header], body: Any) -> None:
        self.updates.append(Update(kind, node, device, header, body))

    def applied(self, msg: Received, decoded: Any) -> None:
        for observer in self.observers:
            observer.applied(msg, decoded)

    def bad_state(self, body: LazyState, error: ProtocolError) -> None:
        """A lazily decoded state body turned out malformed when first read."""
        self.stats.decode_errors += 1
        log.debug("bad state body from %s (device %s, seq %d): %s", body.header.node, body.topology.id,
                  body.header.seq, error)

    def subscribed(self, topic: str) -> bool:
        return any(topic.startswith(p) for p in self.prefixes)

    def discard_node(self, node: str, retire: bool = True) -> None:
        """Drop ``node``'s view, seqs and epoch; ``retire``: remember the epoch as one it has
        left (a restart), so that its late messages are dropped."""
        self.view.nodes.pop(node, None)
        self.view.summaries.forget(node)
        self.forget_after.pop(node, None)
        old = self.epochs.pop(node, None)
        if old is not None and retire:
            self.retired.setdefault(node, deque(maxlen=RETIRED_EPOCHS)).append(old)
        for topic in self.node_topics.pop(node, ()):
            self.seqs.pop(topic, None)
        for observer in self.observers:
            observer.forgot(node)

    def forget_node(self, node: str) -> None:
        """A relay forgot ``node`` (``node_gone``, §7): drop its view, seqs and epoch. Its epoch
        is not retired: a node heard again after that is a new node (joined), in whatever epoch."""
        nv = self.view.nodes.get(node)
        if nv is not None and not nv.stale:
            # Heard here within the stale interval: through another upstream than the relay
            # that forgot it, or that relay's own staleness ran ahead of ours. Dropped when it
            # goes stale here too (Client._check_stale), kept if heard again meanwhile.
            self.gone_pending.add(node)
            return
        now = time.monotonic()
        for old in [n for n, at in self.gone_at.items() if now - at > GONE_KEPT_S]:
            del self.gone_at[old]
        # Also for a node not held yet: a join's reply in flight may bring it.
        self.gone_at[node] = now
        if node not in self.epochs and node not in self.view.nodes:
            return
        self.gone_pending.discard(node)
        self.discard_node(node, retire=False)

    def node_prefixes(self, node: str) -> list[str]:
        """The narrowest snapshot prefixes covering what we follow of ``node``."""
        out: list[str] = []
        for topic_prefix in wire.node_prefixes(node):
            for sub in self.prefixes:
                if topic_prefix.startswith(sub):
                    out.append(topic_prefix)
                elif sub.startswith(topic_prefix):
                    out.append(sub)
        return sorted(set(out))
