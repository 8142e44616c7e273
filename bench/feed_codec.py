"""Encode/decode cost and size of one `state` message (8-counter H100 window, 132 SMs):
cuagent.wire (msgpack + float32 bin) against JSON of the same content, in one run.

Then the agent's own encoding of one device's finished window (a mock H100's counters folded
by the C++ aggregator): the core's encoder (C++, from the window buffer: what the agent sends)
against the Python reference (window -> dict -> DeviceState -> body -> msgpack, what the agent
did before, and the body -> msgpack part alone), checked byte-identical.

    python bench/feed_codec.py
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Union

import msgpack
import numpy as np
import numpy.typing as npt

from cuagent import _core
from cuagent import wire as p  # noqa: E402
from cuagent.topology import DeviceState, DeviceTopology

UNITS = 132
COUNTERS = ("active", "occupancy", "issue", "tensor", "mem_stall")


def make_state(rng: np.random.Generator) -> p.State:
    # A level's entries: each counter's Stat, and the element states under "state".
    levels: dict[str, dict[str, Union[p.Stat, npt.NDArray[np.uint8]]]] = {"sm": {c: p.Stat(rng.random(UNITS, dtype=np.float32), rng.random(UNITS, dtype=np.float32)) for c in COUNTERS}}
    levels["sm"]["state"] = rng.integers(0, 4, UNITS).astype(np.uint8)
    return p.State(
        window_ns=100_000_000, samples=100, levels=levels,
        partition={"0": {"sm_active": 0.61, "sm_occupancy": 0.2, "tensor_active": 0.5}},
        device={"power": 612.5, "temp": 71.0, "sm_clock": 1.755e9, "mem_used": 6.1e10, "dram_active": 0.23},
        idle_units=51.2,
    )


def to_json(s: p.State) -> str:
    return json.dumps({
        "window_ns": s.window_ns, "samples": s.samples,
        "levels": {lv: {k: (v.tolist() if k == "state" else {"mean": v.mean.tolist(), "max": v.max.tolist()})
                        for k, v in e.items()} for lv, e in s.levels.items()},
        "partition": s.partition, "device": s.device, "idle_units": s.idle_units,
    })


def from_json(text: str) -> dict[str, Any]:
    m: dict[str, Any] = json.loads(text)
    # Same end product as the binary decoder: numpy arrays per level/counter.
    for entries in m["levels"].values():
        for k, v in entries.items():
            entries[k] = np.asarray(v, np.uint8) if k == "state" else p.Stat(np.asarray(v["mean"], np.float32), np.asarray(v["max"], np.float32))
    return m


def per_call(fn: Callable[[], object], n: int) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def main() -> None:
    s = make_state(np.random.default_rng(1))
    packed = p.pack(p.encode_state_body(s))
    text = to_json(s)
    n = 2000
    enc = per_call(lambda: p.pack(p.encode_state_body(s)), n)
    dec = per_call(lambda: p.decode_state_body(msgpack.unpackb(packed, raw=False)), n)
    jenc = per_call(lambda: to_json(s), n // 4)
    jdec = per_call(lambda: from_json(text), n // 4)
    print(f"state message, {UNITS} SMs x {len(COUNTERS)} counters (mean+max) + states:")
    print(f"  size    cuagent {len(packed):7d} B   json {len(text.encode()):7d} B   ratio {len(text.encode()) / len(packed):5.1f}x smaller")
    print(f"  encode  cuagent {enc * 1e6:7.1f} us  json {jenc * 1e6:7.1f} us  ratio {jenc / enc:5.1f}x faster")
    print(f"  decode  cuagent {dec * 1e6:7.1f} us  json {jdec * 1e6:7.1f} us  ratio {jdec / dec:5.1f}x faster")
    agent_encoding()


def engine_window() -> tuple[_core.AggregatorHarness, DeviceTopology]:
    """An aggregator holding one finished 100 ms window of a mock H100 (1 kHz samples)."""
    from cuagent.backends import mock

    driver = mock.make_driver([{"preset": "h100-sxm", "scenario": "fragmented"}], seed=3)
    desc = driver.device(0)
    harness = _core.AggregatorHarness(desc, _core.StateThresholds(), 100_000_000, 0)
    slots = harness.counter_slots()
    for k in range(150):
        t = k * 1_000_000
        _, values, _ = _core.driver_read(driver, 0, t)
        row = np.full((1, harness.values), np.nan, dtype=np.float32)
        for name, offset, elements in slots:
            row[0, offset:offset + elements] = values[name]
        harness.add(np.asarray([t], dtype=np.int64), row)
    return harness, DeviceTopology.from_description(desc)


def agent_encoding() -> None:
    harness, topo = engine_window()
    processes = [{"pid": 4242, "sm": 0.5, "mem": 1 << 30, "name": "train.py"}]
    extras, entries = p.encode_state_extras(processes)

    def python_path() -> bytes:
        window = harness.latest()
        assert window is not None  # engine_window() left one finished window
        state = DeviceState.from_window(topo, window)
        return p.pack(p.encode_state_body(state, topo.counters, processes))

    window = harness.latest()
    assert window is not None
    state = DeviceState.from_window(topo, window)
    core = harness.latest_state(extras, entries)
    assert core is not None
    assert core == python_path(), "the core's body differs from the reference's"
    n = 2000
    full = per_call(python_path, n)
    body = per_call(lambda: p.pack(p.encode_state_body(state, topo.counters, processes)), n)
    native = per_call(lambda: harness.latest_state(extras, entries), n)
    print(f"agent's encoding of one finished window (mock H100, {len(core)} B, bytes identical):")
    print(f"  core (C++, from the window buffer)                {native * 1e6:7.2f} us")
    print(f"  python: window -> DeviceState -> body -> msgpack  {full * 1e6:7.2f} us   ratio {full / native:5.1f}x")
    print(f"  python: body -> msgpack alone                     {body * 1e6:7.2f} us   ratio {body / native:5.1f}x")


if __name__ == "__main__":
    main()
