"""A synthetic GPU fleet for the scheduling benchmarks (imported by them, not one): nodes of
H100s with the measured 132-SM GPC/TPC layout (from the mock preset), each device in one of
a few load patterns, built through the wire codec exactly as a Client decodes it."""

from __future__ import annotations

import dataclasses

import numpy as np

from cuagent import MockDevice, protocol
from cuagent.client import ClusterView, DeviceView, NodeView
from cuagent.engine import Engine
from cuagent.topology import CounterStat

T0 = 1_700_000_000_000_000_000
STEP = 100_000_000


def h100_topology() -> protocol.Device:
    with Engine(driver="mock", devices=[MockDevice("h100-sxm", scenario="idle")], rate_hz=100, window_ms=100) as eng:
        topo = eng.topology()[0]
    return protocol.decode_device(protocol.encode_device(topo))


def _activity(rng: np.random.Generator, topo: protocol.Device, pattern: int) -> tuple[np.ndarray, np.ndarray]:
    n = topo.units
    gpc = topo.layout["gpc"]
    if pattern == 0:  # idle
        a = np.zeros(n)
    elif pattern == 1:  # training
        a = rng.uniform(0.85, 1.0, n)
    elif pattern == 2:  # fragmented: some GPCs idle
        idle = rng.choice(topo.counts["gpc"], size=3, replace=False)
        a = np.where(np.isin(gpc, idle), 0.0, rng.uniform(0.6, 0.9, n))
    else:  # inference: scattered bursts
        a = np.where(rng.random(n) < 0.4, 0.0, rng.uniform(0.2, 0.8, n))
    stall = rng.uniform(0.0, 0.8, n) if pattern == 1 else np.zeros(n)
    return a.astype(np.float32), stall.astype(np.float32)


def state(topo: protocol.Device, active: np.ndarray, stall: np.ndarray, mem_used: float) -> protocol.State:
    states = np.where(active < 0.05, protocol.IDLE, protocol.ACTIVE).astype(np.uint8)
    states[(active >= 0.5) & (stall >= 0.6)] = protocol.THRASHING
    s = protocol.State(window_ns=STEP, samples=100,
                       levels={"sm": {"active": CounterStat(active, active), "mem_stall": CounterStat(stall, stall),
                                      "state": states}},
                       partition={"0": {"sm_active": float(active.mean())}},
                       device={"sm_active": float(active.mean()), "mem_used": mem_used},
                       idle_units=float(np.sum(1.0 - active)))
    counters = dict(topo.counters)
    counters.setdefault("mem_stall", protocol.CounterInfo("sm", "ratio", ""))
    counters.setdefault("mem_used", protocol.CounterInfo("device", "bytes", ""))
    counters.setdefault("sm_active", protocol.CounterInfo("partition", "ratio", ""))
    body = protocol.unpack(protocol.pack(protocol.encode_state_body(s, counters)))
    return protocol.decode_state_body(body)


def build(nodes: int, gpus: int, seed: int = 1) -> tuple[ClusterView, list[tuple[str, str, int, protocol.State]]]:
    """(view with every node's latest window, the windows in feed order)."""
    rng = np.random.default_rng(seed)
    topo = h100_topology()
    view = ClusterView()
    # A handful of distinct states, reused: building 8,000 different ones would time the
    # codec, not the scorer; what the scorer sees per device is still one of four patterns.
    pool = []
    for i in range(64):
        a, stall = _activity(rng, topo, i % 4)
        pool.append(state(topo, a, stall, float(rng.uniform(1e9, topo.memory_bytes))))
    windows = []
    for n in range(nodes):
        name = f"gpu-{n:04d}"
        nv = view.nodes[name] = NodeView(name, epoch=1)
        for g in range(gpus):
            dev = dataclasses.replace(topo, id=f"GPU-{n:04d}-{g}", index=g)
            st = pool[int(rng.integers(len(pool)))]
            nv.devices[dev.id] = DeviceView(name, dev, st, T0, 1)
            windows.append((name, dev.id, T0, st))
    return view, windows
