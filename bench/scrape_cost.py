"""Scrape cost of the Prometheus exporter inside `cuagent run`: 8 mock H100s, 1 kHz sampling,
10 Hz windows, scraped at a 1 s and a 15 s interval.

Two measurements, same run:

  1. The whole agent process (psutil, after a warm-up), without the exporter and with it
     scraped every 1 s and every 15 s, plus the wall time of each scrape (HTTP GET from this
     process). On a shared VM these differ by less than their noise.
  2. The exporter's own work, in this process with the same encoded windows the agent
     publishes: CPU per message handed to the hook (one per window and device, 80/s), and
     CPU per scrape (applying the queued windows, folding unit-seconds, building and
     formatting every family, the process's own metrics included) after 1 s and after 15 s of
     windows. Its share of a core at an
     interval is hook × 80/s + scrape / interval: what the exporter adds to the agent.

    python bench/scrape_cost.py [--seconds 45]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from machine import Steal, process_cpu

if TYPE_CHECKING:
    from cuagent.topology import DeviceTopology

GPUS = 8
WINDOWS_PER_S = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Scraper(threading.Thread):
    """GETs /metrics every ``interval`` s (retrying until the agent is up); keeps wall times."""

    def __init__(self, port: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.url, self.interval = f"http://127.0.0.1:{port}/metrics", interval
        self.times_ms: list[float] = []
        self.size = 0
        self.stop = threading.Event()

    def run(self) -> None:
        next_t = time.monotonic()
        while not self.stop.is_set():
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    self.size = len(r.read())
                self.times_ms.append((time.perf_counter() - t0) * 1e3)
                next_t += self.interval
            except OSError:
                next_t = time.monotonic() + 0.2  # not up yet
            self.stop.wait(max(0.0, next_t - time.monotonic()))


def agent_cpu(tmp: str, seconds: float, interval: Optional[float]) -> tuple[float, list[float], int]:
    args = [sys.executable, "-m", "cuagent.cli", "run", "--driver", "mock", "--mock-devices",
            ",".join(["h100-sxm:training"] * GPUS), "--node", "bench", "--feed", f"ipc://{tmp}/f",
            "--sync", f"ipc://{tmp}/s", "--rate-hz", "1000", "--publish-interval-ms", "100", "--log-level", "warning"]
    scraper = None
    if interval is not None:
        port = free_port()
        args += ["--metrics-listen", f"127.0.0.1:{port}"]
        scraper = Scraper(port, interval)
        scraper.start()
    try:
        cpu = process_cpu(args, seconds)
    finally:
        if scraper is not None:
            scraper.stop.set()
            scraper.join(5)
    return cpu, (scraper.times_ms if scraper else []), (scraper.size if scraper else 0)


# --------------------------------------------------------------------------- in-process


def recorded_windows() -> tuple[list[DeviceTopology], list[list[dict[str, Any]]]]:
    """1 s of real windows of 8 mock H100s, encoded as the agent encodes them."""
    from cuagent import Engine, MockDevice, protocol

    devices = [MockDevice("h100-sxm", scenario="training") for _ in range(GPUS)]
    with Engine(driver="mock", devices=devices, rate_hz=1000, window_ms=100, seed=1) as engine:
        topology = engine.topology()
        bodies: list[list[dict[str, Any]]] = [[] for _ in topology]  # per device, its state bodies
        seen: dict[int, int] = {}
        deadline = time.monotonic() + 30
        while min((len(b) for b in bodies), default=0) < WINDOWS_PER_S and time.monotonic() < deadline:
            for i, st in enumerate(engine.snapshot()):
                if st is not None and seen.get(i) != st.window_seq and len(bodies[i]) < WINDOWS_PER_S:
                    seen[i] = st.window_seq
                    bodies[i].append(protocol.encode_state_body(st, topology[i].counters))
            time.sleep(0.005)
    return topology, bodies


def exporter_work(rounds: int) -> dict[str, float]:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.process_collector import ProcessCollector

    from cuagent import protocol
    from cuagent.exporters.feed_metrics import FeedMetrics
    from cuagent.exporters.prometheus import FeedCollector
    from cuagent.protocol import AgentInfo, Header

    topology, bodies = recorded_windows()
    metrics = FeedMetrics()
    hook = metrics.agent_hook()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FeedCollector(metrics))
    ProcessCollector(registry=registry)  # served by the agent too
    node = "bench"
    topics = [protocol.build_topic("state", node, d.id) for d in topology]
    hook(protocol.build_topic("topo", node), Header(node, 1, 1, 0, 1),
         protocol.encode_topo_body(topology, AgentInfo("0", "h", 1, 0)))
    seq = [0]
    t_ns = [1_800_000_000 * 10**9]

    def push(seconds: int) -> float:
        """Hands `seconds` of windows of every GPU to the hook; CPU seconds it took."""
        c0 = time.process_time()
        for _ in range(seconds * WINDOWS_PER_S):
            t_ns[0] += 100_000_000
            k = (t_ns[0] // 100_000_000) % WINDOWS_PER_S
            for i, topic in enumerate(topics):
                seq[0] += 1
                hook(topic, Header(node, 1, seq[0], t_ns[0], 1), bodies[i][k])
        return time.process_time() - c0

    def scrape() -> tuple[float, int]:
        c0 = time.process_time()
        text = generate_latest(registry)
        return time.process_time() - c0, len(text)

    push(1)
    scrape()  # warm: first topo, first families
    hook_s, scrape1, scrape15 = [], [], []
    size = 0
    for _ in range(rounds):
        hook_s.append(push(1) / (GPUS * WINDOWS_PER_S))
        s1, size = scrape()
        scrape1.append(s1)
        hook_s.append(push(15) / (15 * GPUS * WINDOWS_PER_S))
        scrape15.append(scrape()[0])
    hook_med = statistics.median(hook_s)
    out = {"hook_us": hook_med * 1e6, "scrape1_ms": statistics.median(scrape1) * 1e3,
           "scrape15_ms": statistics.median(scrape15) * 1e3, "bytes": float(size)}
    per_s = hook_med * GPUS * WINDOWS_PER_S
    out["share1"] = 100 * (per_s + statistics.median(scrape1) / 1.0)
    out["share15"] = 100 * (per_s + statistics.median(scrape15) / 15.0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=45.0, help="measurement per agent configuration")
    ap.add_argument("--rounds", type=int, default=7, help="in-process rounds (medians)")
    a = ap.parse_args()
    with Steal() as steal:
        work = exporter_work(a.rounds)
        with tempfile.TemporaryDirectory() as tmp:
            base, _, _ = agent_cpu(tmp, a.seconds, None)
            cpu1, ms1, size = agent_cpu(tmp, a.seconds, 1.0)
            cpu15, ms15, _ = agent_cpu(tmp, a.seconds, 15.0)
    print(f"cuagent run --driver mock, {GPUS} x H100 (training), 1 kHz sampling, 10 Hz windows")
    print("1. whole agent process, % of one core (same run):")
    print(f"   without exporter            {base * 100:6.2f}%")
    for label, cpu, ms in (("scraped every  1 s", cpu1, ms1), ("scraped every 15 s", cpu15, ms15)):
        ms_s = f"scrape {statistics.median(ms):.1f} ms median, {max(ms):.1f} ms max, {len(ms)} scrapes" if ms else ""
        print(f"   exporter {label}   {cpu * 100:6.2f}%  (delta {100 * (cpu - base):+.2f}%)  {ms_s}")
    print(f"   exposition: {size} bytes")
    print("2. the exporter's own work (in-process, medians):")
    print(f"   hook: {work['hook_us']:.2f} us CPU per message ({GPUS * WINDOWS_PER_S}/s)")
    print(f"   scrape after  1 s of windows: {work['scrape1_ms']:.2f} ms CPU   -> {work['share1']:.3f}% of a core at a 1 s interval")
    print(f"   scrape after 15 s of windows: {work['scrape15_ms']:.2f} ms CPU   -> {work['share15']:.3f}% of a core at a 15 s interval")
    print("   (targets: <= 0.1 % of one core at 15 s; a scrape <= 5 ms)")
    print(steal.summary())


if __name__ == "__main__":
    main()
