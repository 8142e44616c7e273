"""The cuagent feed wire format, version 1 (shared/PROTOCOL.md): the one encoder and decoder.

The agent, the relay, the client library and the tests all build and read frames through this
module, so there is exactly one place where the wire format is written down in code.

Encoding works from any object shaped like the engine's ``DeviceTopology`` / ``DeviceState``
(duck-typed), and decoding produces :class:`Device` / :class:`State`, which have the same
attribute names, so code that renders or ranks devices works on either.
"""

from __future__ import annotations

import codecs
import math
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, NamedTuple, Optional, Sequence

import msgpack
import numpy as np

from .topology import CounterInfo, CounterStat, DeviceTopology, LinkInfo, PartitionInfo

VERSION = 1
PREFIX = "cua1/"
KINDS = ("topo", "state", "hb", "event")
EVENT_TYPES = ("device_lost", "device_back", "backend_error", "topology_changed", "throttle", "xid",
               "node_stale", "node_back")
# A device's `status` in topo (§3.1): absent means OK (agents before the key). Anything but
# OK means the device serves no state; a reader treats unknown values as not OK.
DEVICE_OK, DEVICE_LOST = "ok", "lost"
DEVICE_STATUSES = (DEVICE_OK, DEVICE_LOST)
UNIT_NAMES = ("ratio", "W", "C", "bytes", "Hz", "B/s", "count", "mask")
PARTITION_KINDS = ("whole", "mig", "xcp")
LAYOUT_SOURCES = ("probe", "vendor", "mock", "none")
STATE_NAMES = ("idle", "active", "saturated", "thrashing")
IDLE, ACTIVE, SATURATED, THRASHING = range(4)
# Levels a counter can be measured at besides the device's own hierarchy.
PARTITION_LEVEL = "partition"
DEVICE_LEVEL = "device"
# The agent refuses larger sync requests (ZMQ_MAXMSGSIZE on the sync socket).
MAX_SYNC_REQUEST_BYTES = 64 * 1024
# A request is a flat map ({"op": str, "prefix": str}); anything nested deeper is refused
# before any code walks it.
MAX_REQUEST_DEPTH = 8
# The longest topic the grammar allows (§2), in bytes: cua1/event/<node: 64 ASCII>/<device: 128
# characters, up to 4 bytes each in UTF-8>/.
MAX_TOPIC_BYTES = len("cua1/event/") + 64 + 1 + 128 * 4 + 1
# Counters whose values are whole numbers by nature: sent as msgpack ints, not floats.
_INTEGRAL_UNITS = frozenset(("bytes", "count", "mask"))
_UINT64_MAX = (1 << 64) - 1

NODE_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
# A device id is one topic component: anything but '/', non-empty.
_DEVICE_RE = re.compile(r"[^/\x00]{1,128}")


class ProtocolError(ValueError):
    """A frame, header or body that does not follow PROTOCOL.md; ``field`` names the culprit."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason


# --------------------------------------------------------------------------- msgpack


def pack(obj: Any) -> bytes:
    """msgpack with str as str and bytes as bin, floats as float64 (so re-encoding is exact)."""
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data: bytes, field_name: str = "frame") -> Any:
    try:
        # strict_map_key=False: we validate key types ourselves and name the field when wrong.
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, TypeError) as e:
        raise ProtocolError(field_name, f"not valid msgpack ({_msgpack_error(e)})") from None


def unpack_request(data: bytes) -> Any:
    """A sync request (§5), from anyone: at most MAX_SYNC_REQUEST_BYTES, map keys only str or
    bin (their hashes are randomised, so crafted colliding keys cannot make a 64 KiB map cost
    seconds to build), nested at most MAX_REQUEST_DEPTH deep."""
    if len(data) > MAX_SYNC_REQUEST_BYTES:
        raise ProtocolError("request", f"{len(data)} bytes exceeds {MAX_SYNC_REQUEST_BYTES}")
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, TypeError) as e:
        raise ProtocolError("request", f"not valid msgpack ({_msgpack_error(e)})") from None
    if _depth_exceeds(value, MAX_REQUEST_DEPTH):
        raise ProtocolError("request", f"nested deeper than {MAX_REQUEST_DEPTH} levels")
    return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether containers nest deeper than ``limit``; iterative, so depth costs no stack."""
    stack = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            items: Iterable[Any] = v.values()
        elif isinstance(v, list):
            items = v
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((item, depth + 1) for item in items)
    return False


_DESCRIBE_CHARS = 64


def _msgpack_error(e: Exception) -> str:
    # StackError ("nested too deeply for the unpacker") carries no message of its own.
    text = str(e) or type(e).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def describe(value: Any) -> str:
    """A value from the wire, for an error message: its repr when it is a short scalar,
    otherwise its msgpack type and size. Never recursive (a value nested 1,000 deep must not
    exhaust the stack) and never long (a 64 KiB string is not echoed back)."""
    if value is None or isinstance(value, (bool, float)):
        return repr(value)
    if isinstance(value, int):
        return repr(value) if -(1 << 64) < value < (1 << 64) else "an int wider than 64 bits"
    if isinstance(value, str):
        if len(value) <= _DESCRIBE_CHARS:
            return repr(value)
        return f"{value[:_DESCRIBE_CHARS]!r}... ({len(value)} characters)"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"bin of {len(value)} bytes"
    if isinstance(value, msgpack.ExtType):  # a tuple: test before arrays
        return f"ext type {value.code} of {len(value.data)} bytes"
    if isinstance(value, (list, tuple)):
        return f"array of {len(value)} items"
    if isinstance(value, dict):
        return f"map of {len(value)} entries"
    return type(value).__name__


# --------------------------------------------------------------------------- topics


class Topic(NamedTuple):
    kind: str
    node: str
    device: Optional[str] = None

    def __str__(self) -> str:
        return build_topic(self.kind, self.node, self.device)


def check_node(node: Any, field_name: str = "node") -> str:
    if not isinstance(node, str) or not NODE_RE.fullmatch(node):
        raise ProtocolError(field_name, f"{describe(node)} does not match {NODE_RE.pattern}")
    return node


def sanitize_node(name: str) -> str:
    """Turn a host name into a valid node name (invalid characters become '-', max 64).

    Raises ProtocolError when nothing usable is left (e.g. an empty name)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", name)[:64]
    return check_node(cleaned)


def build_topic(kind: str, node: str, device: Optional[str] = None) -> str:
    if kind not in KINDS:
        raise ProtocolError("topic.kind", f"{describe(kind)} is not one of {KINDS}")
    check_node(node, "topic.node")
    if device is None:
        return f"{PREFIX}{kind}/{node}/"
    if not isinstance(device, str) or not _DEVICE_RE.fullmatch(device):
        raise ProtocolError("topic.device", f"{describe(device)} is not a valid device id")
    return f"{PREFIX}{kind}/{node}/{device}/"


def parse_topic(raw: bytes | str) -> Topic:
    if isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("topic", "not UTF-8") from None
    elif isinstance(raw, str):
        text = raw
    else:
        raise ProtocolError("topic", f"expected bytes or str, got {type(raw).__name__}")
    if not text.startswith(PREFIX) or not text.endswith("/"):
        raise ProtocolError("topic", f"{describe(text)} is not cua1/<kind>/<node>/[<device>/]")
    parts = text[len(PREFIX) : -1].split("/")
    if len(parts) not in (2, 3):
        raise ProtocolError("topic", f"{describe(text)} has {len(parts)} components after cua1/, expected 2 or 3")
    kind, node = parts[0], parts[1]
    if kind not in KINDS:
        raise ProtocolError("topic.kind", f"{describe(kind)} is not one of {KINDS}")
    check_node(node, "topic.node")
    device = parts[2] if len(parts) == 3 else None
    if device is not None and not _DEVICE_RE.fullmatch(device):
        raise ProtocolError("topic.device", f"{describe(device)} is not a valid device id")
    if kind in ("topo", "hb") and device is not None:
        raise ProtocolError("topic", f"{kind} topics are per node, got device {describe(device)}")
    if kind == "state" and device is None:
        raise ProtocolError("topic", "state topics name a device")
    return Topic(kind, node, device)


_NODE_PART_RE = re.compile(r"[A-Za-z0-9._-]{0,64}")


def prefix_could_match(prefix: bytes, node: Optional[str] = None) -> bool:
    """Whether some topic of the grammar (§2), of ``node`` when given, starts with ``prefix``:
    what a feed subscription must be to ever receive anything from this server."""
    try:
        # Not final: a prefix may end inside a device id's multi-byte character.
        text = codecs.getincrementaldecoder("utf-8")().decode(prefix, final=False)
    except UnicodeDecodeError:
        return False
    if len(text) <= len(PREFIX):
        return PREFIX.startswith(text)
    if not text.startswith(PREFIX):
        return False
    parts = text[len(PREFIX):].split("/")
    kind = parts[0]
    if len(parts) == 1:
        return any(k.startswith(kind) for k in KINDS)
    if kind not in KINDS:
        return False
    if len(parts) == 2:  # inside the node
        return node.startswith(parts[1]) if node is not None else bool(_NODE_PART_RE.fullmatch(parts[1]))
    if not NODE_RE.fullmatch(parts[1]) or (node is not None and parts[1] != node):
        return False
    device = parts[2]
    if len(parts) == 3:  # right after the node's '/', or inside the device
        return device == "" or (kind in ("state", "event") and len(device) <= 128 and "\x00" not in device)
    return len(parts) == 4 and parts[3] == "" and kind in ("state", "event") and bool(_DEVICE_RE.fullmatch(device))


def node_prefixes(node: str) -> list[str]:
    """The topic prefixes that together cover everything a node publishes."""
    return [f"{PREFIX}{kind}/{node}/" for kind in KINDS]


# --------------------------------------------------------------------------- header


@dataclass(frozen=True)
class Header:
    node: str
    epoch: int
    seq: int
    ts: int
    gen: int
    v: int = VERSION

    def to_map(self) -> dict[str, Any]:
        return {"v": self.v, "node": self.node, "epoch": self.epoch, "seq": self.seq, "ts": self.ts, "gen": self.gen}


def new_epoch() -> int:
    """A random non-zero 64-bit epoch: a new one means every earlier message is void."""
    return secrets.randbits(64) or 1


def _uint64(value: Any, field_name: str) -> int:
    if type(value) is not int or not 0 <= value <= _UINT64_MAX:
        raise ProtocolError(field_name, f"expected uint64, got {describe(value)}")
    return value


def header_from_map(m: Any) -> Header:
    if not isinstance(m, dict):
        raise ProtocolError("header", f"expected a map, got {type(m).__name__}")
    for key in ("v", "node", "epoch", "seq", "ts", "gen"):
        if key not in m:
            raise ProtocolError(f"header.{key}", "missing")
    if type(m["v"]) is not int:
        raise ProtocolError("header.v", f"expected int, got {describe(m['v'])}")
    if m["v"] != VERSION:
        raise ProtocolError("header.v", f"unsupported protocol version {describe(m['v'])} (this is {VERSION})")
    node = check_node(m["node"], "header.node")
    epoch = _uint64(m["epoch"], "header.epoch")
    seq = _uint64(m["seq"], "header.seq")
    if seq < 1:
        raise ProtocolError("header.seq", "seq starts at 1")
    if type(m["ts"]) is not int:
        raise ProtocolError("header.ts", f"expected int ns, got {describe(m['ts'])}")
    gen = _uint64(m["gen"], "header.gen")
    if gen < 1:
        raise ProtocolError("header.gen", "gen starts at 1")
    return Header(node=node, epoch=epoch, seq=seq, ts=m["ts"], gen=gen, v=m["v"])


def encode_header(h: Header) -> bytes:
    return pack(h.to_map())


def decode_header(data: bytes) -> Header:
    return header_from_map(unpack(data, "header"))


# --------------------------------------------------------------------------- decoded types


# The topology types are shared with the engine: one definition of a device.
Device = DeviceTopology


@dataclass
class AgentInfo:
    version: str
    host: str
    pid: int
    started_ns: int


@dataclass
class Topo:
    agent: AgentInfo
    devices: list[Device]
    # device id -> `status` (§3.1); a device the body gives no status is OK. Kept beside the
    # devices, not in them: a status is not topology (it changes no `gen`).
    status: dict[str, str] = field(default_factory=dict)

    def device_status(self, device_id: str) -> str:
        return self.status.get(device_id, DEVICE_OK)


Stat = CounterStat  # a counter's window mean and max, float32 arrays


@dataclass
class State:
    """One device's window as carried by a ``state`` body (attribute names as the engine's).

    ``levels[level][counter]`` is a :class:`Stat`; ``levels[level]["state"]`` a uint8 array."""

    window_ns: int
    samples: int
    levels: dict[str, dict[str, Any]]
    partition: dict[str, dict[str, float]]
    device: dict[str, float]
    idle_units: Optional[float]  # None when nothing measures activity
    processes: Optional[list[dict[str, Any]]] = None
    # Kubernetes containers holding the device (kubelet PodResources); None: not known.
    pods: Optional[list[dict[str, Any]]] = None


@dataclass
class Heartbeat:
    seqs: dict[str, int]
    rate_hz: float
    dropped: int
    uptime_s: float


@dataclass
class Event:
    type: str
    detail: str
    device: Optional[str] = None
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- encoding


def _f32(values: Any) -> bytes:
    return np.ascontiguousarray(values, dtype="<f4").tobytes()


def _u16(values: Any) -> bytes:
    return np.ascontiguousarray(values, dtype="<u2").tobytes()


def _u8(values: Any) -> bytes:
    return np.ascontiguousarray(values, dtype="u1").tobytes()


def _scalar(value: Any, unit: Optional[str]) -> Any:
    v = float(value)
    if unit in _INTEGRAL_UNITS and v.is_integer():
        return int(v)
    return v


def _measured(value: Any) -> bool:
    # NaN is the engine's "no data": such a counter is absent on the wire, never zero.
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def encode_device(d: Any) -> dict[str, Any]:
    """A topo ``Device`` map from an engine DeviceTopology (or a decoded :class:`Device`)."""
    m: dict[str, Any] = {
        "id": str(d.id),
        "index": int(d.index),
        "vendor": str(d.vendor),
        "model": str(d.model),
        "backend": str(d.backend),
        "unit": str(d.unit),
        "units": int(d.units),
        "levels": [str(level) for level in d.levels],
    }
    layout = getattr(d, "layout", None) or {}
    if layout:
        m["layout"] = {str(level): _u16(arr) for level, arr in layout.items()}
    m["layout_source"] = str(d.layout_source)
    # A coarser level whose size the backend does not know (NVML without the SM layout
    # probe reports 0 GPCs/TPCs) has no count: absent, never a made-up number.
    m["counts"] = {str(k): int(v) for k, v in d.counts.items()}
    parts = []
    for p in d.partitions:
        pm: dict[str, Any] = {
            "id": str(p.id),
            "kind": str(p.kind),
            "units": int(p.units),
            "memory_bytes": int(p.memory_bytes),
            "profile": str(p.profile or ""),
        }
        unit_ids = getattr(p, "unit_ids", None)
        if unit_ids is not None and len(unit_ids):
            pm["unit_ids"] = _u16(unit_ids)
        parts.append(pm)
    m["partitions"] = parts
    m["memory_bytes"] = int(d.memory_bytes)
    pci = getattr(d, "pci", None)
    if pci:
        m["pci"] = str(pci)
    numa = getattr(d, "numa", None)
    if numa is not None and int(numa) >= 0:
        m["numa"] = int(numa)
    m["counters"] = {
        str(name): {"level": str(c.level), "unit": str(c.unit), "help": str(c.help or "")}
        for name, c in d.counters.items()
    }
    m["links"] = [
        {"peer": str(link.peer), "type": str(link.type), "count": int(link.count), "path": str(link.path)}
        for link in (getattr(d, "links", None) or [])
    ]
    return m


def encode_topo_body(devices: Iterable[Any], agent: AgentInfo | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(agent, AgentInfo):
        agent_map = {"version": agent.version, "host": agent.host, "pid": agent.pid, "started_ns": agent.started_ns}
    else:
        agent_map = dict(agent)
    return {"agent": agent_map, "devices": [encode_device(d) for d in devices]}


def with_device_status(topo_body: Mapping[str, Any], lost: Iterable[str]) -> dict[str, Any]:
    """``topo_body`` with every device's ``status`` (§3.1): ``lost`` for the ids in ``lost``,
    else ``ok``. A copy: the agent compares status-free bodies to detect topology changes."""
    lost = set(lost)
    devices = [dict(d, status=DEVICE_LOST if d["id"] in lost else DEVICE_OK) for d in topo_body["devices"]]
    return dict(topo_body, devices=devices)


def encode_state_body(
    s: Any, counters: Optional[Mapping[str, Any]] = None, processes: Optional[Iterable[Mapping[str, Any]]] = None,
    pods: Optional[Iterable[Mapping[str, Any]]] = None,
) -> dict[str, Any]:
    """A ``state`` map from an engine DeviceState (or a decoded :class:`State`).

    ``counters`` (the device's topo counters) lets whole-number quantities (bytes, counts,
    bitmasks) go out as ints; NaN or None values are left out (absent, never zero).
    ``processes`` (the backend's slow path) overrides ``s.processes``; None means the backend
    cannot list processes and the key is left out, while an empty list means it can and
    nothing runs. A device without sub-device counters carries no ``levels`` key (§3.2).
    ``pods`` (kubelet PodResources attribution) follows the same rule: None leaves the key
    out (no kubelet socket), an empty list says no container holds the device."""
    units = {name: c.unit for name, c in counters.items()} if counters else {}
    # The topo declares each counter at the level where it is measured (§3.1), and a state
    # carries only declared counters, at their declared level. The engine's rollups are
    # declared counters already (each CounterSpec.rollup is declared at "partition" level by
    # DeviceTopology.from_description), so this filter drops nothing the engine computes; it
    # keeps a hand-built or foreign state honest. ``device`` keeps device counters and the
    # device-wide value of partition counters (e.g. ``sm_active``, which §3.2's idle_units
    # rule reads there).
    declared = {name: c.level for name, c in counters.items()} if counters else None

    def on_wire(name: Any, allowed: tuple[str, ...]) -> bool:
        return declared is None or declared.get(name) in allowed
    levels: dict[str, Any] = {}
    for level, entries in s.levels.items():
        lm: dict[str, Any] = {}
        for name, value in entries.items():
            if name == "state":
                lm["state"] = _u8(value)
            else:
                lm[name] = {"mean": _f32(value.mean), "max": _f32(value.max)}
        levels[str(level)] = lm
    partition = {
        str(pid): {str(k): _scalar(v, units.get(k)) for k, v in values.items()
                   if _measured(v) and on_wire(k, (PARTITION_LEVEL,))}
        for pid, values in s.partition.items()
    }
    device = {str(k): _scalar(v, units.get(k)) for k, v in s.device.items()
              if _measured(v) and on_wire(k, (DEVICE_LEVEL, PARTITION_LEVEL))}
    body: dict[str, Any] = {"window_ns": int(s.window_ns), "samples": int(s.samples)}
    if levels:
        body["levels"] = levels
    body["partition"] = partition
    body["device"] = device
    # None: no counter to estimate it from; absent rather than invented.
    if getattr(s, "idle_units", None) is not None and not math.isnan(s.idle_units):
        body["idle_units"] = float(s.idle_units)
    if processes is None:
        processes = getattr(s, "processes", None)
    if processes is not None:
        body["processes"] = [_process(p) for p in processes]
    if pods is not None:
        body["pods"] = [_pod(p) for p in pods]
    return body


_POD_KEYS = ("namespace", "pod", "container", "resource")


def _pod(p: Mapping[str, Any]) -> dict[str, Any]:
    """One ``pods`` entry (§3.2): the four names as strings, ``partition`` where it is one."""
    out = {k: str(p[k]) for k in _POD_KEYS}
    if p.get("partition") is not None:
        out["partition"] = str(p["partition"])
    return out


def _process(p: Mapping[str, Any]) -> dict[str, Any]:
    """One ``processes`` entry with the wire types of §3.2; unknown fields are left out."""
    out: dict[str, Any] = {"pid": int(p["pid"])}
    if p.get("sm") is not None and _measured(p["sm"]):
        out["sm"] = float(p["sm"])
    if p.get("mem") is not None and int(p["mem"]) >= 0:
        out["mem"] = int(p["mem"])
    out["name"] = str(p.get("name") or "")
    return out


def encode_hb_body(seqs: Mapping[str, int], rate_hz: float, dropped: int, uptime_s: float) -> dict[str, Any]:
    return {"seqs": dict(seqs), "rate_hz": float(rate_hz), "dropped": int(dropped), "uptime_s": float(uptime_s)}


def encode_event_body(type: str, detail: str, device: Optional[str] = None, **extra: Any) -> dict[str, Any]:
    if type not in EVENT_TYPES:
        raise ProtocolError("event.type", f"{type!r} is not one of {EVENT_TYPES}")
    body: dict[str, Any] = {"type": type, "detail": str(detail)}
    if device is not None:
        body["device"] = str(device)
    body.update(extra)
    return body


def encode_frames(topic: str, header: Header, body: Mapping[str, Any]) -> list[bytes]:
    """The three feed frames of one message."""
    return [topic.encode("utf-8"), encode_header(header), pack(body)]


# --------------------------------------------------------------------------- decoding helpers


def _get(m: Mapping[str, Any], key: str, types: Any, where: str, optional: bool = False) -> Any:
    if key not in m:
        if optional:
            return None
        raise ProtocolError(f"{where}.{key}", "missing")
    value = m[key]
    # bool is an int subclass: never accept it where a number is expected.
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ProtocolError(f"{where}.{key}", f"expected {_type_names(types)}, got bool")
    if not isinstance(value, types):
        raise ProtocolError(f"{where}.{key}", f"expected {_type_names(types)}, got {type(value).__name__}")
    return value


def _type_names(types: Any) -> str:
    if isinstance(types, tuple):
        return " or ".join(t.__name__ for t in types)
    return types.__name__


def _map(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(where, f"expected a map, got {type(value).__name__}")
    for k in value:
        if not isinstance(k, str):
            raise ProtocolError(where, f"map key {describe(k)} is not a string")
    return value


def _array(value: Any, dtype: str, n: Optional[int], where: str) -> np.ndarray:
    if not isinstance(value, bytes):
        raise ProtocolError(where, f"expected bin, got {type(value).__name__}")
    itemsize = np.dtype(dtype).itemsize
    if len(value) % itemsize:
        raise ProtocolError(where, f"{len(value)} bytes is not a whole number of {dtype} elements")
    arr = np.frombuffer(value, dtype)
    if n is not None and arr.shape[0] != n:
        raise ProtocolError(where, f"{arr.shape[0]} elements, expected {n}")
    return arr


_NUMBER = (int, float)


# --------------------------------------------------------------------------- decoding bodies


def decode_device(m: Any, where: str = "device") -> Device:
    m = _map(m, where)
    units = _get(m, "units", int, where)
    levels = _get(m, "levels", list, where)
    if not levels or not all(isinstance(x, str) for x in levels):
        raise ProtocolError(f"{where}.levels", "expected a non-empty list of strings")
    unit = _get(m, "unit", str, where)
    if levels[-1] != unit:
        raise ProtocolError(f"{where}.levels", f"last level {describe(levels[-1])} is not the unit {describe(unit)}")
    counts = _map(_get(m, "counts", dict, where), f"{where}.counts")
    for level in levels:
        if type(counts.get(level)) is not int or counts[level] < 1:
            raise ProtocolError(f"{where}.counts.{level}", f"expected a positive int, got {describe(counts.get(level))}")
    if counts[unit] != units:
        raise ProtocolError(f"{where}.counts.{unit}", f"{counts[unit]} differs from units {units}")
    layout: dict[str, np.ndarray] = {}
    raw_layout = _get(m, "layout", dict, where, optional=True)
    if raw_layout is not None:
        for level, arr in _map(raw_layout, f"{where}.layout").items():
            if level not in levels[:-1]:
                raise ProtocolError(f"{where}.layout.{level}", "not one of the device's coarser levels")
            layout[level] = _array(arr, "<u2", units, f"{where}.layout.{level}")
    layout_source = _get(m, "layout_source", str, where)
    partitions = []
    raw_parts = _get(m, "partitions", list, where)
    if not raw_parts:
        raise ProtocolError(f"{where}.partitions", "at least one partition is required")
    for i, p in enumerate(raw_parts):
        pw = f"{where}.partitions[{i}]"
        p = _map(p, pw)
        unit_ids = p.get("unit_ids")
        partitions.append(
            PartitionInfo(
                id=_get(p, "id", str, pw),
                kind=_get(p, "kind", str, pw),
                units=_get(p, "units", int, pw),
                memory_bytes=_get(p, "memory_bytes", int, pw, optional=True) or 0,
                profile=_get(p, "profile", str, pw, optional=True) or "",
                unit_ids=None if unit_ids is None else _array(unit_ids, "<u2", None, f"{pw}.unit_ids"),
            )
        )
    counters = {}
    for name, c in _map(_get(m, "counters", dict, where), f"{where}.counters").items():
        cw = f"{where}.counters.{name}"
        c = _map(c, cw)
        level = _get(c, "level", str, cw)
        if level not in levels and level not in (PARTITION_LEVEL, DEVICE_LEVEL):
            raise ProtocolError(f"{cw}.level", f"{describe(level)} is not a level of this device, partition or device")
        counters[name] = CounterInfo(level, _get(c, "unit", str, cw), _get(c, "help", str, cw, optional=True) or "")
    links = []
    for i, link in enumerate(_get(m, "links", list, where, optional=True) or []):
        lw = f"{where}.links[{i}]"
        link = _map(link, lw)
        links.append(
            LinkInfo(_get(link, "peer", str, lw), _get(link, "type", str, lw), _get(link, "count", int, lw), _get(link, "path", str, lw))
        )
    return Device(
        id=_get(m, "id", str, where),
        index=_get(m, "index", int, where),
        vendor=_get(m, "vendor", str, where),
        model=_get(m, "model", str, where),
        backend=_get(m, "backend", str, where),
        unit=unit,
        units=units,
        levels=list(levels),
        counts={k: counts[k] for k in levels if k in counts},
        layout=layout,
        layout_source=layout_source,
        partitions=partitions,
        memory_bytes=_get(m, "memory_bytes", int, where),
        counters=counters,
        links=links,
        pci=_get(m, "pci", str, where, optional=True),
        numa=_get(m, "numa", int, where, optional=True),
    )


def decode_topo_body(m: Any) -> Topo:
    m = _map(m, "topo")
    a = _map(_get(m, "agent", dict, "topo"), "topo.agent")
    agent = AgentInfo(
        version=_get(a, "version", str, "topo.agent"),
        host=_get(a, "host", str, "topo.agent"),
        pid=_get(a, "pid", int, "topo.agent"),
        started_ns=_get(a, "started_ns", int, "topo.agent"),
    )
    raw = _get(m, "devices", list, "topo")
    devices = [decode_device(d, f"topo.devices[{i}]") for i, d in enumerate(raw)]
    ids = [d.id for d in devices]
    if len(set(ids)) != len(ids):
        raise ProtocolError("topo.devices", f"duplicate device ids in {ids}")
    status = {}
    for i, (d, dm) in enumerate(zip(devices, raw)):
        value = _get(dm, "status", str, f"topo.devices[{i}]", optional=True)
        if value is not None:
            status[d.id] = value
    return Topo(agent, devices, status)


_F32: np.dtype = np.dtype("<f4")
_U8: np.dtype = np.dtype("u1")
_NUMBER_TYPES = (int, float)


class _Unusual(Exception):
    """Raised by a fast path to hand over to the checking path (which names the problem)."""


def decode_state_body(m: Any, device: Optional[Device] = None) -> State:
    """Decode a ``state`` map; with the device's topology, also check it against ``topo``
    (levels and counters it declares, array lengths equal to ``counts``).

    States are the bulk of the feed, so well-formed bodies take a lean path with the same
    checks; anything unusual is re-decoded by the careful path, which names the bad field."""
    try:
        return _decode_state_fast(m, device)
    except Exception:  # noqa: BLE001 — the careful path raises the proper ProtocolError
        return _decode_state_checked(m, device)


def _numbers(values: Any) -> dict[str, Any]:
    for k, v in values.items():
        if type(k) is not str or type(v) not in _NUMBER_TYPES:
            raise _Unusual
    return values


def _decode_state_fast(m: dict, device: Optional[Device]) -> State:
    counts = device.counts if device is not None else None
    counters = device.counters if device is not None else None
    levels: dict[str, dict[str, Any]] = {}
    for level, entries in (m.get("levels") or {}).items():
        if type(level) is not str:
            raise _Unusual
        n = counts[level] if counts is not None else -1
        out: dict[str, Any] = {}
        for name, value in entries.items():
            if name == "state":
                arr = np.frombuffer(value, _U8)
                if n >= 0 and arr.shape[0] != n:
                    raise _Unusual
                out[name] = arr
                continue
            if counters is not None and counters[name].level != level:
                raise _Unusual
            mean, mx = np.frombuffer(value["mean"], _F32), np.frombuffer(value["max"], _F32)
            if mean.shape[0] != mx.shape[0] or (n >= 0 and mean.shape[0] != n) or len(value) != 2 or type(name) is not str:
                raise _Unusual
            out[name] = Stat(mean, mx)
        levels[level] = out
    partition = {pid: _numbers(vals) for pid, vals in m["partition"].items()}
    if not all(type(pid) is str for pid in partition):
        raise _Unusual
    window_ns, samples, idle = m["window_ns"], m["samples"], m.get("idle_units")
    processes, pods = m.get("processes"), m.get("pods")
    if type(window_ns) is not int or type(samples) is not int or (idle is not None and type(idle) not in _NUMBER_TYPES) \
            or (processes is not None and type(processes) is not list) or (pods is not None and (type(pods) is not list or not all(type(p) is dict for p in pods))):
        raise _Unusual
    return State(window_ns, samples, levels, partition, _numbers(m["device"]), None if idle is None else float(idle),
                 processes, pods)


def _decode_state_checked(m: Any, device: Optional[Device] = None) -> State:
    m = _map(m, "state")
    levels: dict[str, dict[str, Any]] = {}
    for level, entries in _map(_get(m, "levels", dict, "state", optional=True) or {}, "state.levels").items():
        lw = f"state.levels.{level}"
        n = None
        if device is not None:
            if level not in device.counts:
                raise ProtocolError(lw, f"not a level of device {device.id} ({device.levels})")
            n = device.counts[level]
        out: dict[str, Any] = {}
        for name, value in _map(entries, lw).items():
            if name == "state":
                out["state"] = _array(value, "u1", n, f"{lw}.state")
                continue
            cw = f"{lw}.{name}"
            if device is not None:
                info = device.counters.get(name)
                if info is None or info.level != level:
                    raise ProtocolError(cw, f"topo declares no counter {describe(name)} at level {describe(level)}")
            value = _map(value, cw)
            mean = _array(_get(value, "mean", bytes, cw), "<f4", n, f"{cw}.mean")
            out[name] = Stat(mean, _array(_get(value, "max", bytes, cw), "<f4", mean.shape[0], f"{cw}.max"))
        levels[level] = out
    partition: dict[str, dict[str, float]] = {}
    for pid, values in _map(_get(m, "partition", dict, "state"), "state.partition").items():
        pw = f"state.partition.{pid}"
        for k, v in _map(values, pw).items():
            if isinstance(v, bool) or not isinstance(v, _NUMBER):
                raise ProtocolError(f"{pw}.{k}", f"expected a number, got {describe(v)}")
        partition[pid] = values
    dev = _map(_get(m, "device", dict, "state"), "state.device")
    for k, v in dev.items():
        if isinstance(v, bool) or not isinstance(v, _NUMBER):
            raise ProtocolError(f"state.device.{k}", f"expected a number, got {describe(v)}")
    processes = _get(m, "processes", list, "state", optional=True)
    pods = _get(m, "pods", list, "state", optional=True)
    for i, p in enumerate(pods or []):
        pw = f"state.pods[{i}]"
        for key in _POD_KEYS:
            _get(_map(p, pw), key, str, pw)
    return State(
        window_ns=_get(m, "window_ns", int, "state"),
        samples=_get(m, "samples", int, "state"),
        levels=levels,
        partition=partition,
        device=dev,
        idle_units=_optional_float(_get(m, "idle_units", _NUMBER, "state", optional=True)),
        processes=processes,
        pods=pods,
    )


def _optional_float(v: Any) -> Optional[float]:
    return None if v is None else float(v)


def decode_hb_body(m: Any) -> Heartbeat:
    m = _map(m, "hb")
    seqs = _map(_get(m, "seqs", dict, "hb"), "hb.seqs")
    for topic, seq in seqs.items():
        _uint64(seq, f"hb.seqs.{topic}")
    return Heartbeat(
        seqs=seqs,
        rate_hz=float(_get(m, "rate_hz", _NUMBER, "hb")),
        dropped=_get(m, "dropped", int, "hb"),
        uptime_s=float(_get(m, "uptime_s", _NUMBER, "hb")),
    )


def decode_event_body(m: Any) -> Event:
    m = _map(m, "event")
    known = {"type", "detail", "device"}
    return Event(
        type=_get(m, "type", str, "event"),
        detail=_get(m, "detail", str, "event"),
        device=_get(m, "device", str, "event", optional=True),
        extra={k: v for k, v in m.items() if k not in known},
    )


# --------------------------------------------------------------------------- whole messages


@dataclass
class Message:
    """One decoded feed message. ``frames`` keeps the original bytes (relays re-serve them)."""

    topic: Topic
    topic_str: str
    header: Header
    body: Any  # Topo | State | Heartbeat | Event
    frames: Sequence[bytes]


def decode_body(kind: str, body_map: Any, device: Optional[Device] = None) -> Any:
    if kind == "state":
        return decode_state_body(body_map, device)
    if kind == "topo":
        return decode_topo_body(body_map)
    if kind == "hb":
        return decode_hb_body(body_map)
    return decode_event_body(body_map)


# A feed repeats the same few topics: parse each once. Bounded, so that a flood of distinct
# (even invalid) topics cannot grow it without limit.
_TOPIC_CACHE: dict[bytes, tuple[Topic, str]] = {}
_TOPIC_CACHE_MAX = 65536


def _cached_topic(raw: bytes) -> tuple[Topic, str]:
    hit = _TOPIC_CACHE.get(raw)
    if hit is None:
        topic = parse_topic(raw)
        if len(_TOPIC_CACHE) >= _TOPIC_CACHE_MAX:
            _TOPIC_CACHE.clear()
        hit = _TOPIC_CACHE[bytes(raw)] = (topic, bytes(raw).decode())
    return hit


def decode_envelope(frames: Sequence[bytes]) -> tuple[Topic, str, Header, Any]:
    """Topic and header, checked; the body is unpacked but not yet decoded (needs the topo)."""
    if len(frames) != 3:
        raise ProtocolError("message", f"{len(frames)} frames, expected 3 (topic, header, body)")
    topic, topic_str = _cached_topic(frames[0])
    header = decode_header(frames[1])
    if header.node != topic.node:
        raise ProtocolError("header.node", f"{header.node!r} differs from the topic's node {topic.node!r}")
    body = unpack(frames[2], "body")
    return topic, topic_str, header, body


def decode_message(frames: Sequence[bytes], device: Optional[Device] = None) -> Message:
    topic, topic_str, header, body_map = decode_envelope(frames)
    return Message(topic, topic_str, header, decode_body(topic.kind, body_map, device), frames)


# --------------------------------------------------------------------------- sync requests/replies


def snapshot_reply(epoch: int, messages: Iterable[Sequence[bytes]], seqs: Mapping[str, int], **extra: Any) -> bytes:
    """Pack a snapshot reply around already-encoded header/body frames, so that the maps in
    the reply are byte-for-byte those that went out on the feed (and a relay re-serves its
    upstream's frames untouched)."""
    packer = msgpack.Packer(use_bin_type=True)
    msgs = list(messages)
    out = [packer.pack_map_header(4 + len(extra)), packer.pack("ok"), packer.pack(True)]
    out += [packer.pack("epoch"), packer.pack(epoch), packer.pack("messages"), packer.pack_array_header(len(msgs))]
    for topic, header, body in msgs:
        topic_str = topic.decode() if isinstance(topic, bytes) else topic
        out += [packer.pack_array_header(3), packer.pack(topic_str), bytes(header), bytes(body)]
    out += [packer.pack("seqs"), packer.pack(dict(seqs))]
    for k, v in extra.items():
        out += [packer.pack(k), packer.pack(v)]
    return b"".join(out)


def error_reply(reason: str) -> bytes:
    return pack({"ok": False, "error": reason})


@dataclass
class Snapshot:
    epoch: int
    messages: list[list[bytes]]  # [topic, header, body] re-encoded frames
    seqs: dict[str, int]
    extra: dict[str, Any]


def decode_snapshot_reply(data: bytes) -> Snapshot:
    m = _map(unpack(data, "reply"), "reply")
    ok = m.get("ok")
    if ok is not True:
        raise ProtocolError("reply", f"snapshot refused: {describe(m.get('error', m))}")
    seqs = _map(_get(m, "seqs", dict, "reply"), "reply.seqs")
    for topic, seq in seqs.items():
        _uint64(seq, f"reply.seqs.{topic}")
    messages = []
    for i, item in enumerate(_get(m, "messages", list, "reply")):
        if not isinstance(item, list) or len(item) != 3:
            raise ProtocolError(f"reply.messages[{i}]", "expected [topic, header, body]")
        topic, header, body = item
        if not isinstance(topic, str):
            raise ProtocolError(f"reply.messages[{i}][0]", "topic is not a string")
        # Re-encode: the agent packs with the same msgpack conventions, so these are the
        # feed's bytes again, and relays/clients handle snapshot and feed messages alike.
        messages.append([topic.encode("utf-8"), pack(header), pack(body)])
    extra = {k: v for k, v in m.items() if k not in ("ok", "epoch", "messages", "seqs")}
    return Snapshot(epoch=_get(m, "epoch", int, "reply"), messages=messages, seqs=seqs, extra=extra)
