"""What a client hands its consumer for every change to its view (``Client.poll``,
``Client.updates``, ``Client.on_update``): an :class:`Update`, a plain tuple, since one is
made for every message applied."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

from ..wire import Header
from .lazy import LazyState


class _UpdateFields(NamedTuple):
    kind: str
    node: str
    device: Optional[str]
    header: Optional[Header]
    body: Any


class Update(_UpdateFields):
    """One change to the view: a feed ``kind`` (topo/state/hb/event/sum), or ``restart``
    (a node's epoch changed; its old data is gone), ``stale`` (no heartbeat for 3 s) or
    ``gone`` (a node joined through a relay, silent for that relay's forget interval, dropped
    without the relay's ``node_gone``, PROTOCOL.md §7).

    ``body`` is the decoded body (Topo, State, Heartbeat, Event, NodeSummary; None for restart,
    stale and gone).
    A lazy client's state update holds its body undecoded (a :class:`LazyState`, which is what
    the tuple itself holds at index 4): reading ``body`` decodes it, once, shared with the
    view; it is None when the body is malformed (counted in ``decode_errors``)."""

    __slots__ = ()

    @property
    def body(self) -> Any:
        body = self[4]
        return body.get() if type(body) is LazyState else body
