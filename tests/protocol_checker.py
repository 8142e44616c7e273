"""A conformance checker for the cuagent feed, written from docs/PROTOCOL.md alone.

It deliberately does not import cuagent.protocol (or anything from cuagent): it is the second,
independent reading of the page, so an encoder bug cannot hide behind a decoder with the same
bug. Only msgpack and numpy, like the foreign client the page promises to serve.

Usage: ``checker = FeedChecker(); checker.feed(frames)`` for every feed message (in arrival
order, from one connection), ``checker.snapshot_reply(bytes)`` for sync replies. Each problem
raises ``ProtocolViolation`` naming the topic and field.
"""

from __future__ import annotations

import math
import re
import struct

import msgpack
import numpy as np

NODE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
KINDS = {"topo", "state", "hb", "event", "sum"}
# §8: any other kind of this shape is a newer agent's, to be ignored.
KIND_SHAPE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# §3.5, layout 1: 5 f32, 6 u16, 3 u8, then 12 u8 group counts; 47 bytes, little-endian, packed.
SUM_RECORD = struct.Struct("<5f6H3B12B")
SUM_FLOAT_FIELDS = ("idle_units", "sm_active", "mem_used", "power", "temp")
SUM_STATES, SUM_GROUPS, SUM_WINDOW = 1, 2, 4
UNITS = {"ratio", "W", "C", "bytes", "Hz", "B/s", "count", "mask"}
EVENT_TYPES = {"device_lost", "device_back", "backend_error", "topology_changed", "throttle", "xid",
               "node_stale", "node_back", "node_gone", "profiling_paused", "profiling_resumed"}
RELAY_EVENTS = {"node_stale", "node_back", "node_gone"}  # a relay's own, naming a node it forwards (§7)
DEVICE_STATUSES = {"ok", "lost"}
HEADER_KEYS = {"v", "node", "epoch", "seq", "ts", "gen"}
# Counter names that PROTOCOL.md §3.2 calls ratios at partition/device level.
RATIO_DEVICE_COUNTERS = {"sm_active", "sm_occupancy", "tensor_active", "dram_active", "gr_active"}
UNIT_LEVEL_COUNTERS = {"active", "occupancy", "issue", "tensor", "mem_stall"}


class ProtocolViolation(AssertionError):
    pass


def _fail(where, msg):
    raise ProtocolViolation(f"{where}: {msg}")


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x):
    return (isinstance(x, (int, float))) and not isinstance(x, bool)


def _is_u64(x):
    return _is_int(x) and 0 <= x < 2**64


def _unpack(b, where):
    try:
        return msgpack.unpackb(b, raw=False)
    except Exception as e:  # noqa: BLE001 — any decode failure is a violation
        _fail(where, f"not msgpack: {e}")


def _str_map(m, where):
    if not isinstance(m, dict):
        _fail(where, f"not a map: {type(m).__name__}")
    for k in m:
        if not isinstance(k, str):
            _fail(where, f"non-string key {k!r}")
    return m


def _bin(m, key, dtype, n, where):
    if key not in m:
        _fail(where, f"missing {key}")
    b = m[key]
    if not isinstance(b, bytes):
        _fail(f"{where}.{key}", f"not bin but {type(b).__name__}")
    size = np.dtype(dtype).itemsize
    if len(b) != n * size:
        _fail(f"{where}.{key}", f"{len(b)} bytes, expected {n} x {size}")
    return np.frombuffer(b, dtype)


class FeedChecker:
    def __init__(self):
        self.last_seq = {}  # topic -> last seq (per epoch)
        self.epochs = {}  # node -> epoch
        self.gens = {}  # node -> gen
        self.devices = {}  # (node, device id) -> topo Device map
        self.counts = {"topo": 0, "state": 0, "hb": 0, "event": 0, "sum": 0, "unknown": 0}
        self.topo_order = {}  # node -> (gen, [device ids in topo order])
        self.summaries = {}  # node -> (header, [record maps]) of the latest sum
        self.in_snapshot = False

    # ------------------------------------------------------------------ feed
    def feed(self, frames):
        if len(frames) != 3:
            _fail("message", f"{len(frames)} frames, expected exactly 3")
        topic_b, header_b, body_b = frames
        try:
            topic = topic_b.decode("utf-8")
        except UnicodeDecodeError:
            _fail("topic", "not UTF-8")
        kind, node, device = self._topic(topic)
        if kind not in KINDS:
            self.counts["unknown"] += 1  # §8: ignored
            return kind, node, device, None, None
        header = self._header(_unpack(header_b, f"{topic} header"), topic, node)
        body = _str_map(_unpack(body_b, f"{topic} body"), f"{topic} body")
        self._sequence(topic, node, header)
        self.counts[kind] += 1
        getattr(self, f"_{kind}")(topic, node, device, header, body)
        return kind, node, device, header, body

    def _topic(self, topic):
        if not topic.startswith("cua1/") or not topic.endswith("/"):
            _fail(topic, "topic must be cua1/<kind>/<node>/[<device>/]")
        parts = topic.split("/")[1:-1]
        if len(parts) not in (2, 3) or any(p == "" for p in parts):
            _fail(topic, "wrong number of components")
        kind, node = parts[0], parts[1]
        if kind not in KINDS and not KIND_SHAPE.match(kind):
            _fail(topic, f"kind {kind!r} is not [a-z][a-z0-9_]{{0,31}}")
        if not NODE.match(node):
            _fail(topic, f"node {node!r} does not match [A-Za-z0-9._-]{{1,64}}")
        device = parts[2] if len(parts) == 3 else None
        if kind in ("topo", "hb", "sum") and device is not None:
            _fail(topic, f"{kind} topic must be per node")
        if kind == "state" and device is None:
            _fail(topic, "state topic must name a device")
        return kind, node, device

    def _header(self, h, topic, node):
        _str_map(h, f"{topic} header")
        missing = HEADER_KEYS - set(h)
        if missing:
            _fail(f"{topic} header", f"missing {sorted(missing)}")
        if h["v"] != 1 or not _is_int(h["v"]):
            _fail(f"{topic} header.v", f"{h['v']!r} != 1")
        if h["node"] != node:
            _fail(f"{topic} header.node", f"{h['node']!r} differs from topic")
        for k in ("epoch", "seq", "gen"):
            if not _is_u64(h[k]):
                _fail(f"{topic} header.{k}", f"not uint64: {h[k]!r}")
        if h["seq"] < 1 or h["gen"] < 1:
            _fail(f"{topic} header", "seq and gen start at 1")
        if not _is_int(h["ts"]) or h["ts"] < 10**18:
            _fail(f"{topic} header.ts", f"not unix nanoseconds: {h['ts']!r}")
        return h

    def _sequence(self, topic, node, h):
        epoch = self.epochs.get(node)
        if epoch is not None and epoch != h["epoch"]:
            # A restart: all earlier state (seqs, gen, devices) is void.
            for t in [t for t in self.last_seq if t.split("/")[2] == node]:
                del self.last_seq[t]
            self.gens.pop(node, None)
            for key in [k for k in self.devices if k[0] == node]:
                del self.devices[key]
        self.epochs[node] = h["epoch"]
        last = self.last_seq.get(topic)
        # (On a sum topic a jump is allowed, §3.5; going back never is.)
        if last is not None and h["seq"] <= last:
            _fail(topic, f"seq {h['seq']} not above previous {last} in one epoch")
        self.last_seq[topic] = h["seq"]
        gen = self.gens.get(node)
        if gen is not None and h["gen"] < gen:
            _fail(topic, f"gen went backwards {gen} -> {h['gen']}")
        self.gens[node] = h["gen"]

    # ------------------------------------------------------------------ bodies
    def _topo(self, topic, node, _device, h, body):
        agent = _str_map(body.get("agent"), f"{topic} agent")
        for k, t in (("version", str), ("host", str), ("pid", int), ("started_ns", int)):
            if not isinstance(agent.get(k), t):
                _fail(f"{topic} agent.{k}", f"expected {t.__name__}, got {agent.get(k)!r}")
        devices = body.get("devices")
        if not isinstance(devices, list):
            _fail(f"{topic} devices", "not a list")
        ids = set()
        for i, d in enumerate(devices):
            where = f"{topic} devices[{i}]"
            self._device(d, where)
            if d["id"] in ids:
                _fail(where, f"duplicate id {d['id']!r}")
            ids.add(d["id"])
            self.devices[(node, d["id"])] = d
        self.topo_order[node] = (h["gen"], [d["id"] for d in devices])

    def _device(self, d, where):
        _str_map(d, where)
        req = {
            "id": str, "index": int, "vendor": str, "model": str, "backend": str, "unit": str, "units": int,
            "levels": list, "layout_source": str, "counts": dict, "partitions": list, "memory_bytes": int,
            "counters": dict,
        }
        for k, t in req.items():
            if k not in d:
                _fail(where, f"missing {k}")
            if not isinstance(d[k], t) or isinstance(d[k], bool):
                _fail(f"{where}.{k}", f"expected {t.__name__}, got {type(d[k]).__name__}")
        if "/" in d["id"] or not d["id"]:
            _fail(f"{where}.id", f"{d['id']!r} cannot be a topic component")
        if d["vendor"] not in ("nvidia", "amd", "mock"):
            _fail(f"{where}.vendor", repr(d["vendor"]))
        if d["backend"] not in ("nvml", "rocm_smi", "amdsmi", "cupti", "mock"):
            _fail(f"{where}.backend", repr(d["backend"]))
        if d["unit"] not in ("sm", "cu"):
            _fail(f"{where}.unit", repr(d["unit"]))
        levels = d["levels"]
        if not levels or levels[-1] != d["unit"] or not all(isinstance(x, str) for x in levels):
            _fail(f"{where}.levels", f"{levels!r} must end in the unit {d['unit']!r}")
        counts = d["counts"]
        # "number of elements at each level" (§3.1): every level has one.
        if set(counts) != set(levels):
            _fail(f"{where}.counts", f"keys {sorted(counts)} do not match levels {levels}")
        if counts[levels[-1]] != d["units"]:
            _fail(f"{where}.counts", "last count differs from units")
        for lv in counts:
            if not _is_int(counts[lv]) or counts[lv] < 1:
                _fail(f"{where}.counts.{lv}", repr(counts[lv]))
        if "layout" in d:
            layout = _str_map(d["layout"], f"{where}.layout")
            if set(layout) != set(levels[:-1]):
                _fail(f"{where}.layout", f"keys {sorted(layout)} must be every level but the last {levels[:-1]}")
            for lv in layout:
                arr = _bin(layout, lv, "<u2", d["units"], f"{where}.layout")
                # An ancestor index must name an element of that level (the page allows no sentinel).
                if arr.size and int(arr.max()) >= counts[lv]:
                    _fail(f"{where}.layout.{lv}", f"ancestor {int(arr.max())} >= count {counts[lv]}")
        if d["layout_source"] not in ("probe", "vendor", "mock", "none"):
            _fail(f"{where}.layout_source", repr(d["layout_source"]))
        if not d["partitions"]:
            _fail(f"{where}.partitions", "at least one")
        pids = set()
        for j, p in enumerate(d["partitions"]):
            pw = f"{where}.partitions[{j}]"
            _str_map(p, pw)
            for k, t in (("id", str), ("kind", str), ("units", int), ("memory_bytes", int), ("profile", str)):
                if not isinstance(p.get(k), t) or isinstance(p.get(k), bool):
                    _fail(f"{pw}.{k}", f"expected {t.__name__}, got {p.get(k)!r}")
            if p["kind"] not in ("whole", "mig", "xcp"):
                _fail(f"{pw}.kind", repr(p["kind"]))
            if p["id"] in pids:
                _fail(pw, f"duplicate partition id {p['id']!r}")
            pids.add(p["id"])
            if "unit_ids" in p:
                ids = _bin(p, "unit_ids", "<u2", p["units"], pw)
                if ids.size and int(ids.max()) >= d["units"]:
                    _fail(f"{pw}.unit_ids", "unit id beyond the device's units")
        if len(d["partitions"]) == 1 and d["partitions"][0]["kind"] == "whole" and d["partitions"][0]["id"] != "0":
            _fail(where, "a whole-device partition has id '0'")
        if "status" in d and d["status"] not in DEVICE_STATUSES:
            _fail(f"{where}.status", f"{d['status']!r} is not one of {sorted(DEVICE_STATUSES)}")
        if "profiling_paused" in d and not isinstance(d["profiling_paused"], str):
            _fail(f"{where}.profiling_paused", "not a string")
        if "pci" in d and not isinstance(d["pci"], str):
            _fail(f"{where}.pci", "not a string")
        if "numa" in d and not _is_int(d["numa"]):
            _fail(f"{where}.numa", "not an int")
        for name, c in _str_map(d["counters"], f"{where}.counters").items():
            cw = f"{where}.counters.{name}"
            _str_map(c, cw)
            if c.get("level") not in levels and c.get("level") not in ("partition", "device"):
                _fail(f"{cw}.level", repr(c.get("level")))
            if c.get("unit") not in UNITS:
                _fail(f"{cw}.unit", repr(c.get("unit")))
            if not isinstance(c.get("help"), str):
                _fail(f"{cw}.help", "not a string")
        for j, link in enumerate(d.get("links", [])):
            lw = f"{where}.links[{j}]"
            _str_map(link, lw)
            if link.get("type") not in ("nvlink", "xgmi", "pcie") or not _is_int(link.get("count")):
                _fail(lw, repr(link))
            if not isinstance(link.get("peer"), str) or not isinstance(link.get("path"), str):
                _fail(lw, repr(link))

    def _state(self, topic, node, device, h, body):
        d = self.devices.get((node, device))
        if d is None:
            _fail(topic, "state for a device no topo of this epoch has described")
        if d.get("status", "ok") != "ok":
            _fail(topic, f"state for a device whose topo status is {d['status']!r}")
        for k in ("window_ns", "samples"):
            if not _is_int(body.get(k)) or body[k] < 0:
                _fail(f"{topic} {k}", repr(body.get(k)))
        # idle_units may only be absent when this window has no complete activity to estimate
        # it from (§3.2: no active/sm_active value, e.g. the first GPM window has no rate yet, or
        # an element of the active level without a value: a whole is known only when every
        # part is).
        if "idle_units" not in body:
            measured = any("active" in e and isinstance(e["active"], dict) and isinstance(e["active"].get("mean"), bytes)
                           and bool(np.all(np.isfinite(np.frombuffer(e["active"]["mean"], "<f4"))))
                           for e in (body.get("levels") or {}).values() if isinstance(e, dict)) \
                or "sm_active" in (body.get("device") or {}) or "pm_sm_active" in (body.get("device") or {})
            if measured:
                _fail(f"{topic} idle_units", "missing although the window measures activity")
            body = dict(body, idle_units=0.0)
        if not _is_num(body.get("idle_units")):
            _fail(f"{topic} idle_units", repr(body.get("idle_units")))
        if not -1e-3 <= body["idle_units"] <= d["units"] + 1e-3:
            _fail(f"{topic} idle_units", f"{body['idle_units']} outside [0, {d['units']}]")
        counters = d["counters"]
        levels = _str_map(body.get("levels", {}), f"{topic} levels")
        for lv, entries in levels.items():
            lw = f"{topic} levels.{lv}"
            if lv not in d["counts"]:
                _fail(lw, f"not a level of the device {d['levels']}")
            n = d["counts"][lv]
            _str_map(entries, lw)
            names = [k for k in entries if k != "state"]
            if not names:
                _fail(lw, "a level is present only where some counter is measured")
            for name in names:
                c = counters.get(name)
                if c is None or c["level"] != lv:
                    _fail(f"{lw}.{name}", f"topo declares no such counter at level {lv}")
                st = _str_map(entries[name], f"{lw}.{name}")
                mean = _bin(st, "mean", "<f4", n, f"{lw}.{name}")
                mx = _bin(st, "max", "<f4", n, f"{lw}.{name}")
                finite = np.isfinite(mean) & np.isfinite(mx)
                if np.any(mx[finite] < mean[finite] - 1e-5):
                    _fail(f"{lw}.{name}", "max below mean")
                if c["unit"] == "ratio":
                    both = np.concatenate([mean[np.isfinite(mean)], mx[np.isfinite(mx)]])
                    if both.size and (both.min() < -1e-6 or both.max() > 1 + 1e-6):
                        _fail(f"{lw}.{name}", f"ratio outside [0,1]: {both.min()}..{both.max()}")
            declares_active = (counters.get("active") or {}).get("level") == lv
            if declares_active != ("state" in entries):
                _fail(lw, "state is present exactly for a level at which topo declares active")
            if "state" in entries:
                s = _bin(entries, "state", "u1", n, lw)
                if s.size and not np.all((s <= 3) | (s == 255)):
                    _fail(f"{lw}.state", f"states {sorted(set(s.tolist()))} not in 0..3 or 255")
                # 255 (unmeasured) exactly where the element's active has no value (§3.2).
                no_active = np.ones(n, bool) if "active" not in entries else \
                    ~np.isfinite(np.frombuffer(entries["active"]["mean"], "<f4"))
                if s.size and np.any((s == 255) != no_active):
                    _fail(f"{lw}.state", "255 (unmeasured) is not exactly where active has no value")
        # Every counter declared at a hierarchy level must be measured there (or absent entirely:
        # absence is allowed, zeros are not checkable). A declared level-counter must not leak
        # into partition/device maps under its own name.
        part_ids = {p["id"] for p in d["partitions"]}
        for pid, vals in _str_map(body.get("partition"), f"{topic} partition").items():
            if pid not in part_ids:
                _fail(f"{topic} partition.{pid}", f"not a partition of the device {sorted(part_ids)}")
            self._scalars(vals, counters, "partition", f"{topic} partition.{pid}")
        self._scalars(body.get("device"), counters, "device", f"{topic} device")
        if "processes" in body:
            if not isinstance(body["processes"], list):
                _fail(f"{topic} processes", "not a list")
            for p in body["processes"]:
                _str_map(p, f"{topic} processes[]")
                if not _is_int(p.get("pid")) or p["pid"] < 0:
                    _fail(f"{topic} processes[].pid", repr(p.get("pid")))
                if "sm" in p and (not _is_num(p["sm"]) or not -1e-6 <= p["sm"] <= 1 + 1e-6):
                    _fail(f"{topic} processes[].sm", f"not a ratio: {p['sm']!r}")
                if "mem" in p and (not _is_int(p["mem"]) or p["mem"] < 0):
                    _fail(f"{topic} processes[].mem", f"not a byte count: {p['mem']!r}")
                if "name" in p and not isinstance(p["name"], str):
                    _fail(f"{topic} processes[].name", f"not a string: {p['name']!r}")
        if "pods" in body:
            if not isinstance(body["pods"], list):
                _fail(f"{topic} pods", "not a list")
            for p in body["pods"]:
                _str_map(p, f"{topic} pods[]")
                for key in ("namespace", "pod", "container", "resource"):
                    if not isinstance(p.get(key), str):
                        _fail(f"{topic} pods[].{key}", f"not a string: {p.get(key)!r}")
                if "partition" in p and p["partition"] not in part_ids:
                    _fail(f"{topic} pods[].partition", f"{p['partition']!r} is not a partition of the device")

    def _scalars(self, vals, counters, level, where):
        _str_map(vals, where)
        for k, v in vals.items():
            if not _is_num(v):
                _fail(f"{where}.{k}", f"not a number: {v!r}")
            if isinstance(v, float) and not math.isfinite(v):
                _fail(f"{where}.{k}", "non-finite: an unmeasured counter must be absent")
            c = counters.get(k)
            if c is None:
                _fail(f"{where}.{k}", "counter not declared in topo")
            # A counter measured in units or groups is reported in ``levels``, not here; the
            # device map may hold the device-wide value of a partition counter.
            allowed = ("partition",) if level == "partition" else ("device", "partition")
            if c["level"] not in allowed:
                _fail(f"{where}.{k}", f"declared at level {c['level']!r}, not {' or '.join(allowed)}")
            unit = c["unit"]
            if unit == "ratio" or k in RATIO_DEVICE_COUNTERS:
                if not -1e-6 <= v <= 1 + 1e-6:
                    _fail(f"{where}.{k}", f"ratio {v} outside [0,1]")
            if unit in ("W", "bytes", "Hz", "B/s", "count") and v < 0:
                _fail(f"{where}.{k}", f"negative {unit}: {v}")

    def _sum(self, topic, node, _device, h, body):
        """§3.5, read from the page: a map of layout, size and records, each record
        decoded with struct over its first 47 bytes."""
        for k in ("layout", "size"):
            if not _is_int(body.get(k)):
                _fail(f"{topic} {k}", repr(body.get(k)))
        if body["layout"] != 1:
            _fail(f"{topic} layout", f"{body['layout']} (an agent of this page writes layout 1)")
        size, raw = body["size"], body.get("records")
        if size < SUM_RECORD.size:
            _fail(f"{topic} size", f"{size} < {SUM_RECORD.size}")
        if not isinstance(raw, bytes) or len(raw) % size:
            _fail(f"{topic} records", f"not a bin of whole {size}-byte records")
        order = self.topo_order.get(node)
        if order is None or order[0] != h["gen"]:
            _fail(topic, "a sum before the topo of its gen (the agent sends that topo first)")
        ids = order[1]
        if len(raw) // size != len(ids):
            _fail(f"{topic} records", f"{len(raw) // size} records for {len(ids)} devices")
        records = []
        for i, device_id in enumerate(ids):
            values = SUM_RECORD.unpack_from(raw, i * size)
            r = dict(zip(SUM_FLOAT_FIELDS, values[:5]))
            (r["age_ms"], r["units"], r["idle"], r["active"], r["saturated"], r["thrashing"],
             r["status"], r["flags"], r["groups"]) = values[5:14]
            r["group_idle"] = list(values[14:])
            self._sum_record(r, self.devices[(node, device_id)], f"{topic} records[{i}] ({device_id})")
            records.append(r)
        self.summaries[node] = (h, records)

    def _sum_record(self, r, d, where):
        if r["status"] not in (0, 1):
            _fail(f"{where}.status", repr(r["status"]))
        # A record's status and its topo's agree on the live feed: the agent sends a summary
        # right after the topo that changes a status. (A relay's snapshot may catch the moment
        # between the two.)
        if not self.in_snapshot and r["status"] != (0 if d.get("status", "ok") == "ok" else 1):
            _fail(f"{where}.status", f"{r['status']} while the topo says {d.get('status', 'ok')!r}")
        flags = r["flags"]
        if flags & ~(SUM_STATES | SUM_GROUPS | SUM_WINDOW):
            _fail(f"{where}.flags", f"unknown bits in {flags:#x}")
        if r["units"] != min(d["units"], 65535):
            _fail(f"{where}.units", f"{r['units']} != topo {d['units']}")
        levels = d["levels"]
        want_groups = min(d["counts"][levels[0]], 255) if len(levels) > 1 else 0
        if r["groups"] != want_groups:
            _fail(f"{where}.groups", f"{r['groups']} != {want_groups}")
        if bool(flags & SUM_WINDOW) != (r["age_ms"] != 65535):
            _fail(f"{where}.age_ms", f"{r['age_ms']} with flags {flags:#x}")
        counts = [r[k] for k in ("idle", "active", "saturated", "thrashing")]
        if flags & SUM_STATES:
            if sum(counts) > r["units"]:
                _fail(where, f"state counts {counts} add up to more than {r['units']} units")
        elif any(counts):
            _fail(where, f"state counts {counts} without the STATES flag")
        if flags & SUM_GROUPS:
            if not flags & SUM_STATES or levels[0] not in d.get("layout", {}):
                _fail(f"{where}.flags", "GROUPS without STATES or without the layout of the coarsest level")
            if sum(r["group_idle"]) > r["idle"]:
                _fail(f"{where}.group_idle", f"{r['group_idle']} hold more than the {r['idle']} idle units")
        if any(r["group_idle"][min(r["groups"], 12):]) or (not flags & SUM_GROUPS and any(r["group_idle"])):
            _fail(f"{where}.group_idle", f"{r['group_idle']} beyond the groups held or without the GROUPS flag")
        if r["status"] == 1:
            if flags & (SUM_STATES | SUM_GROUPS) or not all(math.isnan(r[k]) for k in SUM_FLOAT_FIELDS):
                _fail(where, "a lost device's record holds values (its last window is not current)")
            return
        units = d["units"]
        ranges = {"idle_units": (0, units), "sm_active": (0, 1), "mem_used": (0, math.inf), "power": (0, math.inf),
                  "temp": (-273.15, math.inf)}
        for k, (lo, hi) in ranges.items():
            v = r[k]
            if not math.isnan(v) and not lo - 1e-3 <= v <= hi * (1 + 1e-6) + 1e-3:
                _fail(f"{where}.{k}", f"{v} outside [{lo}, {hi}]")
        # Each counter is one the topo declares, or NaN.
        for k in ("sm_active", "mem_used", "power", "temp"):
            if not math.isnan(r[k]) and k not in d["counters"]:
                _fail(f"{where}.{k}", "a value for a counter the topo does not declare")

    def _hb(self, topic, node, _device, h, body):
        seqs = _str_map(body.get("seqs"), f"{topic} seqs")
        for t, s in seqs.items():
            if not _is_u64(s) or s < 1:
                _fail(f"{topic} seqs.{t}", repr(s))
            if t.split("/")[2:3] != [node]:
                _fail(f"{topic} seqs", f"topic {t!r} is not this node's")
            seen = self.last_seq.get(t)
            # In-order delivery on one connection: the hb cannot announce less than we saw.
            if seen is not None and s < seen:
                _fail(f"{topic} seqs.{t}", f"{s} below already received {seen}")
        if not _is_num(body.get("rate_hz")) or body["rate_hz"] < 0:
            _fail(f"{topic} rate_hz", repr(body.get("rate_hz")))
        if not _is_int(body.get("dropped")) or body["dropped"] < 0:
            _fail(f"{topic} dropped", repr(body.get("dropped")))
        if not _is_num(body.get("uptime_s")) or body["uptime_s"] < 0:
            _fail(f"{topic} uptime_s", repr(body.get("uptime_s")))

    def _event(self, topic, node, device, h, body):
        if body.get("type") not in EVENT_TYPES:
            _fail(f"{topic} type", repr(body.get("type")))
        if not isinstance(body.get("detail"), str):
            _fail(f"{topic} detail", repr(body.get("detail")))
        if "device" in body and not isinstance(body["device"], str):
            _fail(f"{topic} device", repr(body["device"]))
        if device is not None and body.get("device", device) != device:
            _fail(f"{topic} device", f"{body['device']!r} differs from the topic's {device!r}")
        if body["type"] in RELAY_EVENTS:
            if device is not None:
                _fail(topic, f"a {body['type']} event is the relay's, on its node topic")
            if not isinstance(body.get("node"), str) or not NODE.match(body["node"]):
                _fail(f"{topic} node", f"{body.get('node')!r} is not a node name")

    # ------------------------------------------------------------------ sync
    def snapshot_reply(self, data, prefix="cua1/", adopt=False):
        """Check a snapshot reply (its messages go through a fresh checker). With ``adopt``,
        this checker continues from the snapshot, as a joining client does (§4). Returns the map."""
        m = _str_map(_unpack(data, "snapshot reply"), "snapshot reply")
        if m.get("ok") is not True:
            _fail("snapshot reply", f"not ok: {m!r}")
        if not _is_u64(m.get("epoch")):
            _fail("snapshot reply.epoch", repr(m.get("epoch")))
        seqs = _str_map(m.get("seqs"), "snapshot reply.seqs")
        msgs = m.get("messages")
        if not isinstance(msgs, list):
            _fail("snapshot reply.messages", "not a list")
        for t, s in seqs.items():
            if not t.startswith(prefix):
                _fail("snapshot reply.seqs", f"{t!r} outside prefix {prefix!r}")
            if not _is_u64(s) or s < 1:
                _fail(f"snapshot reply.seqs.{t}", repr(s))
        # A relay's extras (§7): the nodes it withholds as stale, and how long each was silent.
        stale = m.get("stale", [])
        if not isinstance(stale, list) or not all(isinstance(n, str) and NODE.match(n) for n in stale):
            _fail("snapshot reply.stale", f"not a list of node names: {stale!r}")
        for n, age in _str_map(m.get("silent_s", {}), "snapshot reply.silent_s").items():
            if not _is_num(age) or age < 0:
                _fail(f"snapshot reply.silent_s.{n}", repr(age))
        if "forget_after_s" in m and not (_is_num(m["forget_after_s"]) and m["forget_after_s"] > 0):
            _fail("snapshot reply.forget_after_s", repr(m["forget_after_s"]))
        sub = FeedChecker()
        sub.in_snapshot = True
        sub.devices = dict(self.devices)  # a state-only prefix is checked against topo we know
        sub.topo_order = dict(self.topo_order)
        topics = set()
        # topo before state, so that state can be checked against it.
        ordered = sorted(msgs, key=lambda x: 0 if isinstance(x, list) and x and str(x[0]).startswith("cua1/topo/") else 1)
        for item in ordered:
            if not isinstance(item, list) or len(item) != 3:
                _fail("snapshot reply.messages[]", "not [topic, header, body]")
            topic, header, body = item
            if not isinstance(topic, str) or not isinstance(header, dict) or not isinstance(body, dict):
                _fail("snapshot reply.messages[]", f"types {type(topic)}, {type(header)}, {type(body)}")
            if not topic.startswith(prefix):
                _fail(topic, f"outside prefix {prefix!r}")
            kind = topic.split("/")[1]
            if kind not in ("topo", "state", "sum"):
                if KIND_SHAPE.match(kind) and kind not in KINDS:
                    continue  # §8: a newer agent's kind, ignored
                _fail(topic, "snapshots hold only topo, state and sum messages")
            if topic in topics:
                _fail(topic, "more than one message for a topic")
            if topic.split("/")[2] in stale:
                _fail(topic, "a message of a node the reply lists as stale")
            topics.add(topic)
            if seqs.get(topic) != header.get("seq"):
                _fail(topic, f"message seq {header.get('seq')} differs from seqs {seqs.get(topic)}")
            sub.feed([topic.encode(), msgpack.packb(header, use_bin_type=True), msgpack.packb(body, use_bin_type=True)])
        if adopt:
            self.devices.update(sub.devices)
            self.topo_order.update(sub.topo_order)
            self.epochs.update(sub.epochs)
            self.gens.update(sub.gens)
            self.last_seq.update(seqs)
        return m
