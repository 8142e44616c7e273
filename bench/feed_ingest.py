"""ClusterView ingest: `state` messages per second one core applies (decode, seq check,
view update), for 132-unit devices from many simulated nodes; against a JSON-based client
doing the same bookkeeping, in one run.

    python bench/feed_ingest.py [--nodes 64] [--devices 8]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from cuagent import wire as p  # noqa: E402
from cuagent.client import Client  # noqa: E402
from feed_codec import make_state, to_json  # noqa: E402

AGENT = p.AgentInfo("bench", "bench", 1, 1)


def device(i: int) -> p.Device:
    units = 132
    counters = {c: p.CounterInfo("sm", "ratio", "") for c in ("active", "occupancy", "issue", "tensor", "mem_stall")}
    return p.Device(id=f"mock-{i}", index=i, vendor="mock", model="H100", backend="mock", unit="sm", units=units,
                    levels=["gpc", "tpc", "sm"], counts={"gpc": 8, "tpc": 66, "sm": units},
                    layout={"tpc": np.arange(units) // 2, "gpc": (np.arange(units) // 2) % 8}, layout_source="mock",
                    partitions=[p.PartitionInfo("0", "whole", units, 1 << 36)], memory_bytes=1 << 36, counters=counters)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=64)
    ap.add_argument("--devices", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    rng = np.random.default_rng(2)
    states = [make_state(rng) for _ in range(16)]
    bodies = [p.pack(p.encode_state_body(s)) for s in states]
    devs = [device(i) for i in range(args.devices)]
    nodes = [f"node-{n:03d}" for n in range(args.nodes)]

    client = Client([f"ipc:///tmp/cuagent-bench-unused-{id(rng)},ipc:///tmp/cuagent-bench-unused-sync"],
                    context=zmq.Context())
    session = client.sessions[0]
    topo = [[f"cua1/topo/{n}/".encode(), p.encode_header(p.Header(n, 7, 1, 1, 1)), p.pack(p.encode_topo_body(devs, AGENT))] for n in nodes]
    session.join_from(p.decode_snapshot_reply(p.snapshot_reply(7, topo, {t[0].decode(): 1 for t in topo})))

    # Pre-built feed frames, as they come off the socket: every node x device x round.
    msgs = []
    for r in range(args.rounds):
        for n in nodes:
            for d in range(args.devices):
                topic = f"cua1/state/{n}/mock-{d}/".encode()
                msgs.append([topic, p.encode_header(p.Header(n, 7, r + 1, 1, 1)), bodies[(r + d) % len(bodies)]])
    t0 = time.perf_counter()
    for frames in msgs:
        session.receive(frames)
    ours = len(msgs) / (time.perf_counter() - t0)
    assert client.stats.gaps == 0 and client.stats.decode_errors == 0, client.stats
    assert client.stats.applied >= len(msgs)

    # Baseline: the same bookkeeping with JSON messages (topic + one JSON envelope).
    texts = [to_json(s) for s in states]
    jmsgs = [(m[0], json.dumps({"node": m[0].split(b"/")[2].decode(), "seq": r, "epoch": 7}), texts[i % len(texts)])
             for i, (m, r) in enumerate((m, i // (args.nodes * args.devices) + 1) for i, m in enumerate(msgs))]
    jmsgs = jmsgs[: max(2000, len(jmsgs) // 10)]
    view: dict = {}
    seqs: dict = {}
    t0 = time.perf_counter()
    for topic, header, body in jmsgs:
        h = json.loads(header)
        if h["seq"] <= seqs.get(topic, 0):
            continue
        seqs[topic] = h["seq"]
        b = json.loads(body)
        for entries in b["levels"].values():
            for k, v in entries.items():
                entries[k] = np.asarray(v, np.uint8) if k == "state" else (np.asarray(v["mean"], np.float32), np.asarray(v["max"], np.float32))
        view[topic] = b
    base = len(jmsgs) / (time.perf_counter() - t0)
    print(f"ClusterView ingest, {args.nodes} nodes x {args.devices} devices x 132 SMs, {len(msgs)} state messages:")
    print(f"  cuagent client {ours:10,.0f} msg/s   json client {base:10,.0f} msg/s   ratio {ours / base:5.1f}x  (target >= 20,000/s)")
    client.close()


if __name__ == "__main__":
    main()
