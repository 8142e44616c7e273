"""``sum`` bodies (PROTOCOL.md §3.5): every device of a node in one fixed-size record each.

A scheduler of 100,000 GPUs reads these instead of the per-unit ``state`` messages: one
message per node per window, 47 bytes per device, decoded with one ``numpy.frombuffer`` of
:data:`RECORD_DTYPE`. The layout is written down here and in PROTOCOL.md §3.5 only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .codec import ProtocolError, describe

#: The record layout this module writes and reads (``layout`` in the body).
LAYOUT = 1
#: Bytes per record of layout 1. A later agent may append fields (a larger ``size``, same
#: layout); a reader of layout 1 reads the first RECORD_SIZE bytes of each record.
RECORD_SIZE = 47
#: Groups (GPCs, XCDs) whose idle counts a record carries; a device with more says how many
#: it has in ``groups``, and the rest are in its ``state`` messages only.
MAX_GROUPS = 12

# Field flags (the record's ``flags`` byte): which integer fields are measured. Floats say
# "absent" with NaN instead.
STATES = 1  # idle / active / saturated / thrashing hold unit counts
GROUPS = 2  # group_idle holds idle units per group
WINDOW = 4  # the device has had a window: age_ms is its age

STATUS_OK, STATUS_LOST = 0, 1
STATUS_NAMES = ("ok", "lost")
NO_WINDOW = 0xFFFF  # age_ms of a device that has had no window yet
# Older is "at least this old": a window a minute old is no basis for placing work anyway.
MAX_AGE_MS = NO_WINDOW - 1
U8_MAX, U16_MAX = 0xFF, 0xFFFF

_FIELDS: list[tuple[str, Any, int]] = [
    ("idle_units", "<f4", 0),
    ("sm_active", "<f4", 4),
    ("mem_used", "<f4", 8),
    ("power", "<f4", 12),
    ("temp", "<f4", 16),
    ("age_ms", "<u2", 20),
    ("units", "<u2", 22),
    ("idle", "<u2", 24),
    ("active", "<u2", 26),
    ("saturated", "<u2", 28),
    ("thrashing", "<u2", 30),
    ("status", "u1", 32),
    ("flags", "u1", 33),
    ("groups", "u1", 34),
    ("group_idle", ("u1", (MAX_GROUPS,)), 35),
]
#: The float fields (NaN: absent) and the device counters (§3.2 ``device`` map) they come from.
FLOAT_FIELDS = ("idle_units", "sm_active", "mem_used", "power", "temp")
COUNTER_FIELDS = ("sm_active", "mem_used", "power", "temp")
STATE_FIELDS = ("idle", "active", "saturated", "thrashing")  # in §3.2 state order


def record_dtype(size: int = RECORD_SIZE) -> np.dtype:
    """Layout 1 as a numpy structured dtype for records of ``size`` bytes (>= 47: the bytes
    past 47 are a later agent's fields, which this dtype skips)."""
    return np.dtype({"names": [f[0] for f in _FIELDS], "formats": [f[1] for f in _FIELDS],
                     "offsets": [f[2] for f in _FIELDS], "itemsize": size})


RECORD_DTYPE = record_dtype()
assert RECORD_DTYPE.itemsize == RECORD_SIZE
_DTYPES: dict[int, np.dtype] = {RECORD_SIZE: RECORD_DTYPE}


def empty_records(n: int) -> np.ndarray:
    """``n`` records with every float absent (NaN), every flag clear, status ok, no window."""
    rec = np.zeros(n, RECORD_DTYPE)
    for name in FLOAT_FIELDS:
        rec[name] = np.nan
    rec["age_ms"] = NO_WINDOW
    return rec


@dataclass
class Summary:
    """One decoded ``sum`` body: ``records`` is a read-only structured array of
    :data:`RECORD_DTYPE` fields (one per device, in the topo's device order)."""

    records: np.ndarray
    layout: int = LAYOUT

    def __len__(self) -> int:
        return int(self.records.shape[0])

    def rows(self) -> list[dict[str, Any]]:
        """The records as maps, for people (JSON): an absent value is None, never 0."""
        return summary_rows(self.records)


def encode_summary_body(records: np.ndarray) -> dict[str, Any]:
    """A ``sum`` map from records of :data:`RECORD_DTYPE` (see cuagent.node.summary)."""
    if records.dtype != RECORD_DTYPE:
        raise ProtocolError("sum.records", f"dtype {records.dtype} is not the layout {LAYOUT} record")
    return {"layout": LAYOUT, "size": RECORD_SIZE, "records": np.ascontiguousarray(records).tobytes()}


def encode_summary_records(raw: bytes) -> dict[str, Any]:
    """A ``sum`` map from records already laid out as layout 1 (the engine's core writes them:
    ``Engine.summary_records``), the same map :func:`encode_summary_body` makes of an array."""
    if len(raw) % RECORD_SIZE:
        raise ProtocolError("sum.records", f"{len(raw)} bytes is not a whole number of {RECORD_SIZE}-byte records")
    return {"layout": LAYOUT, "size": RECORD_SIZE, "records": raw}


def decode_summary_body(m: Any) -> Summary:
    """Decode a ``sum`` map. An unknown ``layout`` is refused (the message is to be ignored,
    §3.5); a larger ``size`` is read through its first 47 bytes per record."""
    raw, size = summary_records(m)
    return Summary(np.frombuffer(raw, records_dtype(size)), LAYOUT)


def records_dtype(size: int) -> np.dtype:
    """:func:`record_dtype`, made once per size."""
    dtype = _DTYPES.get(size)
    if dtype is None:
        dtype = _DTYPES[size] = record_dtype(size)
    return dtype


def summary_records(m: Any) -> tuple[bytes, int]:
    """The checks of :func:`decode_summary_body` without the array: (records bytes, record
    size). For a client that makes the array only when asked (numpy's is most of the cost)."""
    if type(m) is not dict:
        raise ProtocolError("sum", f"expected a map, got {type(m).__name__}")
    layout, size, raw = m.get("layout"), m.get("size"), m.get("records")
    if type(layout) is not int or layout != LAYOUT:
        raise ProtocolError("sum.layout", f"{describe(layout)} is not a record layout this client knows ({LAYOUT})")
    if type(size) is not int or not RECORD_SIZE <= size <= 4096:
        raise ProtocolError("sum.size", f"{describe(size)}: expected an int from {RECORD_SIZE} to 4096")
    if type(raw) is not bytes:
        raise ProtocolError("sum.records", f"expected bin, got {describe(raw)}")
    if len(raw) % size:
        raise ProtocolError("sum.records", f"{len(raw)} bytes is not a whole number of {size}-byte records")
    return raw, size


# The body encode_summary_body writes, up to the records' bin: a map of exactly these three
# keys in this order, layout 1, 47-byte records (msgpack: fixmap 3, fixstr keys, fixint values).
_USUAL_HEAD = b"\x83\xa6layout\x01\xa4size\x2f\xa7records"
_BIN = len(_USUAL_HEAD)  # where the bin's type byte is


def usual_summary_records(frame: bytes) -> Optional[bytes]:
    """The records of a ``sum`` body frame when it is the usual one: exactly the map
    :func:`encode_summary_body` writes (the three keys in its order, layout 1, 47-byte
    records, a whole number of them, nothing after the bin); else None, and the general
    decode (:func:`~cuagent.wire.codec.unpack`, :func:`summary_records`) decides and names
    what is wrong. What this accepts, that decode accepts with the same records
    (tests/test_summary_fast.py): it skips the map a client would only take apart again,
    half of what the body's checks cost (bench/summary_ingest.py --parts)."""
    if type(frame) is not bytes or not frame.startswith(_USUAL_HEAD) or len(frame) < _BIN + 5:
        return None
    tag = frame[_BIN]
    if tag == 0xC5:  # bin 16: 6 to 1394 devices
        n, start = (frame[_BIN + 1] << 8) | frame[_BIN + 2], _BIN + 3
    elif tag == 0xC4:  # bin 8: up to 5
        n, start = frame[_BIN + 1], _BIN + 2
    elif tag == 0xC6:  # bin 32
        n, start = int.from_bytes(frame[_BIN + 1:_BIN + 5], "big"), _BIN + 5
    else:
        return None
    if len(frame) != start + n or n % RECORD_SIZE:
        return None
    return frame[start:]


def _float(v: Any) -> Optional[float]:
    f = float(v)
    return None if math.isnan(f) else f


def summary_rows(records: np.ndarray) -> list[dict[str, Any]]:
    """Records as maps: floats NaN -> None, unmeasured counts/groups -> None, the age of a
    device with no window -> None, ``group_idle`` only as long as the device has groups."""
    out = []
    for r in records:
        flags, groups = int(r["flags"]), int(r["groups"])
        status = int(r["status"])
        row: dict[str, Any] = {
            "status": STATUS_NAMES[status] if status < len(STATUS_NAMES) else f"unknown {status}",
            "units": int(r["units"]),
            "age_ms": int(r["age_ms"]) if flags & WINDOW else None,
        }
        for name in FLOAT_FIELDS:
            row[name] = _float(r[name])
        for name in STATE_FIELDS:
            row[name] = int(r[name]) if flags & STATES else None
        row["groups"] = groups
        row["group_idle"] = [int(x) for x in r["group_idle"][:min(groups, MAX_GROUPS)]] if flags & GROUPS else None
        out.append(row)
    return out
