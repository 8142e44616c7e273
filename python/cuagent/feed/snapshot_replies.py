"""The replies to one join's or one node's snapshot requests (PROTOCOL.md §4: one request per
prefix), taken as one: what each says of the nodes' epochs, whether a node restarted between
two of them, and all of them merged into the one reply that is applied."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from .. import wire
from ..wire import ProtocolError


def merged_replies(snaps: Sequence[wire.Snapshot]) -> wire.Snapshot:
    """The replies to one join's or one node's requests (a prefix each) as one reply, applied
    together: a state is decoded against its node's topo, so one applied from an earlier reply
    than its topo's would be dropped, its seq taken as applied, and its device would show no
    state until the next window. A topic in two replies (overlapping prefixes): the later's."""
    if len(snaps) == 1:
        return snaps[0]
    messages: dict[bytes, list[bytes]] = {}
    seqs: dict[str, int] = {}
    extra: dict[str, Any] = {}
    for snap in snaps:
        messages.update((bytes(frames[0]), frames) for frames in snap.messages)
        for topic, seq in snap.seqs.items():
            seqs[topic] = max(seq, seqs.get(topic, 0))
        for key, value in snap.extra.items():
            held = extra.get(key)
            extra[key] = {**held, **value} if isinstance(held, dict) and isinstance(value, dict) else value
    return wire.Snapshot(snaps[-1].epoch, list(messages.values()), seqs, extra)


def reply_epochs(snap: wire.Snapshot) -> dict[str, int]:
    """node -> epoch, as one snapshot reply tells it: its messages' headers, a relay's
    ``epochs``, or an agent's own ``epoch`` (the one node its seqs name)."""
    out: dict[str, int] = {}
    listed = snap.extra.get("epochs")
    if isinstance(listed, dict):
        out.update((n, e) for n, e in listed.items() if isinstance(n, str) and type(e) is int)
    else:
        nodes = {wire.node_of(t) for t in snap.seqs if isinstance(t, str)} - {None}
        if len(nodes) == 1:
            out[str(nodes.pop())] = snap.epoch
    for frames in snap.messages:
        try:
            topic, _, header = wire.decode_head(frames)
        except ProtocolError:
            continue  # counted when applied
        out[topic.node] = header.epoch
    return out


def epochs_disagree(snaps: Sequence[wire.Snapshot], only_node: Optional[str] = None) -> bool:
    """A node (``only_node``, or any) restarted between two of these replies: their seqs are
    of two epochs, and merged they would hold the old epoch's seqs under the new one."""
    seen: dict[str, int] = {}
    for snap in snaps:
        for node, epoch in reply_epochs(snap).items():
            if (only_node is None or node == only_node) and seen.setdefault(node, epoch) != epoch:
                return True
    return False
