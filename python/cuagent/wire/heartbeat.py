"""``hb`` bodies (PROTOCOL.md §3.3): liveness and the last seq of every topic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .codec import NUMBER, as_map, get, uint64


@dataclass
class Heartbeat:
    seqs: dict[str, int]
    rate_hz: float
    dropped: int
    uptime_s: float



def encode_hb_body(seqs: Mapping[str, int], rate_hz: float, dropped: int, uptime_s: float) -> dict[str, Any]:
    return {"seqs": dict(seqs), "rate_hz": float(rate_hz), "dropped": int(dropped), "uptime_s": float(uptime_s)}



def decode_hb_body(m: Any) -> Heartbeat:
    m = as_map(m, "hb")
    seqs = as_map(get(m, "seqs", dict, "hb"), "hb.seqs")
    for topic, seq in seqs.items():
        uint64(seq, f"hb.seqs.{topic}")
    return Heartbeat(
        seqs=seqs,
        rate_hz=float(get(m, "rate_hz", NUMBER, "hb")),
        dropped=get(m, "dropped", int, "hb"),
        uptime_s=float(get(m, "uptime_s", NUMBER, "hb")),
    )
