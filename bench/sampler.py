"""Sampler: achieved rate, skipped ticks and wake-up jitter at 1 kHz and 10 kHz.

Runs the engine on 8 mock H100s for a few seconds at each rate, then, in the
same run, a baseline: a Python loop on the same absolute deadlines reading the
same mock devices (through the driver binding). Jitter is wake-up time minus
deadline. A quiet machine is assumed: other load shows up as skipped ticks.

    python bench/sampler.py [--seconds 3] [--devices 8]
"""

from __future__ import annotations

import argparse
import time
from typing import TypedDict

import numpy as np

from cuagent import Engine, MockDevice, _core
from machine import Steal


class RunFigures(TypedDict):
    """One run's row: achieved Hz, ticks, skipped ticks, drops, and wake-up jitter in µs."""
    achieved: float
    ticks: int
    skipped: int
    drops: int
    p50: float
    p99: float
    max: float


def run_engine(rate: float, seconds: float, devices: int) -> RunFigures:
    devs = [MockDevice("h100-sxm", scenario="training") for _ in range(devices)]
    with Engine(driver="mock", devices=devs, rate_hz=rate, window_ms=100, seed=1) as engine:
        time.sleep(seconds)
        s = engine.stats()
    return RunFigures(achieved=s.achieved_rate_hz, ticks=s.ticks, skipped=s.skipped_ticks, drops=s.drops,
                p50=s.jitter_p50_ns / 1e3, p99=s.jitter_p99_ns / 1e3, max=s.jitter_max_ns / 1e3)


def run_python(rate: float, seconds: float, devices: int) -> RunFigures:
    """The baseline: the same deadline loop and the same reads, in Python."""
    driver = _core.make_mock_driver([MockDevice("h100-sxm", scenario="training").to_spec()] * devices, 1)
    period = 1e9 / rate
    t0 = time.monotonic_ns() + int(period)
    k = ticks = skipped = 0
    lateness: list[int] = []
    end = t0 + int(seconds * 1e9)
    while True:
        deadline = t0 + int(k * period)
        if deadline >= end:
            break
        delay = (deadline - time.monotonic_ns()) / 1e9
        if delay > 0:
            time.sleep(delay)
        woke = time.monotonic_ns()
        lateness.append(woke - deadline)
        for d in range(devices):
            _core.driver_read(driver, d, woke)
        ticks += 1
        first_future = int((time.monotonic_ns() - t0) // period) + 1
        if first_future > k + 1:
            skipped += first_future - (k + 1)
            k = first_future
        else:
            k += 1
    late = np.asarray(lateness) / 1e3
    return RunFigures(achieved=ticks / seconds, ticks=ticks, skipped=skipped, drops=0,
                p50=float(np.percentile(late, 50)), p99=float(np.percentile(late, 99)), max=float(late.max()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--rates", default="1000,10000")
    args = parser.parse_args()
    print(f"{args.devices} mock H100s, {args.seconds:g} s per run; jitter = wake-up minus deadline (us)")
    print(f"{'rate':>7} {'who':>7} {'achieved Hz':>12} {'ticks':>7} {'skipped':>8} {'drops':>6} "
          f"{'p50 us':>8} {'p99 us':>8} {'max us':>8}")
    with Steal() as steal:
        for rate in (float(r) for r in args.rates.split(",")):
            for who, fn in (("cuagent", run_engine), ("python", run_python)):
                r = fn(rate, args.seconds, args.devices)
                print(f"{rate:7.0f} {who:>7} {r['achieved']:12.1f} {r['ticks']:7d} {r['skipped']:8d} {r['drops']:6d} "
                      f"{r['p50']:8.1f} {r['p99']:8.1f} {r['max']:8.1f}")
    print(steal.summary())


if __name__ == "__main__":
    main()
