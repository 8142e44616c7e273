"""A ``state`` body kept as it came and decoded when first read: how a client follows
thousands of devices while paying the decode (msgpack and numpy views, most of a message's
cost) only for the states it reads, and only for the newest of each device.

A body is checked when it is decoded, so a malformed one is found when it is first read, not
when it arrives: :meth:`LazyState.get` then returns None and reports it once (the client
counts it in ``decode_errors`` and logs it); a :class:`~cuagent.feed.view.DeviceView` keeps
the state it had.
"""

from __future__ import annotations

from typing import Callable, Optional

from .. import wire
from ..wire import Device, Header, ProtocolError, State

_UNREAD = object()


class LazyState:
    """One ``state`` message's body (``raw``, the body frame) for the device ``topology``
    describes, with its ``header``. :meth:`get` decodes it once, checked against the topology
    exactly as an eager decode would (:func:`cuagent.wire.decode_state_body`)."""

    __slots__ = ("raw", "topology", "header", "_on_error", "_state")

    def __init__(self, raw: bytes, topology: Device, header: Header,
                 on_error: Optional[Callable[["LazyState", ProtocolError], None]] = None) -> None:
        self.raw = raw
        self.topology = topology
        self.header = header
        self._on_error = on_error
        self._state: object = _UNREAD

    def get(self) -> Optional[State]:
        """The decoded state, or None when the body is malformed (reported the first time)."""
        state = self._state
        if state is _UNREAD:
            try:
                state = wire.decode_state_body(wire.unpack(self.raw, "body"), self.topology)
            except ProtocolError as e:
                state = None
                if self._on_error is not None:
                    self._on_error(self, e)
            self._state = state
        return state  # type: ignore[return-value]

    @property
    def decoded(self) -> bool:
        """:meth:`get` has run (the body was decoded, or found malformed)."""
        return self._state is not _UNREAD

    def __repr__(self) -> str:
        what = "not decoded" if self._state is _UNREAD else ("malformed" if self._state is None else "decoded")
        return (f"LazyState({self.header.node}/{self.topology.id} seq={self.header.seq}, "
                f"{len(self.raw)} bytes, {what})")
