"""Aggregation throughput: the C++ aggregator vs the same aggregation in numpy, one core.

Pre-generates raw samples for 8 simulated H100s (132 SMs; active, occupancy,
issue, tensor and mem_stall per SM, plus 10 device counters) and aggregates
them into 100 ms windows at full speed: per-value mean and max, GPC/TPC groups,
partition/device rollups, element states with hysteresis and idle_units.
Reports unit-counter values aggregated per second and the ratio to two numpy
baselines: window-batched (buffer a whole window, then reduce it with nanmean
and friends: numpy's best case, but it holds a window of raw samples) and
per-sample fold (the engine's streaming shape, written in numpy).

    python bench/aggregate.py [--samples-per-window 1000] [--windows 8]
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from cuagent import _core

UNITS, TPCS, GPCS = 132, 66, 9
UNIT_COUNTERS = ["active", "occupancy", "issue", "tensor", "mem_stall"]
ROLLUP = {"active": "sm_active", "occupancy": "sm_occupancy", "tensor": "tensor_active"}
DEVICE_COUNTERS = ["power", "temp", "sm_clock", "mem_clock", "mem_used", "dram_active", "pcie_tx", "pcie_rx",
                   "nvlink_tx", "nvlink_rx"]
WINDOW_NS = 100_000_000

Floats = npt.NDArray[np.floating]
# One window of the batched baseline: per-value mean and max, per-level group means, the
# counters' rollups, the element states and idle_units (kept so numpy cannot skip the work).
WindowResult = tuple[Floats, Floats, dict[str, Floats], Floats, npt.NDArray[np.uint8], float]


def h100_like() -> "_core.DeviceDescription":
    d = _core.DeviceDescription()
    d.id, d.vendor, d.model, d.backend, d.unit_kind = "bench-0", "mock", "H100-like", "mock", "sm"
    d.units = UNITS
    d.levels = ["gpc", "tpc", "sm"]
    d.counts = [GPCS, TPCS, UNITS]
    tpc = np.arange(UNITS) // 2
    d.layout = [(tpc % GPCS).tolist(), tpc.tolist()]  # interleaved, like the real part
    p = _core.Partition()
    p.id, p.kind, p.units = "0", "whole", UNITS
    d.partitions = [p]
    d.counters = [_core.CounterSpec(n, "sm", "ratio", "", _core.Aggregation.mean, ROLLUP.get(n, ""))
                  for n in UNIT_COUNTERS] + [_core.CounterSpec(n, "device", "W") for n in DEVICE_COUNTERS]
    return d


def numpy_aggregate(windows: int, block: npt.NDArray[np.float32], layout: Sequence[Sequence[int]],
                    thresholds: Mapping[str, float]) -> list[WindowResult]:
    """Baseline 1: the same window aggregation, vectorised with numpy over a buffered
    window of raw samples (`block`: one window's rows; every window holds the same)."""
    n_unit = len(UNIT_COUNTERS) * UNITS
    state = np.zeros(UNITS, dtype=np.uint8)
    gpc_of = np.asarray(layout[0])
    tpc_of = np.asarray(layout[1])
    results: list[WindowResult] = []
    for _ in range(windows):
        w = block
        mean = np.nanmean(w, axis=0)
        mx = np.nanmax(w, axis=0)
        unit_mean = mean[:n_unit].reshape(len(UNIT_COUNTERS), UNITS)
        unit_max = mx[:n_unit].reshape(len(UNIT_COUNTERS), UNITS)
        groups: dict[str, Floats] = {}
        for level, of, count in (("gpc", gpc_of, GPCS), ("tpc", tpc_of, TPCS)):
            sums = np.stack([np.bincount(of, weights=m, minlength=count) for m in unit_mean])
            groups[level] = sums / np.bincount(of, minlength=count)
            gmax = np.full((len(UNIT_COUNTERS), count), -np.inf)
            for c in range(len(UNIT_COUNTERS)):
                np.maximum.at(gmax[c], of, unit_max[c])
        rollups = unit_mean.mean(axis=1)
        active, occ, stall = unit_mean[0], unit_mean[1], unit_mean[4]
        h = thresholds["hysteresis"]
        thr = (active >= 0.5 - np.where(state == 3, h, 0)) & (stall >= 0.6 - np.where(state == 3, h, 0))
        sat = occ >= 0.9 - np.where(state == 2, h, 0)
        idle = active < 0.05 + np.where(state == 0, h, 0)
        state = np.where(thr, 3, np.where(sat, 2, np.where(idle, 0, 1))).astype(np.uint8)
        results.append((mean, mx, groups, rollups, state, float(np.sum(1 - active))))
    return results


def numpy_streaming(t_ns: npt.NDArray[np.int64], pool: npt.NDArray[np.float32], layout: Sequence[Sequence[int]],
                    thresholds: Mapping[str, float]) -> int:
    """Baseline 2: the engine's shape in numpy: fold each sample as it arrives,
    finish a window when a later one starts (no buffering of whole windows)."""
    width = pool.shape[1]
    total = np.zeros(width, np.float32)
    count = np.zeros(width, np.uint32)
    mx = np.full(width, -np.inf, np.float32)
    window = t_ns[0] // WINDOW_NS
    finished = 0
    n_unit = len(UNIT_COUNTERS) * UNITS
    gpc_of = np.asarray(layout[0])
    state = np.zeros(UNITS, np.uint8)
    for i, t in enumerate(t_ns):
        v = pool[i % len(pool)]
        k = t // WINDOW_NS
        if k > window:
            mean = total / np.maximum(count, 1)
            active = mean[:UNITS]
            np.bincount(gpc_of, weights=active, minlength=GPCS)
            state = np.where(active < 0.05 + np.where(state == 0, thresholds["hysteresis"], 0), 0, 1).astype(np.uint8)
            mean[:n_unit].reshape(len(UNIT_COUNTERS), UNITS).mean(axis=1)
            finished += 1
            total[:] = 0
            count[:] = 0
            mx[:] = -np.inf
            window = k
        ok = v == v
        total += np.where(ok, v, 0)
        count += ok
        np.fmax(mx, v, out=mx)
    return finished


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--samples-per-window", type=int, default=1000, help="1000 = 10 kHz sampling")
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="best of N")
    parser.add_argument("--pool", type=int, default=250,
                        help="distinct samples per device, replayed in order (the ring's working set)")
    args = parser.parse_args()
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says
    except (AttributeError, OSError):
        pass

    desc = h100_like()
    rng = np.random.default_rng(1)
    n = args.samples_per_window * (args.windows + 1)
    t_ns = (np.arange(n, dtype=np.int64) * WINDOW_NS) // args.samples_per_window
    harness0 = _core.AggregatorHarness(desc, _core.StateThresholds(), WINDOW_NS, 0)
    width = harness0.values
    if args.samples_per_window % args.pool:
        parser.error("--pool must divide --samples-per-window")
    # Each device replays a ring-sized pool of distinct samples with advancing
    # timestamps: in the engine the aggregator reads samples from a ring of a few
    # hundred slots, so its input is cache-resident, not a stream from memory.
    pools = [rng.random((args.pool, width), dtype=np.float32) for _ in range(args.devices)]
    unit_values = len(UNIT_COUNTERS) * UNITS * n * args.devices

    def run_ours() -> float:
        harnesses = [_core.AggregatorHarness(desc, _core.StateThresholds(), WINDOW_NS, 0) for _ in pools]
        start = time.perf_counter()
        for h, pool in zip(harnesses, pools):
            for c in range(0, n, args.pool):
                h.add(t_ns[c:c + args.pool], pool)
        elapsed = time.perf_counter() - start
        assert all(h.windows == args.windows for h in harnesses)
        return elapsed

    blocks = [np.tile(pool, (args.samples_per_window // args.pool, 1)) for pool in pools]

    def run_numpy() -> float:
        start = time.perf_counter()
        for block in blocks:
            out = numpy_aggregate(args.windows, block, desc.layout, {"hysteresis": 0.05})
            assert len(out) == args.windows
        return time.perf_counter() - start

    def run_streaming() -> float:
        start = time.perf_counter()
        for pool in pools:
            assert numpy_streaming(t_ns, pool, desc.layout, {"hysteresis": 0.05}) == args.windows
        return time.perf_counter() - start

    ours = min(run_ours() for _ in range(args.repeat))
    base = min(run_numpy() for _ in range(args.repeat))
    stream = min(run_streaming() for _ in range(2))
    print(f"devices={args.devices} samples/window={args.samples_per_window} windows={args.windows} "
          f"values/sample={width} pool={args.pool} samples/device (unit-counter values: {unit_values:,})")
    print(f"cuagent C++ aggregator : {ours * 1e3:9.2f} ms  {unit_values / ours / 1e6:9.1f} M unit-counter values/s")
    print(f"numpy baseline         : {base * 1e3:9.2f} ms  {unit_values / base / 1e6:9.1f} M unit-counter values/s")
    print(f"numpy per-sample fold  : {stream * 1e3:9.2f} ms  {unit_values / stream / 1e6:9.1f} M unit-counter values/s")
    print(f"ratio vs numpy window-batched: {base / ours:.1f}x   vs numpy per-sample fold: {stream / ours:.1f}x")


if __name__ == "__main__":
    main()
