"""ClusterView ingest: `state` messages per second one core applies (topic and header check,
seq logic, view update; the body decoded on arrival or when read), for 132-unit devices from
many simulated nodes. In one run:

- the eager client (``Client(lazy=False)``: every body decoded on arrival, as before the lazy
  client) against the lazy one (the default), when nothing is read, when a few devices are
  read after every round (a client following the states of a few), when every device is read
  after every round (every body decoded: the lazy client's worst case) and when every device
  is read once at the end;
- a JSON-based client doing the same bookkeeping (the historical baseline);
- with ``--parts``, where a message's time goes (µs per step).

Rates are messages per CPU-second of this process (``time.process_time``), the best of
``--repeat`` runs, the cases interleaved, so that other work on a shared machine moves them
less than wall time would.

    python bench/feed_ingest.py [--nodes 64] [--devices 8] [--rounds 20] [--repeat 3] [--parts]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import timeit
from pathlib import Path
from typing import Any, Callable, Optional

import msgpack
import numpy as np
import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from cuagent import wire as p  # noqa: E402
from cuagent.client import Client, DeviceView  # noqa: E402
from feed_codec import make_state, to_json  # noqa: E402
from machine import Steal  # noqa: E402

AGENT = p.AgentInfo("bench", "bench", 1, 1)
FEW = 8  # devices a "read a few" client reads after every round


def device(i: int) -> p.Device:
    units = 132
    counters = {c: p.CounterInfo("sm", "ratio", "") for c in ("active", "occupancy", "issue", "tensor", "mem_stall")}
    return p.Device(id=f"mock-{i}", index=i, vendor="mock", model="H100", backend="mock", unit="sm", units=units,
                    levels=["gpc", "tpc", "sm"], counts={"gpc": 8, "tpc": 66, "sm": units},
                    layout={"tpc": np.arange(units) // 2, "gpc": (np.arange(units) // 2) % 8}, layout_source="mock",
                    partitions=[p.PartitionInfo("0", "whole", units, 1 << 36)], memory_bytes=1 << 36, counters=counters)


class Feed:
    """Pre-built frames, as they come off the socket: every node x device x round."""

    def __init__(self, nodes: int, devices: int, rounds: int) -> None:
        rng = np.random.default_rng(2)
        self.states = [make_state(rng) for _ in range(16)]
        bodies = [p.pack(p.encode_state_body(s)) for s in self.states]
        devs = [device(i) for i in range(devices)]
        self.nodes = [f"node-{n:03d}" for n in range(nodes)]
        self.topo = [[f"cua1/topo/{n}/".encode(), p.encode_header(p.Header(n, 7, 1, 1, 1)),
                      p.pack(p.encode_topo_body(devs, AGENT))] for n in self.nodes]
        self.rounds: list[list[list[bytes]]] = []
        for r in range(rounds):
            msgs = []
            for n in self.nodes:
                for d in range(devices):
                    topic = f"cua1/state/{n}/mock-{d}/".encode()
                    msgs.append([topic, p.encode_header(p.Header(n, 7, r + 1, 1, 1)), bodies[(r + d) % len(bodies)]])
            self.rounds.append(msgs)
        self.count = sum(len(r) for r in self.rounds)

    def client(self, lazy: bool) -> Client:
        client = Client([f"ipc:///tmp/cuagent-bench-unused-{id(self)},ipc:///tmp/cuagent-bench-unused-sync"],
                        context=zmq.Context(), lazy=lazy)
        snap = p.snapshot_reply(7, self.topo, {t[0].decode(): 1 for t in self.topo})
        client.sessions[0].join_from(p.decode_snapshot_reply(snap))
        return client


Reader = Optional[Callable[[list[DeviceView]], None]]


def read_all(devices: list[DeviceView]) -> None:
    for dv in devices:
        assert dv.state is not None


def read_few(devices: list[DeviceView]) -> None:
    read_all(devices[:FEW])


def ingest(feed: Feed, lazy: bool, each_round: Reader = None, at_end: Reader = None) -> float:
    """Messages per CPU-second: receive every round (then read, if asked), as a client's
    poll loop would, delivering the updates of each round."""
    client = feed.client(lazy)
    session, state = client.sessions[0], client._state
    devices = list(client.view.devices())
    t0 = time.process_time()
    for msgs in feed.rounds:
        for frames in msgs:
            session.receive(frames)
        state.updates.clear()
        if each_round is not None:
            each_round(devices)
    if at_end is not None:
        at_end(devices)
    took = time.process_time() - t0
    s = client.stats
    assert s.gaps == 0 and s.decode_errors == 0 and s.applied >= feed.count, s
    if each_round is read_all or at_end is read_all:  # the values read are the ones sent
        assert devices[-1].state is not None and devices[-1].state.samples == feed.states[
            (len(feed.rounds) - 1 + int(devices[-1].id.split("-")[1])) % len(feed.states)].samples
    client.close()
    return feed.count / took


def json_baseline(feed: Feed) -> float:
    """The same bookkeeping with JSON messages (topic + one JSON envelope)."""
    texts = [to_json(s) for s in feed.states]
    msgs = [m for r in feed.rounds for m in r]
    jmsgs = [(m[0], json.dumps({"node": m[0].split(b"/")[2].decode(), "seq": i // len(feed.rounds[0]) + 1, "epoch": 7}),
              texts[i % len(texts)]) for i, m in enumerate(msgs)]
    jmsgs = jmsgs[: max(2000, len(jmsgs) // 10)]
    view: dict[bytes, dict[str, Any]] = {}  # topic -> its latest JSON body, arrays decoded
    seqs: dict[bytes, int] = {}
    t0 = time.process_time()
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
    return len(jmsgs) / (time.process_time() - t0)


def parts(feed: Feed) -> None:
    """CPU µs per step of one state message (timeit, best of 5)."""
    from cuagent.feed.lazy import LazyState

    topic, header, body = feed.rounds[0][0]
    node = feed.nodes[0]
    dev = device(0)
    hmap = msgpack.unpackb(header)
    hdr = p.decode_header(header)
    body_map = p.unpack(body)
    # The whole receive path of a lazy client, on a session that expects seq 2, 3, ...
    client = feed.client(True)
    session, state = client.sessions[0], client._state
    n_receive = 20_000
    heads = iter([p.encode_header(p.Header(node, 7, s, 1, 1)) for s in range(2, 2 + 5 * n_receive)])

    def receive() -> None:
        session.receive([topic, next(heads), body])
        if len(state.updates) > 1000:
            state.updates.clear()

    steps: list[tuple[str, Callable[[], object], int]] = [
        ("topic (parsed-topic cache)", lambda: p.parse_topic_cached(topic), 100_000),
        ("header: msgpack unpackb", lambda: msgpack.unpackb(header), 100_000),
        ("header: checks, general path", lambda: p.header_from_map(hmap), 100_000),
        ("header: unpack + checks, usual path", lambda: p.decode_header(header, node), 100_000),
        ("LazyState + DeviceView.receive", lambda: DeviceView(node, dev).receive(LazyState(body, dev, hdr)), 100_000),
        ("whole receive, lazy (seq, view, update)", receive, n_receive),
        ("body: msgpack unpack (eager, or on read)", lambda: p.unpack(body, "body"), 10_000),
        ("body: state decode, numpy views", lambda: p.decode_state_body(body_map, dev), 10_000),
    ]
    print("  where a state message's time goes (CPU µs, best of 5):")
    for name, fn, n in steps:
        best = min(timeit.repeat(fn, number=n, repeat=5, timer=time.process_time))
        print(f"    {name:44s} {best / n * 1e6:6.2f}")
    client.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=64)
    ap.add_argument("--devices", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--parts", action="store_true", help="also time the steps of one message")
    args = ap.parse_args()
    feed = Feed(args.nodes, args.devices, args.rounds)
    cases: dict[str, Callable[[], float]] = {
        "eager (decode on arrival)": lambda: ingest(feed, False),
        "lazy, nothing read": lambda: ingest(feed, True),
        f"lazy, {FEW} devices read every round": lambda: ingest(feed, True, each_round=read_few),
        "lazy, every device read every round": lambda: ingest(feed, True, each_round=read_all),
        "lazy, every device read once at the end": lambda: ingest(feed, True, at_end=read_all),
        "json client (eager)": lambda: json_baseline(feed),
    }
    best = {name: 0.0 for name in cases}
    with Steal() as steal:
        for _ in range(args.repeat):
            for name, fn in cases.items():
                best[name] = max(best[name], fn())
    eager = best["eager (decode on arrival)"]
    print(f"ClusterView ingest, {args.nodes} nodes x {args.devices} devices x 132 SMs, {feed.count} state messages, "
          f"msg per CPU-second, best of {args.repeat}:")
    for name, rate in best.items():
        print(f"  {name:42s} {rate:10,.0f} msg/s   {rate / eager:5.2f}x eager")
    print(f"  target: lazy >= 100,000 msg/s; {steal.summary()}")
    if args.parts:
        parts(feed)


if __name__ == "__main__":
    main()
