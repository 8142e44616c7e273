"""A relay's snapshot of one node (PROTOCOL.md §4, §7) in a table of a cluster's topics: the
node's own topics (what a client's or a downstream relay's join of one node asks for, one
prefix per kind) against a scan of the whole table, in one run and one build.

The scan is asked for with the same node's prefix less its closing ``/``
(``cua1/state/node00042``): node names here are all one width, so it covers the same topics,
but it does not name one node whole, so the table scans every topic as it did for every prefix
before. Both hold the table's lock while they copy, and the forwarding thread waits on it: the
second part ingests state messages on this thread while another joins one node after another,
and prints the messages ingested per second with no joins, with indexed joins and with scans.

A third part merges a whole table's snapshot reply (a downstream relay's join of everything)
into an empty table, at an eighth of the nodes and at all of them: the cost per node should
not grow with the nodes (it did: each message's node was looked up by a pass over the nodes
merged so far).

    python bench/relay_snapshot.py [--nodes 10000] [--devices 8] [--seconds 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from cuagent import _core  # noqa: E402
from cuagent import wire as p  # noqa: E402
from feed_codec import make_state  # noqa: E402
from feed_ingest import AGENT, device  # noqa: E402

EPOCH = 7


def node_name(i: int) -> str:
    return f"node{i:05d}"


def header(node: str, seq: int) -> bytes:
    return p.encode_header(p.Header(node, EPOCH, seq, 1, 1))


def fill(table: _core.RelayTable, nodes: int, devices: int, state_body: bytes) -> None:
    """Every node heard from its first topo: a topo, a state per device, an hb and a sum."""
    topo = p.pack(p.encode_topo_body([device(d) for d in range(devices)], AGENT))
    for i in range(nodes):
        name = node_name(i)
        table.ingest([p.build_topic("topo", name).encode(), header(name, 1), topo], 0)
        for d in range(devices):
            table.ingest([p.build_topic("state", name, f"mock-{d}").encode(), header(name, 1), state_body], 0)
        table.ingest([p.build_topic("hb", name).encode(), header(name, 1), p.pack(p.encode_hb_body({}, 1.0, 0, 1.0))], 0)
        table.ingest([p.build_topic("sum", name).encode(), header(name, 1), p.pack({"devices": devices})], 0)


def join_prefixes(node: str, whole_name: bool) -> list[str]:
    """The prefixes of one node's join; without the closing "/" they make the table scan."""
    return [prefix if whole_name else prefix[:-1] for prefix in p.node_prefixes(node)]


def per_snapshot_us(table: _core.RelayTable, nodes: int, whole_name: bool, rounds: int) -> float:
    times = []
    for r in range(rounds):
        prefix = join_prefixes(node_name(r * 7919 % nodes), whole_name)[1]  # cua1/state/<node>/
        t0 = time.perf_counter()
        table.snapshot(prefix)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def ingest_rate(table: _core.RelayTable, nodes: int, devices: int, state_body: bytes, seconds: float,
                joins: str) -> tuple[float, int]:
    """State messages ingested per second on this thread while another thread joins one node
    after another (`joins`: "none", "index", "scan"), and how many joins it made."""
    stop = threading.Event()
    joined = [0]

    def joiner() -> None:
        i = 0
        while not stop.is_set():
            for prefix in join_prefixes(node_name(i % nodes), joins == "index"):
                table.snapshot(prefix)
            joined[0] += 1
            i += 7919

    frames = [(p.build_topic("state", node_name(i), f"mock-{d}").encode(), node_name(i))
              for i in range(nodes) for d in range(devices)]
    seq = 1  # each batch's seq is past every seq before it: no message is a duplicate
    thread = threading.Thread(target=joiner) if joins != "none" else None
    if thread is not None:
        thread.start()
    done, at, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        seq += 1
        for topic, name in frames[at:at + 4096]:
            table.ingest([topic, header(name, seq), state_body], 0)
        done += len(frames[at:at + 4096])
        at = (at + 4096) % len(frames)
    elapsed = time.perf_counter() - t0
    stop.set()
    if thread is not None:
        thread.join()
    return done / elapsed, joined[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=10000)
    ap.add_argument("--devices", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=2.0, help="per ingest run (default 2)")
    ap.add_argument("--rounds", type=int, default=200, help="snapshots timed per way (default 200)")
    args = ap.parse_args()

    state_body = p.pack(p.encode_state_body(make_state(np.random.default_rng(1))))
    table = _core.RelayTable()
    t0 = time.perf_counter()
    fill(table, args.nodes, args.devices, state_body)
    topics = table.stats()["topics"]
    print(f"table: {args.nodes} nodes x {args.devices} devices, {topics} topics (filled in "
          f"{time.perf_counter() - t0:.1f} s)")

    index_us = per_snapshot_us(table, args.nodes, True, args.rounds)
    scan_us = per_snapshot_us(table, args.nodes, False, max(10, args.rounds // 10))
    print("\none node's state prefix, median per snapshot (lock held + Python objects):")
    print(f"  node's own topics  {index_us:10.1f} us")
    print(f"  whole-table scan   {scan_us:10.1f} us")
    print(f"  ratio scan / own   {scan_us / index_us:10.0f}x")

    print(f"\nstate messages ingested per second on one thread, {args.seconds:.0f} s each, while another "
          "thread joins nodes (5 prefixes each):")
    rates = {}
    for joins in ("none", "index", "scan"):
        rate, joined = ingest_rate(table, args.nodes, args.devices, state_body, args.seconds, joins)
        rates[joins] = rate
        print(f"  joins: {joins:5s}  {rate:10.0f} msg/s  ({joined} joins)")
    print(f"  ingest rate kept: indexed joins {rates['index'] / rates['none']:.2f}, "
          f"scanning joins {rates['scan'] / rates['none']:.2f} of none")

    print("\na whole snapshot reply merged into an empty table (a downstream relay's join):")
    per_node = []
    for nodes in (max(1, args.nodes // 8), args.nodes):
        source = _core.RelayTable()
        fill(source, nodes, args.devices, state_body)
        messages, seqs, epochs, silent, stale, _ = source.snapshot("cua1/")
        reply = p.snapshot_reply(EPOCH, messages, seqs, epochs=epochs, silent_s=silent, stale=stale)
        del source, messages
        t0 = time.perf_counter()
        ok, error, _, covered = _core.RelayTable().merge_snapshot(reply)
        took = time.perf_counter() - t0
        assert ok and len(covered) == nodes, error
        per_node.append(took / nodes * 1e6)
        print(f"  {nodes:6d} nodes, {len(reply) / 1e6:6.0f} MB: {took:6.2f} s, {per_node[-1]:6.0f} us per node")
    print(f"  per-node cost at {args.nodes} nodes over {max(1, args.nodes // 8)}: {per_node[1] / per_node[0]:.2f}x")


if __name__ == "__main__":
    main()
