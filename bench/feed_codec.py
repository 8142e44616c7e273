"""Encode/decode cost and size of one `state` message (8-counter H100 window, 132 SMs):
cuagent.wire (msgpack + float32 bin) against JSON of the same content, in one run.

    python bench/feed_codec.py
"""

from __future__ import annotations

import json
import time

import msgpack
import numpy as np

from cuagent import wire as p  # noqa: E402

UNITS = 132
COUNTERS = ("active", "occupancy", "issue", "tensor", "mem_stall")


def make_state(rng: np.random.Generator) -> p.State:
    levels = {"sm": {c: p.Stat(rng.random(UNITS, dtype=np.float32), rng.random(UNITS, dtype=np.float32)) for c in COUNTERS}}
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


def from_json(text: str) -> dict:
    m = json.loads(text)
    # Same end product as the binary decoder: numpy arrays per level/counter.
    for entries in m["levels"].values():
        for k, v in entries.items():
            entries[k] = np.asarray(v, np.uint8) if k == "state" else p.Stat(np.asarray(v["mean"], np.float32), np.asarray(v["max"], np.float32))
    return m


def per_call(fn, n: int) -> float:
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


if __name__ == "__main__":
    main()
