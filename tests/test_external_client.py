"""A client written from docs/PROTOCOL.md alone, with nothing but pyzmq, msgpack and numpy.

It imports nothing from cuagent (feed_support only starts `cuagent run` / `cuagent relay`
subprocesses), so it checks what the page promises rather than what our own client library
happens to accept: the §4 join over DEALER and over REQ, every header and body of §2–3, seq
and epoch rules, heartbeat seqs, prefix semantics, ipc endpoints, and the §5 sync limits,
against an agent directly and through a relay.
"""

from __future__ import annotations

import math
import re
import struct
import time
from pathlib import Path
from typing import Any, Optional

import msgpack
import numpy as np
import pytest
import zmq

from feed_support import WAIT_S, Proc, start_agent, start_relay

FAKES = Path(__file__).resolve().parent / "fakes"

TOPIC_RE = re.compile(r"cua1/(topo|state|hb|event|sum)/([A-Za-z0-9._-]{1,64})/(?:([^/]+)/)?")
# §8: a kind this page does not name is a newer agent's, which a client ignores.
ANY_KIND_RE = re.compile(r"cua1/[a-z][a-z0-9_]{0,31}/([A-Za-z0-9._-]{1,64})/(?:([^/]+)/)?")
# §3.5, layout 1: the first 47 bytes of each record.
SUM_RECORD = "<5f6H3B12B"
HEADER_KEYS = ("v", "node", "epoch", "seq", "ts", "gen")
UNITS = {"ratio", "W", "C", "bytes", "Hz", "B/s", "count", "mask"}
EVENT_TYPES = {"device_lost", "device_back", "backend_error", "topology_changed", "throttle", "xid",
               "node_stale", "node_back", "node_gone", "profiling_paused", "profiling_resumed"}
NODE_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
U64 = 1 << 64


def is_int(v: Any) -> bool:
    return type(v) is int


def is_num(v: Any) -> bool:
    return type(v) in (int, float)


def unpack(b: bytes) -> Any:
    return msgpack.unpackb(b, raw=False)


class PageClient:
    """Follows one agent or relay as §4 says, checking everything on the way."""

    def __init__(self, feed: str, sync: str, prefix: str = "cua1/", req: bool = False) -> None:
        ctx = zmq.Context.instance()
        self.prefix, self.req = prefix, req
        self.sub = ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.RCVHWM, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        self.sub.connect(feed)
        self.sync = ctx.socket(zmq.REQ if req else zmq.DEALER)
        self.sync.setsockopt(zmq.LINGER, 0)
        self.sync.connect(sync)
        self.queue: list[list[bytes]] = []
        self.last: dict[str, int] = {}  # topic -> last seq applied
        self.epochs: dict[str, int] = {}  # node -> epoch
        self.topo: dict[str, dict] = {}  # node -> latest topo body
        self.gen: dict[str, int] = {}
        self.started_ns: dict[str, int] = {}
        self.applied: list[tuple[str, dict, dict]] = []  # (topic, header, body) after the join
        self.snapshot: Optional[dict] = None
        self.hbs_checked = 0
        self.ignored = 0  # messages of kinds the page does not name (§8)
        self.gaps = 0  # messages known lost (§4): seq jumps on state, hb and event topics
        self.summaries: dict[str, list[tuple]] = {}  # node -> its latest sum's records, unpacked
        # The kinds the source carries: a relay's ping may say (§7); an agent carries all.
        self.carried = {"topo", "state", "hb", "event", "sum"}

    def close(self) -> None:
        self.sub.close(0)
        self.sync.close(0)

    # --------------------------------------------------------------- sync
    def call(self, req: dict, timeout_s: float = 5.0) -> dict:
        self.sync.send(msgpack.packb(req))
        assert self.sync.poll(int(timeout_s * 1000)), f"no reply to {req}"
        frames = self.sync.recv_multipart()
        assert len(frames) == 1, f"a reply is one frame (§5), got {len(frames)}"
        reply = unpack(frames[0])
        assert isinstance(reply, dict) and type(reply.get("ok")) is bool, reply
        return reply

    def ping(self) -> dict:
        p = self.call({"op": "ping"})
        assert p["ok"] is True and p["v"] == 1, p
        assert isinstance(p["node"], str) and is_int(p["epoch"]) and 0 <= p["epoch"] < U64
        assert is_int(p["gen"]) and p["gen"] >= 1, p
        return p

    # --------------------------------------------------------------- join (§4)
    def queue_until(self, pred, what: str, timeout: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            if self.sub.poll(100):
                while self.sub.poll(0):
                    self.queue.append(self.sub.recv_multipart())

    def join(self, quiet: bool = False) -> dict:
        # Step 1: subscribed; wait for a first message so that our subscription surely
        # reached the publisher before the snapshot is taken (a heartbeat comes every 1 s).
        # A quiet prefix (events) has nothing to wait for: give the subscription a moment.
        if quiet:
            time.sleep(0.3)
        else:
            self.queue_until(lambda: self.queue, "a first feed message")
        if "kinds" in (p := self.ping()):
            assert isinstance(p["kinds"], list) and {"topo", "hb"} <= set(p["kinds"]) <= self.carried, p
            self.carried = set(p["kinds"])
        snap = self.call({"op": "snapshot", "prefix": self.prefix})
        assert snap["ok"] is True, snap
        assert set(snap) >= {"ok", "epoch", "messages", "seqs"}
        assert is_int(snap["epoch"]) and isinstance(snap["messages"], list) and isinstance(snap["seqs"], dict)
        seqs = snap["seqs"]
        for topic, seq in seqs.items():
            assert isinstance(topic, str) and topic.startswith(self.prefix), topic
            assert ANY_KIND_RE.fullmatch(topic), topic
            assert is_int(seq) and seq >= 1, (topic, seq)
        seqs = {t: s for t, s in seqs.items() if TOPIC_RE.fullmatch(t)}  # §8: others ignored
        latest: dict[str, int] = {}
        # topo before state: a state is read against its node's topo.
        msgs = sorted(snap["messages"], key=lambda m: not m[0].startswith("cua1/topo/"))
        for item in msgs:
            assert isinstance(item, list) and len(item) == 3, item
            topic, header, body = item
            assert isinstance(topic, str) and topic.startswith(self.prefix), topic
            if not TOPIC_RE.fullmatch(topic):
                assert ANY_KIND_RE.fullmatch(topic), topic
                self.ignored += 1
                continue
            kind = TOPIC_RE.fullmatch(topic).group(1)
            assert kind in ("topo", "state", "sum"), f"snapshots carry topo, state and sum only, got {topic}"
            assert kind in self.carried, f"{topic}: a kind the source does not carry"
            assert topic not in latest, f"two messages for {topic} in one snapshot"
            self.check(topic, header, body)
            latest[topic] = header["seq"]
            # Step 3: the seq of every topic under the prefix, and the latest message's own.
            assert seqs.get(topic) == header["seq"], (topic, header["seq"], seqs.get(topic))
            self.last[topic] = header["seq"]
        # A relay withholds the nodes it lists as stale (§7), and nobody serves the state of a
        # device whose topo status is not "ok" (§3.1): their seqs alone are listed.
        stale = snap.get("stale", [])
        assert isinstance(stale, list) and all(isinstance(n, str) and NODE_RE.fullmatch(n) for n in stale), stale
        for topic, seq in seqs.items():
            kind, node, device = TOPIC_RE.fullmatch(topic).groups()
            if node in stale:
                assert topic not in latest, f"{topic} served although {node} is listed stale"
            elif kind in ("topo", "sum") or (kind == "state" and (node not in self.topo or self.device_status(node, device) == "ok")):
                assert topic in latest, f"snapshot lists seq {seq} for {topic} but not its latest message"
        for topic, seq in seqs.items():
            self.last.setdefault(topic, seq)
        nodes = {TOPIC_RE.fullmatch(t).group(2) for t in latest}
        if len(nodes) == 1:  # one node: the reply's epoch is that node's
            assert snap["epoch"] == self.epochs[nodes.pop()], snap["epoch"]
        self.snapshot = snap
        # Step 4: the queue, dropping what the snapshot already holds.
        queued, self.queue = self.queue, []
        for frames in queued:
            self.receive(frames)
        return snap

    def pump(self, timeout_ms: int = 100) -> int:
        n = 0
        while self.sub.poll(timeout_ms if n == 0 else 0):
            self.receive(self.sub.recv_multipart())
            n += 1
        return n

    def follow(self, pred, what: str, timeout: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            assert time.monotonic() < deadline, f"timed out waiting for {what}; applied {self.kinds()}"
            self.pump()

    def kinds(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for topic, _, _ in self.applied:
            k = topic.split("/")[1]
            out[k] = out.get(k, 0) + 1
        return out

    def receive(self, frames: list[bytes]) -> None:
        assert len(frames) == 3, f"a feed message has exactly three frames, got {len(frames)}"
        topic = frames[0].decode("utf-8")
        assert topic.startswith(self.prefix), f"{topic} arrived on a {self.prefix!r} subscription"
        header, body = unpack(frames[1]), unpack(frames[2])
        m = TOPIC_RE.fullmatch(topic)
        if m is None:
            assert ANY_KIND_RE.fullmatch(topic), topic
            self.ignored += 1
            return
        node = m.group(2)
        if node in self.epochs and header.get("epoch") != self.epochs[node]:
            raise AssertionError(f"{topic}: epoch changed without a restart")
        last = self.last.get(topic, 0)
        if header["seq"] <= last:
            return  # already in the snapshot
        # §4: a larger seq is a gap, counted. An agent starved of CPU loses windows and skips
        # their seqs (a state gap), so state gaps are legal; a topo gap MUST re-snapshot, and an
        # agent never skips a topo, so on loopback with no HWM one is a bug. On a sum topic a
        # jump loses nothing (§3.5): a relay may forward only some.
        if header["seq"] != last + 1 and m.group(1) != "sum":
            assert m.group(1) != "topo", f"{topic}: seq {header['seq']} after {last} (a topo gap)"
            self.gaps += header["seq"] - last - 1
        self.check(topic, header, body)
        self.last[topic] = header["seq"]
        self.applied.append((topic, header, body))

    # --------------------------------------------------------------- §2–3
    def check(self, topic: str, header: Any, body: Any) -> None:
        kind, node, device = TOPIC_RE.fullmatch(topic).groups()
        assert isinstance(header, dict) and isinstance(body, dict), topic
        for key in HEADER_KEYS:
            assert key in header, f"{topic}: header.{key} missing"
        assert all(isinstance(k, str) for k in list(header) + list(body)), topic
        assert header["v"] == 1 and is_int(header["v"])
        assert header["node"] == node
        for key in ("epoch", "seq", "gen"):
            assert is_int(header[key]) and 0 <= header[key] < U64, (topic, key, header[key])
        assert header["seq"] >= 1 and header["gen"] >= 1, (topic, header)
        assert is_int(header["ts"]), (topic, header["ts"])
        # Nanoseconds since the Unix epoch, on this same host: within a minute of now.
        assert abs(header["ts"] - time.time_ns()) < 60 * 10**9, (topic, header["ts"])
        epoch = self.epochs.setdefault(node, header["epoch"])
        assert header["epoch"] == epoch, (topic, header["epoch"], epoch)
        # gen never goes back within an epoch.
        assert header["gen"] >= self.gen.get(node, 1), (topic, header["gen"], self.gen.get(node))
        if kind == "topo":
            assert device is None
            self.check_topo(node, header, body)
        elif kind == "state":
            assert device is not None
            self.check_state(node, device, header, body)
        elif kind == "hb":
            assert device is None
            self.check_hb(topic, header, body)
        elif kind == "sum":
            assert device is None
            self.check_sum(node, header, body)
        else:
            self.check_event(device, body)

    def check_topo(self, node: str, header: dict, body: dict) -> None:
        agent = body["agent"]
        assert isinstance(agent["version"], str) and isinstance(agent["host"], str)
        assert is_int(agent["pid"]) and is_int(agent["started_ns"])
        assert isinstance(body["devices"], list) and body["devices"]
        ids = [d["id"] for d in body["devices"]]
        assert len(set(ids)) == len(ids), ids
        for d in body["devices"]:
            self.check_device(d, set(ids))
        self.topo[node], self.gen[node] = body, header["gen"]
        self.started_ns[node] = agent["started_ns"]

    def check_device(self, d: dict, ids: set[str]) -> None:
        for key, typ in (("id", str), ("index", int), ("vendor", str), ("model", str), ("backend", str),
                         ("unit", str), ("units", int), ("levels", list), ("layout_source", str),
                         ("counts", dict), ("partitions", list), ("memory_bytes", int), ("counters", dict)):
            assert key in d and type(d[key]) is typ, (d.get("id"), key, d.get(key))
        assert "/" not in d["id"] and d["id"]
        assert d["vendor"] in ("nvidia", "amd", "mock") and d["unit"] in ("sm", "cu")
        assert d["layout_source"] in ("probe", "vendor", "mock", "none")
        levels, units, counts = d["levels"], d["units"], d["counts"]
        assert levels and levels[-1] == d["unit"] and all(isinstance(x, str) for x in levels)
        assert counts[d["unit"]] == units > 0
        assert set(counts) <= set(levels) and all(is_int(v) and v > 0 for v in counts.values())
        for level, raw in d.get("layout", {}).items():
            assert level in levels[:-1], level
            assert isinstance(raw, bytes) and len(raw) == 2 * units, (level, len(raw))
            anc = np.frombuffer(raw, "<u2")
            assert level in counts and anc.max() < counts[level], (level, anc.max(), counts.get(level))
        assert d["partitions"], "at least one partition"
        for p in d["partitions"]:
            assert isinstance(p["id"], str) and p["kind"] in ("whole", "mig", "xcp") and is_int(p["units"])
            assert 0 < p["units"] <= units
            if "unit_ids" in p:
                uid = np.frombuffer(p["unit_ids"], "<u2")
                assert len(uid) == p["units"] and uid.max() < units
            for key, typ in (("memory_bytes", int), ("profile", str)):
                assert key not in p or type(p[key]) is typ
        if len(d["partitions"]) == 1 and d["partitions"][0]["kind"] == "whole":
            assert d["partitions"][0]["id"] == "0"
        for key, typ in (("pci", str), ("numa", int), ("status", str)):
            assert key not in d or type(d[key]) is typ, (key, d.get(key))
        for name, c in d["counters"].items():
            assert c["level"] in levels or c["level"] in ("partition", "device"), (name, c)
            assert c["unit"] in UNITS and isinstance(c["help"], str), (name, c)
        for link in d.get("links", []):
            assert link["peer"] in ids and link["type"] in ("nvlink", "xgmi", "pcie")
            assert is_int(link["count"]) and isinstance(link["path"], str)

    def device_status(self, node: str, device: str) -> str:
        """The device's ``status`` in the node's latest topo; absent means "ok" (§3.1)."""
        return self.device_topo(node, device).get("status", "ok")

    def device_topo(self, node: str, device: str) -> dict:
        assert node in self.topo, f"state for {node} before any topo"
        (d,) = [d for d in self.topo[node]["devices"] if d["id"] == device]
        return d

    def check_state(self, node: str, device: str, header: dict, body: dict) -> None:
        d = self.device_topo(node, device)
        assert header["gen"] == self.gen[node], "state of a gen whose topo we do not hold"
        assert d.get("status", "ok") == "ok", f"a state for {device}, whose status is {d['status']!r}"
        assert is_int(body["window_ns"]) and body["window_ns"] > 0
        assert is_int(body["samples"]) and body["samples"] >= 0
        assert header["ts"] >= self.started_ns[node], "a window that ended before the agent started"
        counters, counts = d["counters"], d["counts"]
        finest_active = None
        for level, entries in body.get("levels", {}).items():
            assert level in counts, (level, counts)
            n = counts[level]
            for name, v in entries.items():
                if name == "state":
                    assert isinstance(v, bytes) and len(v) == n, (level, len(v), n)
                    assert np.frombuffer(v, "u1").max(initial=0) <= 3
                    continue
                assert name in counters and counters[name]["level"] == level, (level, name)
                assert set(v) == {"mean", "max"}, v.keys()
                mean, mx = (np.frombuffer(v[k], "<f4") for k in ("mean", "max"))
                assert len(v["mean"]) == len(v["max"]) == 4 * n, (level, name, len(v["mean"]), n)
                ok = np.isnan(mean) | np.isnan(mx) | (mx >= mean - 1e-6)
                assert ok.all(), (level, name)
                if counters[name]["unit"] == "ratio":
                    fin = mean[np.isfinite(mean)]
                    assert ((fin >= 0) & (fin <= 1)).all(), (level, name)
            assert ("state" in entries) == ("active" in entries), (level, sorted(entries))
            if "active" in entries:
                if finest_active is None or d["levels"].index(level) > d["levels"].index(finest_active):
                    finest_active = level
        pids = {p["id"] for p in d["partitions"]}
        assert isinstance(body["partition"], dict) and set(body["partition"]) <= pids
        for values in body["partition"].values():
            for name, v in values.items():
                assert counters[name]["level"] == "partition" and is_num(v), (name, v)
        # The device map: device counters, and device-wide values of partition counters.
        for name, v in body["device"].items():
            assert counters[name]["level"] in ("device", "partition") and is_num(v), (name, v)
            if counters[name]["unit"] == "ratio":
                assert 0 <= v <= 1, (name, v)
        for p in body.get("processes", []):
            assert is_int(p["pid"]) and isinstance(p["name"], str)
        if finest_active is not None:
            mean = np.frombuffer(body["levels"][finest_active]["active"]["mean"], "<f4").astype(np.float64)
            if finest_active == d["unit"]:
                weight = np.ones(len(mean))
            else:
                weight = np.bincount(np.frombuffer(d["layout"][finest_active], "<u2"), minlength=len(mean))
            want = float(np.nansum((1.0 - mean) * weight))
            assert type(body["idle_units"]) is float
            assert abs(body["idle_units"] - want) <= 1e-3 * d["units"], (body["idle_units"], want)

    def check_sum(self, node: str, header: dict, body: dict) -> None:
        assert body["layout"] == 1 and is_int(body["size"]) and body["size"] >= 47, body.keys()
        raw, size = body["records"], body["size"]
        assert isinstance(raw, bytes) and len(raw) % size == 0, (len(raw), size)
        # Record i is device i of the topo of the same gen.
        assert header["gen"] == self.gen[node], "a sum of a gen whose topo we do not hold"
        devices = self.topo[node]["devices"]
        assert len(raw) // size == len(devices), (len(raw) // size, len(devices))
        records = [struct.unpack_from(SUM_RECORD, raw, i * size) for i in range(len(devices))]
        for d, r in zip(devices, records):
            idle_units, sm_active, mem_used, power, temp = r[:5]
            age, units, idle, active, saturated, thrashing, status, flags, groups = r[5:14]
            group_idle = r[14:]
            assert units == min(d["units"], 65535) and status in (0, 1), (d["id"], r)
            assert status == (0 if d.get("status", "ok") == "ok" else 1), (d["id"], status, d.get("status"))
            assert flags & ~7 == 0, flags
            assert (age == 65535) == (not flags & 4), (age, flags)
            first = d["levels"][0]
            assert groups == (min(d["counts"].get(first, 0), 255) if len(d["levels"]) > 1 else 0), (groups, d["counts"])
            counts = (idle, active, saturated, thrashing)
            assert sum(counts) <= units if flags & 1 else counts == (0, 0, 0, 0), (flags, counts)
            assert sum(group_idle) <= idle and not any(group_idle[min(groups, 12):]), group_idle
            if status == 1:  # lost: its last window is no longer current
                assert not flags & 3 and all(math.isnan(x) for x in r[:5]), r
                continue
            assert math.isnan(idle_units) or -1e-3 <= idle_units <= units + 1e-3, idle_units
            assert math.isnan(sm_active) or 0 <= sm_active <= 1, sm_active
            for name, v in (("mem_used", mem_used), ("power", power), ("temp", temp)):
                assert math.isnan(v) or name in d["counters"], (name, v)
        self.summaries[node] = records

    def check_hb(self, topic: str, header: dict, body: dict) -> None:
        assert isinstance(body["seqs"], dict) and type(body["rate_hz"]) is float
        assert is_int(body["dropped"]) and body["dropped"] >= 0 and type(body["uptime_s"]) is float
        for t, s in body["seqs"].items():
            assert isinstance(t, str) and TOPIC_RE.fullmatch(t) and is_int(s), (t, s)
        # Last seq sent per topic: its own is this hb's, and for every other topic of the
        # node we follow in full, exactly the last we got (the feed has lost nothing here).
        # Of a kind the source does not carry (a relay's --kinds, §7) we get none: no loss.
        assert body["seqs"].get(topic) == header["seq"], (body["seqs"].get(topic), header["seq"])
        node = header["node"]
        if self.prefix == "cua1/":
            # (A sum seq may be above ours, never below: summaries skipped are no loss, §3.5.)
            mine = {t: s for t, s in self.last.items() if t.split("/")[2] == node and t != topic}
            theirs = {t: s for t, s in body["seqs"].items() if t != topic and t.split("/")[1] in self.carried}
            for t in [t for t in theirs if t.startswith("cua1/sum/")]:
                assert theirs.pop(t) >= mine.pop(t, 0), t
            mine = {t: s for t, s in mine.items() if not t.startswith("cua1/sum/")}
            assert theirs == mine, (theirs, mine)
            self.hbs_checked += 1

    def check_event(self, device: Optional[str], body: dict) -> None:
        assert body["type"] in EVENT_TYPES and isinstance(body["detail"], str), body
        if body["type"] in ("node_stale", "node_back", "node_gone"):  # a relay's own, about a node (§7)
            assert device is None and isinstance(body["node"], str) and NODE_RE.fullmatch(body["node"]), body
        if device is not None:
            assert body.get("device") == device, (device, body)
        elif "device" in body:
            assert isinstance(body["device"], str)


def _join_and_follow(feed: str, sync: str, req: bool, agent_epochs: dict[str, int], min_hb: int = 1) -> PageClient:
    c = PageClient(feed, sync, req=req)
    try:
        c.join()
        c.follow(lambda: c.hbs_checked >= min_hb * len(agent_epochs) and c.kinds().get("state", 0) >= 4
                 and c.kinds().get("sum", 0) >= len(agent_epochs), "heartbeats, states and summaries")
        assert set(c.summaries) == set(agent_epochs) and c.ignored == 0
        assert c.epochs == agent_epochs, (c.epochs, agent_epochs)
        assert set(c.topo) == set(agent_epochs)
        # Through the same socket, ping still answers after the snapshot.
        c.ping()
        return c
    except BaseException:
        c.close()
        raise


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ext")
    # node-ab shares node-a's prefix but for the trailing component; its devices fall off
    # the bus and come back, so the feed carries per-device events too.
    procs = [start_agent(tmp, "node-a", "h100-sxm:fragmented,mi300x:training")]
    try:
        yield from _more_nodes(tmp, procs)
    finally:
        for p in reversed(procs):
            assert p.stop() == 0, p.log()


def _more_nodes(tmp, procs):
    a = procs[0]
    feed, sync = f"ipc://{tmp}/node-ab.feed", f"ipc://{tmp}/node-ab.sync"
    ab = Proc(["run", "--driver", "mock", "--mock-devices", "a100-sxm:training", "--seed", "3", "--node", "node-ab",
               "--feed", feed, "--sync", sync, "--rate-hz", "200", "--publish-interval-ms", "50"],
              feed, sync, tmp / "node-ab.log", launcher=[str(FAKES / "mock_fault_agent.py"), "0.8", "1.6"])
    procs.append(ab)
    ab.wait_ping()
    procs.append(start_relay(tmp, "relay-x", a.endpoint, ab.endpoint))
    yield tuple(procs)


@pytest.mark.parametrize("req", [False, True], ids=["dealer", "req"])
def test_page_client_joins_an_agent_directly(nodes, req):
    a, ab, _ = nodes
    pings = {p.wait_ping()["node"]: p.wait_ping() for p in (a, ab)}
    for proc in (a, ab):
        name = proc.args[proc.args.index("--node") + 1]
        c = _join_and_follow(proc.feed, proc.sync, req, {name: pings[name]["epoch"]})
        try:
            assert c.gen[name] == pings[name]["gen"] == 1  # no topology change: gen 1
        finally:
            c.close()


@pytest.mark.parametrize("req", [False, True], ids=["dealer", "req"])
def test_page_client_joins_through_a_relay(nodes, req):
    a, ab, relay = nodes
    epochs = {"node-a": a.wait_ping()["epoch"], "node-ab": ab.wait_ping()["epoch"]}
    c = _join_and_follow(relay.feed, relay.sync, req, epochs)
    c.close()


def test_page_client_follows_everything_through_a_summaries_tier(nodes, tmp_path):
    # A relay that carries topo, hb, sum and event only (§7): nothing of state arrives, and the
    # heartbeats, forwarded as sent, still list the state seqs, which are no loss.
    a, _, _ = nodes
    relay = start_relay(tmp_path, "relay-sums", a.endpoint, extra=("--kinds", "topo,hb,sum,event"))
    c = PageClient(relay.feed, relay.sync)
    try:
        # This client joins no node it meets on the feed: join once the relay follows node-a
        # (its joins of a kind at a time take a moment), so the snapshot has it.
        deadline = time.monotonic() + WAIT_S
        while "node-a" not in c.ping().get("nodes", []):
            assert time.monotonic() < deadline, "the relay never joined node-a"
            time.sleep(0.05)
        c.join()
        assert c.carried == {"topo", "hb", "event", "sum"}
        c.follow(lambda: c.hbs_checked >= 3 and c.kinds().get("sum", 0) >= 3, "heartbeats and summaries")
        assert "state" not in c.kinds() and c.gaps == 0 and c.ignored == 0, (c.kinds(), c.gaps)
        assert not [t for t in c.last if t.startswith("cua1/state/")]
        assert set(c.summaries) == set(c.topo) == {"node-a"}
    finally:
        c.close()
        assert relay.stop() == 0, relay.log()


def test_events_arrive_with_their_device_topic(tmp_path):
    # The relay is up before the node, so both it and the clients hear the node from its
    # first message; the device falls off the bus 2 s after its first read and is back at 3 s.
    feed, sync = f"ipc://{tmp_path}/node-ev.feed", f"ipc://{tmp_path}/node-ev.sync"
    relay = start_relay(tmp_path, "relay-ev", f"{feed},{sync}")
    ev = Proc(["run", "--driver", "mock", "--mock-devices", "h100-sxm:training", "--seed", "3", "--node", "node-ev",
               "--feed", feed, "--sync", sync, "--rate-hz", "200", "--publish-interval-ms", "50"],
              feed, sync, tmp_path / "node-ev.log", launcher=[str(FAKES / "mock_fault_agent.py"), "2.0", "3.0"])
    clients = []
    try:
        ev.wait_ping()
        for f, s_ in ((feed, sync), (relay.feed, relay.sync)):
            clients.append(PageClient(f, s_, prefix="cua1/event/node-ev/"))
        for c in clients:
            c.join(quiet=True)
        for c in clients:
            c.follow(lambda: {"device_lost", "device_back"} <= {b["type"] for _, _, b in c.applied},
                     "device_lost and device_back")
            lost = [(t, b) for t, _, b in c.applied if b["type"] == "device_lost"]
            assert lost[0][0] == "cua1/event/node-ev/mock-0/" and lost[0][1]["device"] == "mock-0", lost
    finally:
        for c in clients:
            c.close()
        assert ev.stop() == 0, ev.log()
        assert relay.stop() == 0, relay.log()


@pytest.mark.parametrize("via_relay", [False, True], ids=["agent", "relay"])
def test_prefix_names_whole_components(nodes, via_relay):
    a, ab, relay = nodes
    feed, sync = (relay.feed, relay.sync) if via_relay else (a.feed, a.sync)
    for prefix in ("cua1/state/node-a/", "cua1/topo/node-a/"):
        c = PageClient(feed, sync, prefix=prefix)
        try:
            if "/state/" in prefix:  # (topo comes every 10 s: its snapshot is enough)
                c.queue_until(lambda: len(c.queue) >= 1, f"a message under {prefix}")
            snap = c.call({"op": "snapshot", "prefix": prefix})
            assert snap["ok"] is True and snap["messages"], snap
            assert all(t.startswith(prefix) for t in snap["seqs"]) and all(m[0].startswith(prefix) for m in snap["messages"])
            if "/state/" in prefix:
                n = len(c.queue)
                c.queue_until(lambda: len(c.queue) >= n + 3, f"more messages under {prefix}")
            assert all(f[0].decode().startswith(prefix) for f in c.queue), {f[0] for f in c.queue}
        finally:
            c.close()
    # node-ab's whole-component prefix holds nothing of node-a (the agent has none of it).
    c = PageClient(feed, sync)
    try:
        snap = c.call({"op": "snapshot", "prefix": "cua1/state/node-ab/"})
        assert snap["ok"] is True and all("/node-ab/" in t for t in snap["seqs"])
        assert bool(snap["seqs"]) == via_relay and bool(snap["messages"]) == via_relay
    finally:
        c.close()


def test_sync_limits(nodes):
    a, _, relay = nodes
    for sync in (a.sync, relay.sync):
        ctx = zmq.Context.instance()
        # Up to 64 KiB is a request like any other (padding is an extra key, §8 style).
        d = ctx.socket(zmq.DEALER)
        d.setsockopt(zmq.LINGER, 0)
        d.connect(sync)
        pad = 60 * 1024
        d.send(msgpack.packb({"op": "ping", "pad": "x" * pad}))
        assert d.poll(5000) and unpack(d.recv())["ok"] is True
        # More than 64 KiB: an error or nothing, and everyone else is still served.
        d.send(msgpack.packb({"op": "ping", "pad": "x" * (65 * 1024)}))
        if d.poll(300):
            assert unpack(d.recv())["ok"] is False
        d.close(0)
        # Extra frames: an error, or dropped; never a crash, never two replies.
        for frames in ([msgpack.packb({"op": "ping"}), msgpack.packb({"op": "ping"})],
                       [b"", msgpack.packb({"op": "ping"}), b"x"]):
            d = ctx.socket(zmq.DEALER)
            d.setsockopt(zmq.LINGER, 0)
            d.connect(sync)
            d.send_multipart(frames)
            if d.poll(2000):
                reply = unpack(d.recv_multipart()[-1])
                assert reply["ok"] is False and isinstance(reply["error"], str)
            assert not d.poll(300)
            d.close(0)
        # REQ: a request that is not a map gets an error, and the socket goes on.
        r = ctx.socket(zmq.REQ)
        r.setsockopt(zmq.LINGER, 0)
        r.connect(sync)
        for bad in (b"\xc1", msgpack.packb([1, 2]), msgpack.packb({"op": 7}), msgpack.packb({"op": "snapshot", "prefix": 3})):
            r.send(bad)
            assert r.poll(5000)
            reply = unpack(r.recv())
            assert reply["ok"] is False and isinstance(reply["error"], str) and reply["error"], reply
        r.send(msgpack.packb({"op": "ping"}))
        assert r.poll(5000) and unpack(r.recv())["ok"] is True
        r.close(0)
