"""A device whose reads stall costs only itself (issue 8, part D).

Device 1 stalls one read for 300 ms every second. Device 0 must keep every window through device
1's stalls (its `ts` on the window grid, consecutive seqs), every lost window must show as a seq
gap that matches the jump in `ts` (never a silent jump), and no window is published twice."""

from __future__ import annotations

import time
from pathlib import Path

import msgpack
import pytest

from cuagent import Engine, MockDevice
from feed_support import WAIT_S, Proc, Recorder

WINDOW_NS = 100_000_000
STALL = {"slow_read_every_s": 1.0, "slow_read_ms": 300.0}


def _states(rec: Recorder) -> dict[str, list[tuple[int, int, int]]]:
    """(seq, ts, samples) of each device's `state` messages, in arrival order."""
    out: dict[str, list[tuple[int, int, int]]] = {}
    for topic, header, body in rec.frames:
        if not topic.startswith(b"cua1/state/"):
            continue
        h, b = msgpack.unpackb(header), msgpack.unpackb(body)
        out.setdefault(topic.decode().split("/")[3], []).append((h["seq"], h["ts"], b["samples"]))
    return out


def test_a_stalled_device_costs_the_other_nothing_and_every_lost_window_shows(tmp_path: Path) -> None:
    feed, sync = f"ipc://{tmp_path}/slow.feed", f"ipc://{tmp_path}/slow.sync"
    agent = Proc(["run", "--driver", "mock", "--mock-devices", "h100-sxm:training,h100-sxm:training", "--seed", "3",
                  "--mock-faults", "1:slow=300ms/1s", "--node", "node-slow", "--feed", feed, "--sync", sync,
                  "--rate-hz", "1000"],
                 feed, sync, tmp_path / "slow.log")
    rec = Recorder(feed, b"cua1/state/node-slow/")
    try:
        agent.wait_ping()
        # Until device 1 has stalled three times (a jump in its seqs or its `ts`), within a bound.
        deadline = time.monotonic() + WAIT_S
        while True:
            rec.drain(100)
            states = _states(rec)
            slow = states.get("mock-1", [])
            stalls = sum(1 for a, b in zip(slow, slow[1:]) if b[0] != a[0] + 1 or b[1] != a[1] + WINDOW_NS)
            if stalls >= 3:
                break
            assert time.monotonic() < deadline, f"device 1 never stalled 3 times: {slow}\n{agent.log()}"
    finally:
        rec.close()
        assert agent.stop() == 0, agent.log()

    for device, msgs in states.items():
        ts = [t for _, t, _ in msgs]
        assert len(ts) == len(set(ts)), f"{device} published a window twice: {msgs}"
        for (seq_a, ts_a, _), (seq_b, ts_b, _) in zip(msgs, msgs[1:]):
            # Each window lost between two sent ones is one seq skipped: a client sees the gap.
            assert ts_b > ts_a and (ts_b - ts_a) % WINDOW_NS == 0, (device, msgs)
            assert seq_b - seq_a == (ts_b - ts_a) // WINDOW_NS, f"{device}: unexplained jump {msgs}"
    # The windows device 1 lost to its stalls, device 0 has. Device 0 may still lose a window
    # of its own when this machine starves the agent of CPU for 100 ms (seen at load 8 on 2
    # cores), and such a loss may fall inside a stall; the shared-thread engine this guards
    # against lost every stalled window on both devices. So: most of them, by a wide margin.
    healthy = {ts for _, ts, _ in states["mock-0"]}
    slow = states["mock-1"]
    stalled = [t for (_, ts_a, _), (_, ts_b, _) in zip(slow, slow[1:]) for t in range(ts_a + WINDOW_NS, ts_b, WINDOW_NS)]
    assert stalled, slow
    both = [t for t in stalled if t not in healthy]
    assert len(both) * 3 <= len(stalled), f"device 0 lost {len(both)} of the {len(stalled)} windows device 1 stalled on: {states}"


def test_the_engine_reads_a_stalling_device_on_its_own_thread() -> None:
    devices = [MockDevice("h100-sxm", "training"), MockDevice("h100-sxm", "training", **STALL)]  # type: ignore[arg-type]
    with Engine(driver="mock", devices=devices, rate_hz=1000, window_ms=100) as engine:
        deadline = time.monotonic() + WAIT_S
        while engine.stats().devices[1]["windows_missed"] < 4:
            assert time.monotonic() < deadline, engine.stats()
            time.sleep(0.1)
        stats = engine.stats()
    healthy, slow = stats.devices
    assert not healthy["own_thread"] and slow["own_thread"]
    # The stalls cost device 0 nothing: none of its windows went without a sample.
    assert healthy["windows_missed"] == 0 and healthy["late_samples"] == 0, stats
    assert slow["skipped_reads"] > 0, stats


@pytest.mark.parametrize("stall", [False, True], ids=["inline", "own-thread"])
def test_windows_of_a_device_read_on_its_own_thread_hold_all_its_counters(stall: bool) -> None:
    # A device with a stall configured (due only after 1000 s) is read on a reader thread and
    # relayed: its windows must carry what an inline device's do.
    options = {"slow_read_every_s": 1000.0, "slow_read_ms": 1.0} if stall else {}
    with Engine(driver="mock", devices=[MockDevice("a100-sxm", "training", **options)],  # type: ignore[arg-type]
                rate_hz=500, window_ms=100) as engine:
        deadline = time.monotonic() + WAIT_S
        while engine.stats().devices[0]["windows"] < 3:
            assert time.monotonic() < deadline, engine.stats()
            time.sleep(0.05)
        stats = engine.stats()
        state = engine.snapshot()[0]
    assert stats.devices[0]["own_thread"] is stall
    assert state is not None and state.samples > 0
    assert state.levels["sm"]["active"].mean.shape == (108,)
    assert state.device["power"] > 0


def test_a_device_gone_from_the_bus_misses_no_window(tmp_path: Path) -> None:
    # Lost at 0.5 s, back at 1.5 s: no window is due while it is gone (device_lost and
    # device_back say why none came), so its state seqs run on without a gap across the jump.
    feed, sync = f"ipc://{tmp_path}/gone.feed", f"ipc://{tmp_path}/gone.sync"
    agent = Proc(["run", "--driver", "mock", "--mock-devices", "h100-sxm:training", "--seed", "3",
                  "--mock-faults", "0:lost@0.5s..1.5s", "--node", "node-gone", "--feed", feed, "--sync", sync,
                  "--rate-hz", "200"],
                 feed, sync, tmp_path / "gone.log")
    rec = Recorder(feed, b"cua1/")
    try:
        agent.wait_ping()
        deadline = time.monotonic() + WAIT_S
        while True:
            rec.drain(100)
            back = [i for i, (t, _, b) in enumerate(rec.frames)
                    if t.startswith(b"cua1/event/") and msgpack.unpackb(b)["type"] == "device_back"]
            if back and sum(1 for t, _, _ in rec.frames[back[0]:] if t.startswith(b"cua1/state/")) >= 3:
                break
            assert time.monotonic() < deadline, f"no device_back and 3 windows after it:\n{agent.log()}"
    finally:
        rec.close()
        assert agent.stop() == 0, agent.log()
    msgs = _states(rec)["mock-0"]
    jump = [(a, b) for a, b in zip(msgs, msgs[1:]) if b[1] - a[1] > WINDOW_NS]
    assert jump, f"the device was never gone: {msgs}"
    assert [b[0] - a[0] for a, b in zip(msgs, msgs[1:])] == [1] * (len(msgs) - 1), msgs
