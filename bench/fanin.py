"""Fan-in of a cluster's feed: synthetic fleets (`cuagent fleet`: many nodes per process, each
with its own epoch and seqs, states and a summary per window at 10 Hz) -> relays -> clients,
one tier then two, with the bare zmq.proxy (XSUB->XPUB, no cache, no snapshots) at the same
load as the floor, in one run.

Per tier: messages and bytes per second out of it (and per kind: state, sum, the rest), relay
CPU (psutil, each relay process) per message in, against the proxy's, snapshot time, gaps
(a raw counter's seq check, and a Client's stats; summary seqs a relay did not forward are
counted apart: no loss, PROTOCOL.md §3.5), end-to-end staleness (receive time - header ts:
delivery plus the publisher's own lateness, which the fleets report), and Clients following
everything and the summaries (their ingest and CPU). Then an extrapolation to 100,000 GPUs
from the measured costs.

Phases: ``publisher`` (fleets -> counters), ``proxy``, ``tier1`` (one relay), ``tier2`` (two
tiers; tier 2 a summaries tier: its relay carries only topo, hb, sum and event (``--kinds``:
subscribed upstream to those only, it takes no state in) and forwards one summary per node per
``--summary-interval-s``, and below it only followers of sum/topo/hb), ``tier2nokinds`` (the
same without ``--kinds``: tier 2 takes every message of tier 1 in), ``tier2full`` (two tiers,
everything followed below tier 2), ``old`` (tier1 with ``--old-tree``'s relay).

    python bench/fanin.py [--nodes 100] [--gpus 8] [--profile sm|device] [--publishers 1]
        [--tier1-relays 2] [--summary-interval-s 1] [--seconds 10] [--phases proxy,tier1,tier2]
        [--relay-cmd "{python} -m cuagent.cli relay"] [--relay-arg=--forwarder=python ...]
        [--tree python/] [--old-tree /path/to/old/python] [--json out.json]

The relay under test is a command line (`--relay-cmd`, `--relay-arg`, `--tree`) so this bench
runs unchanged against other relays. A summary client runs only where the tree's protocol
has the `sum` topic kind.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
WAIT_S = 60.0  # for a process to answer ping on a loaded 2-core machine (fleets record first)
GPUS_100K = 100_000


# --------------------------------------------------------------------------- roles (subprocesses)


def _wait_until(t: float) -> None:
    while time.time() < t:
        time.sleep(min(0.05, max(0.0, t - time.time())))


def _kind(topic: bytes) -> str:
    return topic[5:topic.index(b"/", 5)].decode() if topic.count(b"/") >= 2 else "?"


def role_counter(args: argparse.Namespace) -> dict[str, Any]:
    """A raw SUB on a tier's feed (``--prefix``: comma-separated subscriptions): messages and
    bytes, each also per kind, seq gaps per topic, summary entries (records), staleness. With
    ``--sum-downsampled`` (below a relay forwarding only some summaries) a ``sum`` seq jump is
    a summary not forwarded, no loss (§3.5): counted apart. Elsewhere it is a loss: a fleet's
    summary seqs have no holes."""
    import zmq

    from cuagent import wire
    from cuagent.wire.summary import summary_records

    sub: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 0)
    for prefix in args.prefix.split(","):
        sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
    sub.connect(args.connect.split(",")[0])
    last: dict[bytes, tuple[int, int]] = {}
    kinds: dict[str, list[int]] = {}  # kind -> [messages, bytes]
    n = nbytes = gaps = seen = sum_skipped = entries = 0
    stale: list[int] = []
    start, end = args.start_at, args.start_at + args.seconds
    c0 = None
    while True:
        now = time.time()
        if now >= end:
            break
        if c0 is None and now >= start:
            c0 = time.process_time()
        if not sub.poll(100):
            continue
        for _ in range(10_000):
            try:
                frames = sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            seen += 1
            if args.decode_every > 1 and seen % args.decode_every:
                if time.time() >= start:  # counted, not decoded (a publisher's ceiling)
                    n += 1
                    nbytes += len(frames[0]) + len(frames[1]) + len(frames[2])
                continue
            h = wire.decode_header(frames[1])
            prev = last.get(frames[0])
            last[frames[0]] = (h.epoch, h.seq)
            if time.time() < start:
                continue
            n += 1
            size = len(frames[0]) + len(frames[1]) + len(frames[2])
            nbytes += size
            kind = _kind(frames[0])
            k = kinds.setdefault(kind, [0, 0])
            k[0] += 1
            k[1] += size
            if kind == "sum":
                raw, size = summary_records(wire.unpack(frames[2]))
                entries += len(raw) // size
            if args.decode_every == 1 and prev is not None and prev[0] == h.epoch and h.seq > prev[1] + 1:
                if kind == "sum" and args.sum_downsampled:
                    sum_skipped += h.seq - prev[1] - 1
                else:
                    gaps += h.seq - prev[1] - 1
            stale.append(time.time_ns() - h.ts)
    cpu = time.process_time() - (c0 or time.process_time())
    stale.sort()

    def q(p: float) -> Optional[float]:
        return round(stale[min(len(stale) - 1, int(len(stale) * p))] / 1e6, 2) if stale else None

    return {"messages": n, "bytes": nbytes, "msgs_per_s": n / args.seconds, "bytes_per_s": nbytes / args.seconds,
            "kinds": {k: {"msgs_per_s": v[0] / args.seconds, "bytes_per_s": v[1] / args.seconds} for k, v in kinds.items()},
            "sum_entries_per_s": entries / args.seconds if args.decode_every == 1 else None,
            "gaps": gaps if args.decode_every == 1 else None,
            "sum_skipped": sum_skipped if args.decode_every == 1 else None, "topics": len(last),
            "stale_ms_p50": q(0.5), "stale_ms_p99": q(0.99), "stale_ms_max": q(1.0), "cpu": cpu / args.seconds}


def role_client(args: argparse.Namespace) -> dict[str, Any]:
    """A cuagent Client following ``--prefix`` (comma-separated: everything, or summaries with
    the topo and hb they need) through a tier; summary entries (device records) applied."""
    import dataclasses

    from cuagent.client import Client, Update

    client = Client([args.connect], prefixes=args.prefix.split(","))
    counted = {"sum": 0, "entries": 0}

    def count(u: Update) -> None:
        if u.kind == "sum":
            counted["sum"] += 1
            counted["entries"] += len(u.body)

    client.on_update(count)
    end = args.start_at + args.seconds
    t_join = time.monotonic()
    ready = client.wait_ready(max(0.1, end - time.time()))
    join_s = time.monotonic() - t_join
    while time.time() < args.start_at:
        client.poll(0.05)
    # Measured from the window's start, or from the join when the join took longer than the
    # warm-up (a starved relay): the window is then shorter, and says so.
    s0, c0, t0 = dataclasses.replace(client.stats), time.process_time(), time.monotonic()
    sum0, entries0 = counted["sum"], counted["entries"]
    while time.time() < end:
        client.poll(min(0.1, max(0.0, end - time.time())))
    dt, cpu = time.monotonic() - t0, time.process_time() - c0
    s1 = client.stats
    delta = {k: getattr(s1, k) - getattr(s0, k) for k in vars(s1)}
    with_state = sum(1 for nv in client.view.nodes.values() for dv in nv.devices.values() if dv.state is not None)
    client.close()
    ok = ready and dt >= 0.5 * args.seconds
    return {"ready": ready, "join_s": round(join_s, 3), "measured_s": round(dt, 3), "stats": delta, "total": vars(s1),
            "applied_per_s": delta["applied"] / dt if ok else None,
            "received_per_s": delta["messages"] / dt if ok else None,
            "cpu": cpu / dt if ok else None, "nodes": len(client.view.nodes), "devices_with_state": with_state,
            "sums_per_s": (counted["sum"] - sum0) / dt if ok else None,
            "sum_entries_per_s": (counted["entries"] - entries0) / dt if ok else None,
            "summaries_held": len(client.view.summaries)}


def role_snapshot(args: argparse.Namespace) -> dict[str, Any]:
    """Snapshots of ``--prefix``'s first prefix (everything by default) every ``--every`` s:
    reply time, size, decode time; then the time a fresh Client of all of ``--prefix`` takes to
    join (snapshot and apply)."""
    import zmq

    from cuagent import wire
    from cuagent.client import Client, parse_endpoint

    ep = parse_endpoint(args.connect)
    dealer: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(ep.sync)
    _wait_until(args.start_at)
    end = args.start_at + args.seconds
    rows: list[dict[str, Any]] = []
    while time.time() < end:
        t0 = time.monotonic()
        dealer.send(wire.snapshot_request(args.prefix.split(",")[0]))
        if not dealer.poll(int(WAIT_S * 1000)):
            rows.append({"reply_s": None})
            break
        data = dealer.recv()
        reply_s = time.monotonic() - t0
        t1 = time.monotonic()
        snap = wire.decode_snapshot_reply(data)
        rows.append({"reply_s": reply_s, "decode_s": time.monotonic() - t1, "bytes": len(data),
                     "messages": len(snap.messages), "seqs": len(snap.seqs)})
        time.sleep(max(0.0, args.every - (time.monotonic() - t0)))
    dealer.close(0)
    t0 = time.monotonic()
    client = Client([args.connect], prefixes=args.prefix.split(","))
    ready = client.wait_ready(WAIT_S)
    join_s = time.monotonic() - t0
    client.close()
    return {"snapshots": rows, "join_s": round(join_s, 3), "join_ready": ready}


BARE_PROXY = """
import sys, zmq
ctx = zmq.Context()
xsub, xpub = ctx.socket(zmq.XSUB), ctx.socket(zmq.XPUB)
xsub.setsockopt(zmq.RCVHWM, 100000)
xpub.setsockopt(zmq.SNDHWM, 100000)
for up in sys.argv[2:]:
    xsub.connect(up)
xsub.send(b"\\x01cua1/")
xpub.bind(sys.argv[1])
zmq.proxy(xsub, xpub)
"""


# --------------------------------------------------------------------------- orchestration


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    feed: str = ""
    sync: str = ""
    log: Optional[Path] = None

    @property
    def endpoint(self) -> str:
        return f"{self.feed},{self.sync}"


@dataclass
class Run:
    args: argparse.Namespace
    tmp: Path
    procs: list[Proc] = field(default_factory=list)

    def env(self, tree: str) -> dict[str, str]:
        return dict(os.environ, PYTHONPATH=tree, PYTHONUNBUFFERED="1")

    def spawn(self, name: str, cmd: list[str], tree: str, feed: str = "", sync: str = "") -> Proc:
        log = self.tmp / f"{name}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env(tree))
        proc = Proc(name, popen, feed, sync, log)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            if p.popen.poll() is None:
                p.popen.terminate()
        for p in self.procs:
            try:
                p.popen.wait(10)
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait(5)
        self.procs.clear()


def ping(sync: str, timeout: float = 1.0) -> Optional[dict[str, Any]]:
    import msgpack
    import zmq

    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(sync)
    try:
        sock.send(msgpack.packb({"op": "ping"}))
        if sock.poll(int(timeout * 1000)):
            reply: dict[str, Any] = msgpack.unpackb(sock.recv())
            return reply
        return None
    finally:
        sock.close(0)


def wait_ping(proc: Proc) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise SystemExit(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.log.read_text()[-2000:] if proc.log else ''}")
        reply = ping(proc.sync, 0.5)
        if reply is not None:
            return reply
    raise SystemExit(f"{proc.name} never answered ping")


def start_fleets(run: Run, publishers: int) -> list[Proc]:
    a = run.args
    per = [a.nodes // publishers + (1 if i < a.nodes % publishers else 0) for i in range(publishers)]
    fleets, first = [], 0
    for i, n in enumerate(per):
        feed, sync = f"ipc://{run.tmp}/fleet{i}.feed", f"ipc://{run.tmp}/fleet{i}.sync"
        cmd = [sys.executable, "-m", "cuagent.cli", "fleet", "--nodes", str(n), "--gpus", str(a.gpus),
               "--rate-hz", str(a.rate_hz), "--profile", a.profile, "--first", str(first), "--feed", feed,
               "--sync", sync, "--log-level", "warning"]
        fleets.append(run.spawn(f"fleet{i}", cmd, a.tree, feed, sync))
        first += n
    for f in fleets:
        wait_ping(f)
    return fleets


def start_relay(run: Run, name: str, upstreams: list[str], tree: str, kind: str = "relay",
                extra: tuple[str, ...] = ()) -> Proc:
    a = run.args
    feed, sync = f"ipc://{run.tmp}/{name}.feed", f"ipc://{run.tmp}/{name}.sync"
    if kind == "proxy":
        return run.spawn(name, [sys.executable, "-c", BARE_PROXY, feed, *[u.split(",")[0] for u in upstreams]],
                         tree, feed, sync)
    cmd = shlex.split(a.relay_cmd.format(python=sys.executable))
    cmd += ["--name", name, "--feed", feed, "--sync", sync, "--log-level", "warning"]
    for up in upstreams:
        cmd += ["--connect", up]
    cmd += a.relay_arg or []
    cmd += extra
    proc = run.spawn(name, cmd, tree, feed, sync)
    wait_ping(proc)
    return proc


def start_role(run: Run, role: str, connect: str, start_at: float, extra: tuple[str, ...] = ()) -> tuple[Proc, Path]:
    out = run.tmp / f"{role}-{len(run.procs)}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--role", role, "--connect", connect,
           "--start-at", repr(start_at), "--seconds", str(run.args.seconds), "--out", str(out), *extra]
    return run.spawn(f"{role}-{len(run.procs)}", cmd, run.args.tree), out


def cpu_times(procs: list[Proc]) -> dict[str, float]:
    import psutil

    out = {}
    for p in procs:
        try:
            ps = psutil.Process(p.popen.pid)
            t = ps.cpu_times()
            out[p.name] = t.user + t.system
        except psutil.Error:
            out[p.name] = math.nan
    return out


def rss_mb(proc: Proc) -> float:
    import psutil

    try:
        return float(psutil.Process(proc.popen.pid).memory_info().rss / 2**20)
    except psutil.Error:
        return math.nan


def fleet_totals(fleets: list[Proc]) -> dict[str, float]:
    tot = {"sent": 0.0, "skipped_windows": 0.0, "elapsed": 0.0, "late_p99": 0.0}
    for f in fleets:
        reply = ping(f.sync, 5.0) or {}
        st = reply.get("fleet", {})
        tot["sent"] += sum(st.get("messages", {}).values())
        tot["skipped_windows"] += st.get("skipped_windows", 0)
        tot["late_p99"] = max(tot["late_p99"], st.get("late_ms_p99") or 0.0)
    return tot


def has_relay_kinds(tree: str) -> bool:
    probe = "import dataclasses; from cuagent.node.relay import RelayConfig; " \
            "print('kinds' in {f.name for f in dataclasses.fields(RelayConfig)})"
    out = subprocess.run([sys.executable, "-c", probe], env=dict(os.environ, PYTHONPATH=tree), capture_output=True,
                         text=True)
    return out.stdout.strip() == "True"


def has_summary_topic(tree: str) -> bool:
    probe = "from cuagent import wire; print('sum' in wire.KINDS)"
    out = subprocess.run([sys.executable, "-c", probe], env=dict(os.environ, PYTHONPATH=tree), capture_output=True,
                         text=True)
    return out.stdout.strip() == "True"


# What a scheduler following the cluster's summaries subscribes to: the summaries, the topo
# that names their devices (and creates the client's node), the hb its staleness needs.
SUMMARY_PREFIXES = "cua1/sum/,cua1/topo/,cua1/hb/"
# What the summaries tier carries (relay --kinds): those, and events.
SUMMARY_KINDS = "topo,hb,sum,event"


def phase(a: argparse.Namespace, kind: str, tmp: Path) -> dict[str, Any]:
    """One topology: ``publisher`` (fleets -> a counter each: the publishers' own ceiling and
    staleness), ``proxy`` (fleets -> bare zmq.proxy), ``tier1`` (fleets -> one relay), ``tier2``
    (fleets -> tier-1 relays -> one summaries relay: ``--summary-interval-s``, and only
    summary followers below it), ``tier2full`` (the same at full resolution: everything
    followed below tier 2), ``tier2nokinds`` (tier2 without --kinds: tier 2 takes in all of tier 1),
    ``old`` (tier1 with --old-tree's relay)."""
    run = Run(a, tmp)
    summaries_tier = kind in ("tier2", "tier2nokinds")
    # The kinds each tier's relays carry (None: all).
    tier_kinds: list[Optional[list[str]]] = []
    try:
        two_tiers = kind in ("tier2", "tier2nokinds", "tier2full")
        publishers = max(a.publishers, a.tier1_relays) if two_tiers else a.publishers
        fleets = start_fleets(run, publishers)
        upstream = [f.endpoint for f in fleets]
        tiers: list[list[Proc]] = []
        if two_tiers:
            groups = [upstream[i::a.tier1_relays] for i in range(a.tier1_relays)]
            tiers.append([start_relay(run, f"t1r{i}", g, a.tree) for i, g in enumerate(groups)])
            extra: tuple[str, ...] = ("--summary-interval-s", f"{a.summary_interval_s:g}") if summaries_tier else ()
            tier_kinds = [None, None]
            if kind == "tier2" and has_relay_kinds(a.tree):
                extra += ("--kinds", SUMMARY_KINDS)
                tier_kinds[1] = SUMMARY_KINDS.split(",")
            tiers.append([start_relay(run, "t2r0", [r.endpoint for r in tiers[0]], a.tree, extra=extra)])
        elif kind == "proxy":
            tiers.append([start_relay(run, "proxy", upstream, a.tree, kind="proxy")])
        elif kind in ("tier1", "old"):
            tree = a.old_tree if kind == "old" else a.tree
            tiers.append([start_relay(run, "t1r0", upstream, tree)])
        start_at = time.time() + a.warmup
        roles: dict[str, Path] = {}
        if kind == "publisher":
            for f in fleets:  # headers sampled: the counter must not be what limits the publisher
                roles[f"counter:0:{f.name}"] = start_role(run, "counter", f.endpoint, start_at,
                                                          ("--decode-every", "16"))[1]
        # One counter per relay of every tier; the clients on the top tier only. A summaries
        # tier has summary followers only: its counter takes what they take.
        for t, relays in enumerate(tiers):
            for r in relays:
                downsampled = summaries_tier and t == len(tiers) - 1
                roles[f"counter:{t + 1}:{r.name}"] = start_role(
                    run, "counter", r.endpoint, start_at,
                    ("--decode-every", str(a.counter_decode_every), "--prefix", SUMMARY_PREFIXES if downsampled
                     else "cua1/", *(("--sum-downsampled",) if downsampled else ())))[1]
        if tiers and kind != "proxy":
            top = tiers[-1][0]
            if not summaries_tier:
                roles["client"] = start_role(run, "client", top.endpoint, start_at, ("--prefix", "cua1/"))[1]
            if has_summary_topic(a.tree):
                roles["summary"] = start_role(run, "client", top.endpoint, start_at, ("--prefix", SUMMARY_PREFIXES))[1]
            snap_prefix = SUMMARY_PREFIXES if summaries_tier else "cua1/"  # snapshots of the first
            roles["snapshot"] = start_role(run, "snapshot", top.endpoint, start_at, ("--prefix", snap_prefix))[1]
        relays = [r for tier in tiers for r in tier]
        _wait_until(start_at)
        f0, c0, t0 = fleet_totals(fleets), cpu_times(relays + fleets), time.monotonic()
        _wait_until(start_at + a.seconds)
        f1, c1, dt = fleet_totals(fleets), cpu_times(relays + fleets), time.monotonic() - t0
        rss = {r.name: rss_mb(r) for r in relays}
        deadline = time.monotonic() + WAIT_S + 30
        results: dict[str, Any] = {}
        for name, path in roles.items():
            while not path.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            results[name] = json.loads(path.read_text()) if path.exists() else None
        return {
            "kind": kind, "nodes": a.nodes, "gpus": a.gpus, "profile": a.profile, "publishers": len(fleets),
            "summaries_tier": summaries_tier, "summary_interval_s": a.summary_interval_s, "tier_kinds": tier_kinds,
            "offered_msgs_per_s": a.nodes * per_node(a),
            "fleet_msgs_per_s": (f1["sent"] - f0["sent"]) / dt,
            "fleet_skipped_windows": f1["skipped_windows"] - f0["skipped_windows"],
            "fleet_late_ms_p99": f1["late_p99"],
            "fleet_cpu": [(c1[f.name] - c0[f.name]) / dt for f in fleets],
            "tiers": [[{"name": r.name, "cpu": (c1[r.name] - c0[r.name]) / dt, "rss_mb": rss[r.name]} for r in tier]
                      for tier in tiers],
            "roles": results, "seconds": dt,
        }
    finally:
        run.stop_all()


def per_node(a: argparse.Namespace) -> float:
    """Messages per second of one node: a state per GPU and a summary per window, an hb per
    second, a topo every 10 s (the fleet's defaults, as an agent's)."""
    return float(a.gpus * a.rate_hz + a.rate_hz + 1.0 + 0.1)


def summary_per_node(interval_s: float) -> float:
    """Messages per second of one node below a relay forwarding a summary per ``interval_s``,
    to a follower of SUMMARY_PREFIXES: those summaries, an hb per second, a topo every 10 s."""
    return 1.0 / interval_s + 1.0 + 0.1


# --------------------------------------------------------------------------- report


def _fmt(x: Optional[float], spec: str = ",.0f") -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


@dataclass
class TierFigures:
    phase: str
    tier: int
    relays: int
    in_rate: float
    in_bytes: Optional[float]  # bytes/s into the tier (above tier 1: what the tier below sends it)
    out_rate: float
    out_bytes: float
    kinds: dict[str, dict[str, float]]  # kind -> msgs_per_s, bytes_per_s out (all its counters)
    cpus: list[float]
    per_msg_s: float  # relay CPU-seconds per message in (the tier's relays together)
    gaps: int
    sum_skipped: int  # summary seqs not forwarded (downsampling; no loss, §3.5)
    stale: dict[str, Any]
    saturated: bool
    summaries: bool  # a summaries tier: summary followers only below it


def tier_figures(res: dict[str, Any]) -> list[TierFigures]:
    out: list[TierFigures] = []
    for t, tier in enumerate(res["tiers"]):
        counters = [res["roles"].get(f"counter:{t + 1}:{r['name']}") or {} for r in tier]
        out_rate = sum(c.get("msgs_per_s", 0.0) for c in counters)
        in_rate = res["fleet_msgs_per_s"] if t == 0 else out[-1].out_rate
        in_bytes = None if t == 0 else out[-1].out_bytes
        carried = (res.get("tier_kinds") or [None] * (t + 1))[t]
        if t > 0 and carried is not None:
            # Subscribed upstream to those kinds only: of what the tier below sends (its
            # counter follows cua1/), it takes in those kinds' messages.
            below = out[-1].kinds
            in_rate = sum(below.get(k, {}).get("msgs_per_s", 0.0) for k in carried)
            in_bytes = sum(below.get(k, {}).get("bytes_per_s", 0.0) for k in carried)
        cpus = [r["cpu"] for r in tier]
        # Per message in: a relay reads every message's header, whatever it forwards.
        per_msg = sum(cpus) / max(1e-9, in_rate)
        gaps = sum(c.get("gaps") or 0 for c in counters)  # None (not counted) reads as 0
        kinds: dict[str, dict[str, float]] = {}
        for c in counters:
            for k, v in (c.get("kinds") or {}).items():
                acc = kinds.setdefault(k, {"msgs_per_s": 0.0, "bytes_per_s": 0.0})
                acc["msgs_per_s"] += v["msgs_per_s"]
                acc["bytes_per_s"] += v["bytes_per_s"]
        summaries = bool(res.get("summaries_tier")) and t == len(res["tiers"]) - 1
        expected = res["nodes"] * summary_per_node(res["summary_interval_s"]) if summaries else in_rate
        # Behind: it delivers visibly less than it should, or loses messages. (A summaries
        # tier's few messages a second come in lumps: a topo per node every 10 s.)
        saturated = out_rate < (0.9 if summaries else 0.97) * expected or gaps > res["fleet_skipped_windows"] * res["gpus"]
        out.append(TierFigures(res["kind"], t + 1, len(tier), in_rate, in_bytes, out_rate,
                               sum(c.get("bytes_per_s", 0.0) for c in counters), kinds, cpus, per_msg, gaps,
                               sum(c.get("sum_skipped") or 0 for c in counters), counters[0] if counters else {},
                               saturated, summaries))
    return out


def _mb(f: TierFigures, *kinds: str) -> float:
    return sum(f.kinds.get(k, {}).get("bytes_per_s", 0.0) for k in kinds) / 1e6


def report(results: list[dict[str, Any]], a: argparse.Namespace) -> str:
    lines = []
    floor = next((f.per_msg_s for res in results if res["kind"] == "proxy" for f in tier_figures(res)), None)
    for res in results:
        if res["kind"] != "publisher":
            continue
        counters = [v for k, v in res["roles"].items() if k.startswith("counter:0:") and v]
        got = sum(c["msgs_per_s"] for c in counters)
        cpu = res["fleet_cpu"]
        lines.append(f"publishers alone: offered {res['offered_msgs_per_s']:,.0f} msg/s, sent "
                     f"{res['fleet_msgs_per_s']:,.0f} ({res['fleet_msgs_per_s'] / res['offered_msgs_per_s']:.0%}), "
                     f"received {got:,.0f}; {len(cpu)} process(es) at {' + '.join(f'{c:.0%}' for c in cpu)} of a core "
                     f"({sum(cpu) / max(1e-9, res['fleet_msgs_per_s']) * 1e6:.1f} µs per message); skipped "
                     f"{res['fleet_skipped_windows']:,.0f} node windows; staleness p50/p99 "
                     f"{_fmt(counters[0].get('stale_ms_p50') if counters else None, '.1f')} / "
                     f"{_fmt(counters[0].get('stale_ms_p99') if counters else None, '.1f')} ms\n")
    head = ("| phase | tier | relays | in msg/s | out msg/s | out MB/s: state / sum / topo+hb+event "
            "| relay CPU (each) | µs CPU per msg in | × proxy | gaps (sum seqs not forwarded) "
            "| staleness p50 / p99 ms | snapshot ms (MB, topics); join | client applied/s (CPU) "
            "| client gaps / resyncs |")
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for res in results:
        top_tier = len(res["tiers"])
        for f in tier_figures(res):
            top = f.tier == top_tier
            snap = (res["roles"].get("snapshot") if top else None) or {}
            snap_txt = "—"
            rows = [s for s in snap.get("snapshots", []) if s.get("reply_s") is not None]
            if rows:
                ms = sorted(s["reply_s"] * 1e3 for s in rows)
                snap_txt = (f"{'cua1/sum/: ' if f.summaries else ''}{ms[len(ms) // 2]:,.0f} "
                            f"({rows[-1]['bytes'] / 1e6:.2f} MB, {rows[-1]['seqs']:,}); join {snap['join_s']:.2f} s")
            client = res["roles"].get("summary" if f.summaries else "client") if top else None
            client_txt = gaps_txt = "—"
            if client and client["applied_per_s"] is not None:
                client_txt = f"{client['applied_per_s']:,.0f} ({client['cpu']:.0%})"
                if f.summaries:
                    client_txt = f"summaries: {client_txt}"
            elif client:
                client_txt = f"joined after {client['join_s']:.0f} s" if client["ready"] else "never joined"
            if client:
                gaps_txt = f"{client['stats']['gaps']:,} / {client['stats']['resyncs']}"
            ratio = f.per_msg_s / floor if floor else None
            by_kind = (f"{_mb(f, 'state'):,.2f} / {_mb(f, 'sum'):,.3f} / {_mb(f, 'topo', 'hb', 'event'):,.3f}"
                       if f.kinds else "—")
            lines.append(
                f"| {f.phase} | {f.tier} | {f.relays} | {f.in_rate:,.0f} | {f.out_rate:,.0f}{' (behind)' if f.saturated else ''} "
                f"| {f.out_bytes / 1e6:,.2f}: {by_kind} | {' + '.join(f'{c:.0%}' for c in f.cpus)} | {f.per_msg_s * 1e6:,.1f} "
                f"| {_fmt(ratio, '.1f')}× | {f.gaps:,} ({f.sum_skipped:,}) | {_fmt(f.stale.get('stale_ms_p50'), '.1f')} / "
                f"{_fmt(f.stale.get('stale_ms_p99'), '.1f')} | {snap_txt} | {client_txt} | {gaps_txt} |")
    for res in results:
        if res["kind"] == "publisher":
            continue
        lines.append(f"\n{res['kind']}: fleets offered {res['offered_msgs_per_s']:,.0f} msg/s, sent "
                     f"{res['fleet_msgs_per_s']:,.0f} ({res['publishers']} process(es) at "
                     f"{' + '.join(f'{c:.0%}' for c in res['fleet_cpu'])}), skipped "
                     f"{res['fleet_skipped_windows']:,.0f} node windows, late p99 {_fmt(res['fleet_late_ms_p99'], '.1f')} ms")
        s = res["roles"].get("summary")
        if s:
            per_entry = s["cpu"] / s["sum_entries_per_s"] if s.get("cpu") and s.get("sum_entries_per_s") else None
            lines.append(f"  summary client ({SUMMARY_PREFIXES}): {_fmt(s['sums_per_s'])} summaries/s = "
                         f"{_fmt(s['sum_entries_per_s'])} entries/s of {s['summaries_held']} nodes, "
                         f"{_fmt(s['applied_per_s'])} applied/s in all, CPU {_fmt(s['cpu'], '.1%')} "
                         f"({_fmt(per_entry and per_entry * 1e6, '.1f')} µs per entry); gaps {s['stats']['gaps']}, "
                         f"summaries not received {s['stats'].get('summaries_skipped', 0):,}, "
                         f"resyncs {s['stats']['resyncs']}; joined in {s['join_s']:.2f} s")
        for f in tier_figures(res):
            if f.tier > 1 and f.in_bytes is not None:
                carried = (res.get("tier_kinds") or [None] * f.tier)[f.tier - 1]
                lines.append(f"  tier {f.tier} input ({'--kinds ' + ','.join(carried) if carried else 'all kinds'}): "
                             f"{f.in_rate:,.0f} msg/s, {f.in_bytes / 1e6:,.2f} MB/s "
                             f"({f.in_bytes * 8 / 1e6:,.1f} Mbit/s); relay CPU {' + '.join(f'{c:.0%}' for c in f.cpus)}")
            if f.summaries:
                c = f.stale
                lines.append(f"  summaries tier counter: {_fmt(c.get('sum_entries_per_s'))} entries/s; by kind " + ", ".join(
                    f"{k} {v['msgs_per_s']:,.1f} msg/s {v['bytes_per_s'] / 1e3:,.1f} kB/s"
                    for k, v in sorted(f.kinds.items())))
    lines.append(extrapolate(results, a))
    return "\n".join(lines)


def extrapolate(results: list[dict[str, Any]], a: argparse.Namespace) -> str:
    """100,000 GPUs = 12,500 nodes of 8 at the measured rate, from the measured per-message
    costs. Linear: CPU per message, bytes per message and snapshot time per topic are taken
    not to change with scale (no cache or fan-out effects), a relay is given at most 1 core."""
    nodes = GPUS_100K // a.gpus
    total = nodes * per_node(a)
    figures = {(f.phase, f.tier): f for res in results for f in tier_figures(res)}
    full = [f for f in figures.values() if f.out_rate and not f.summaries]
    size = full[0].out_bytes / full[0].out_rate if full else 0.0
    out = [f"\nExtrapolation to {GPUS_100K:,} GPUs ({nodes:,} nodes × {a.gpus} at {a.rate_hz:g} Hz, {a.profile} "
           f"profile, a summary per window): {total:,.0f} msg/s, {total * size * 8 / 1e9:,.1f} Gbit/s at full "
           f"resolution ({size:,.0f} B per message measured). Assumed linear in messages (CPU per message, "
           f"snapshot time per topic as measured here), ≤ 1 core per relay process."]

    def line(label: str, f: TierFigures, load: float = total, what: str = "all") -> str:
        per_relay = 1.0 / f.per_msg_s
        behind = " — measured while behind, CPU-starved on this machine" if f.saturated else ""
        return (f"- {label}: {f.per_msg_s * 1e6:,.1f} µs per message in ({f.phase} tier {f.tier}{behind}) -> one core "
                f"carries {per_relay:,.0f} msg/s ≈ {per_relay / per_node(a):,.0f} nodes; {what} {load:,.0f} msg/s need "
                f"{load * f.per_msg_s:,.1f} cores = {math.ceil(load * f.per_msg_s):,} relays.")

    if ("proxy", 1) in figures:
        out.append(line("floor (bare zmq.proxy)", figures[("proxy", 1)]))
    if ("tier1", 1) in figures:
        out.append(line("tier 1 (relays beside the agents, each a share of the nodes)", figures[("tier1", 1)]))
    if ("tier2full", 2) in figures:
        out.append(line("tier 2 at full resolution (relays of relays)", figures[("tier2full", 2)]))
    for name in ("tier2", "tier2nokinds"):
        if (name, 2) not in figures:
            continue
        f2 = figures[(name, 2)]
        res2 = next(r for r in results if r["kind"] == name)
        carried = (res2.get("tier_kinds") or [None, None])[1]
        interval = res2["summary_interval_s"]
        out_msgs = nodes * summary_per_node(interval)
        per_node_bytes = f2.out_bytes / max(1, res2["nodes"])
        sum_only = nodes * (a.rate_hz + 1.0 + 0.1)  # what tier 1 sends up to a tier taking sum/topo/hb(/event)
        head = (f"- tier 2 as a summaries tier ({name}: `--summary-interval-s {interval:g}`"
                f"{' --kinds ' + ','.join(carried) if carried else ''}): it sends each follower "
                f"{out_msgs:,.0f} msg/s ({summary_per_node(interval):.1f} per node) and "
                f"{per_node_bytes * nodes * 8 / 1e6:,.1f} Mbit/s ({per_node_bytes:,.0f} B/s per node measured, "
                f"{_mb(f2, 'state'):.2f} MB/s of it state). ")
        behind = " (measured while behind)" if f2.saturated else ""
        if carried and f2.in_bytes is not None:
            in_node_bytes = f2.in_bytes / max(1, res2["nodes"])
            # At a few hundred msg/s a relay's CPU is mostly its fixed cost (timers, sync loop):
            # the cost per message measured under load (tier 2 taking everything) is the one to scale.
            loaded = figures.get(("tier2nokinds", 2))
            per_msg = loaded.per_msg_s if loaded is not None else f2.per_msg_s
            cost = (f"{per_msg * 1e6:,.1f} µs per message in (as measured in tier2nokinds at "
                    f"{loaded.in_rate:,.0f} msg/s; here, at {f2.in_rate:,.0f} msg/s, {f2.per_msg_s * 1e6:,.1f} µs: "
                    f"mostly fixed cost)" if loaded is not None else f"{per_msg * 1e6:,.1f} µs per message in{behind}")
            out.append(head + f"It takes in only those kinds from tier 1 (subscribed upstream to them): "
                       f"{sum_only:,.0f} msg/s and {in_node_bytes * nodes * 8 / 1e9:,.2f} Gbit/s in "
                       f"({in_node_bytes:,.0f} B/s per node measured) × {cost} = {sum_only * per_msg:,.2f} cores; "
                       f"with tier-1 relays also downsampling what they send up, {out_msgs:,.0f} msg/s in: "
                       f"{out_msgs * per_msg:,.2f} cores.")
        else:
            out.append(head + f"Without --kinds it takes every message of tier 1 in (its XSUB subscribes to "
                       f"cua1/): {f2.per_msg_s * 1e6:,.1f} µs per message in{behind} × {total:,.0f} msg/s = "
                       f"{total * f2.per_msg_s:,.1f} cores and {total * size * 8 / 1e9:,.1f} Gbit/s in: not one "
                       f"process.")
    for res in results:
        s = res["roles"].get("summary")
        if s and s.get("cpu") is not None and s.get("sum_entries_per_s"):
            per_node_cpu = s["cpu"] / max(1, s["summaries_held"])
            per_entry = s["cpu"] / s["sum_entries_per_s"]
            every = res["summary_interval_s"] if res.get("summaries_tier") else 1.0 / a.rate_hz
            out.append(f"- a client following every summary ({res['kind']}: one per node per {every:g} s, with hb and topo): "
                       f"{s['cpu']:.1%} of a core for {s['summaries_held']} nodes ({per_entry * 1e6:,.1f} µs per "
                       f"entry, all its messages included) -> {per_node_cpu * nodes:,.2f} cores for {nodes:,} nodes "
                       f"({nodes * a.gpus / every:,.0f} entries/s).")
    res_client = [(res["kind"], res["roles"]["client"]) for res in results if res["roles"].get("client")]
    for kind, c in res_client[:1]:
        if c["applied_per_s"]:
            per = c["cpu"] / c["applied_per_s"]
            out.append(f"- a client following everything: {per * 1e6:,.1f} µs per message ({kind}) -> "
                       f"{total * per:,.1f} cores for all {total:,.0f} msg/s.")
    for res in results:
        snap = res["roles"].get("snapshot")
        rows = [s for s in (snap or {}).get("snapshots", []) if s.get("reply_s") is not None and s.get("seqs")]
        if rows:
            per_topic = sorted(s["reply_s"] / s["seqs"] for s in rows)[len(rows) // 2]
            per_byte = sum(s["bytes"] for s in rows) / sum(s["seqs"] for s in rows)
            if res.get("summaries_tier"):
                topics, what = nodes, "cua1/sum/ snapshot"
            else:
                topics, what = nodes * (a.gpus + 3), "full snapshot"  # topo, sum, hb and a state per GPU
            out.append(f"- {what} ({res['kind']}): {per_topic * 1e6:,.1f} µs and {per_byte:,.0f} B per topic "
                       f"measured ({rows[-1]['seqs']:,} topics) -> {topics * per_topic:,.2f} s and "
                       f"{topics * per_byte / 1e6:,.1f} MB for {topics:,} topics from one relay.")
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--rate-hz", type=float, default=10.0)
    ap.add_argument("--profile", default="sm", choices=("sm", "device"))
    ap.add_argument("--publishers", type=int, default=1, help="fleet processes (nodes split among them)")
    ap.add_argument("--tier1-relays", type=int, default=2, help="relays in tier 1 of the two-tier phases")
    ap.add_argument("--summary-interval-s", type=float, default=1.0,
                    help="the tier-2 relay's --summary-interval-s in the summaries phase (tier2)")
    ap.add_argument("--seconds", type=float, default=10.0, help="measured seconds per phase")
    ap.add_argument("--warmup", type=float, default=6.0, help="seconds for clients to join before measuring")
    ap.add_argument("--phases", default="publisher,proxy,tier1,tier2",
                    help="publisher,proxy,tier1,tier2 (summaries tier, --kinds),tier2nokinds (the same without --kinds),"
                         "tier2full (and old with --old-tree)")
    ap.add_argument("--relay-cmd", default="{python} -m cuagent.cli relay",
                    help="the relay under test; --name/--feed/--sync/--connect are appended")
    ap.add_argument("--relay-arg", action="append", help="one more relay argument (repeat; --relay-arg=--opt=value)")
    ap.add_argument("--tree", default=str(ROOT / "python"), help="PYTHONPATH of fleets, relays and clients")
    ap.add_argument("--old-tree", help="python/ of another cuagent for the `old` phase's relay")
    ap.add_argument("--counter-decode-every", type=int, default=1,
                    help="tier counters decode every Kth header (K > 1: no gap count; for rates a Python counter "
                         "cannot decode)")
    ap.add_argument("--json", help="write every figure here")
    # Role processes (started by the phases).
    ap.add_argument("--role", choices=("counter", "client", "snapshot"), help=argparse.SUPPRESS)
    ap.add_argument("--connect", help=argparse.SUPPRESS)
    ap.add_argument("--prefix", default="cua1/", help=argparse.SUPPRESS)
    ap.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--every", type=float, default=2.0, help=argparse.SUPPRESS)
    ap.add_argument("--decode-every", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--sum-downsampled", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.role:
        result = {"counter": role_counter, "client": role_client, "snapshot": role_snapshot}[a.role](a)
        Path(a.out + ".tmp").write_text(json.dumps(result))
        os.replace(a.out + ".tmp", a.out)
        return
    phases = [p.strip() for p in a.phases.split(",") if p.strip()]
    if a.old_tree and "old" not in phases:
        phases.append("old")
    load = os.getloadavg()
    print(f"fan-in: {a.nodes} nodes × {a.gpus} GPUs at {a.rate_hz:g} Hz ({a.profile} profile), {a.publishers} "
          f"publisher(s), {a.seconds:g} s per phase; {os.cpu_count()} CPUs, load average {load[0]:.1f} at start; "
          f"relay: {a.relay_cmd} {' '.join(a.relay_arg or [])}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="cuagent-fanin-") as tmp:
        for kind in phases:
            sub = Path(tmp) / kind
            sub.mkdir()
            results.append(phase(a, kind, sub))
            print(f"  {kind} done (load average {os.getloadavg()[0]:.1f})", flush=True)
    print(report(results, a))
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    if a.json:
        Path(a.json).write_text(json.dumps({"args": vars(a), "results": results}, indent=1))


if __name__ == "__main__":
    main()
