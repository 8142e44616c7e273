"""``event`` bodies (PROTOCOL.md §3.4): something happened to a node or a device."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from .codec import ProtocolError, as_map, get

# node_stale/_back/_gone: a relay's, about another node (§7).
# profiling_paused/_resumed: the CUPTI source's (§3.4), bracketing the windows without pm_ counters.
EVENT_TYPES = ("device_lost", "device_back", "backend_error", "topology_changed", "throttle", "xid",
               "node_stale", "node_back", "node_gone", "profiling_paused", "profiling_resumed")


@dataclass
class Event:
    type: str
    detail: str
    device: Optional[str] = None
    extra: dict[str, Any] = field(default_factory=dict)



def encode_event_body(type: str, detail: str, device: Optional[str] = None, **extra: Any) -> dict[str, Any]:
    if type not in EVENT_TYPES:
        raise ProtocolError("event.type", f"{type!r} is not one of {EVENT_TYPES}")
    body: dict[str, Any] = {"type": type, "detail": str(detail)}
    if device is not None:
        body["device"] = str(device)
    body.update(extra)
    return body



def decode_event_body(m: Any) -> Event:
    m = as_map(m, "event")
    known = {"type", "detail", "device"}
    return Event(
        type=get(m, "type", str, "event"),
        detail=get(m, "detail", str, "event"),
        device=get(m, "device", str, "event", optional=True),
        extra={k: v for k, v in m.items() if k not in known},
    )
