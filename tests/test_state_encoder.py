"""The core's state encoder (C++, from the window buffer) writes the Python reference
encoder's bytes exactly: on random devices and windows, through the engine, and through the
agent. The backends' real windows are held to the golden bytes in tests/test_wire_golden.py."""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Optional

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cuagent import _core, wire
from cuagent.engine import Engine
from cuagent.mock import MockDevice
from cuagent.node.agent import Agent, AgentConfig
from cuagent.slow_path import SlowPath
from cuagent.topology import DeviceState, DeviceTopology
from device_descriptions import flat_device

WINDOW_NS = 1_000_000
AGGREGATIONS = [_core.Aggregation.mean, _core.Aggregation.bit_or, _core.Aggregation.last, _core.Aggregation.sum,
                _core.Aggregation.max]
UNITS = ["ratio", "W", "bytes", "count", "mask", "Hz"]
NAMES = ["active", "occupancy", "mem_stall", "issue", "power", "mem_used", "ecc", "throttle", "clock", "state"]
ROLLUPS = ["sm_active", "sm_occupancy", "issue_mean"]
# Values that make a difference to the wire: whole numbers (ints for whole-number units), at
# msgpack's int boundaries and past them, -0.0, fractions, and no data.
SPECIAL = [0.0, -0.0, 1.0, 127.0, 128.0, 255.0, 65536.0, -1.0, -33.0, -129.0, -40000.0, -3e9, 2.0**31, 2.0**32,
           2.0**53, 2.0**63, 2.0**64, 1e20, -2.0**63, -1e19, 0.5, 1.25, 3e38, np.nan]


@st.composite
def devices(draw: Any) -> _core.DeviceDescription:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    units = draw(st.integers(1, 10))
    levels = ["gpc", "tpc", "sm"][-draw(st.integers(1, 3)):]
    counts = [int(rng.integers(1, units + 1)) for _ in levels[:-1]] + [units]
    d = _core.DeviceDescription()
    d.id, d.vendor, d.model, d.backend, d.unit_kind = "dev-0", "mock", "random", "mock", "sm"
    d.units, d.levels, d.counts = units, levels, counts
    if draw(st.booleans()):
        d.layout = [rng.integers(0, n, units).tolist() for n in counts[:-1]]
    parts = []
    n_parts = draw(st.integers(1, 3))
    order = rng.permutation(units)
    cuts = np.sort(rng.choice(np.arange(1, units), size=min(n_parts - 1, units - 1), replace=False)) if units > 1 else []
    for i, ids in enumerate(np.split(order, cuts) if n_parts > 1 else [None]):
        p = _core.Partition()
        # Now and then two partitions share an id: the reference's dicts then merge them.
        p.id = "0" if draw(st.integers(0, 9)) == 0 else str(i)
        p.kind = "whole" if n_parts == 1 else "mig"
        p.units = units if ids is None else len(ids)
        p.unit_ids = [] if ids is None or draw(st.booleans()) else sorted(int(u) for u in ids)
        parts.append(p)
    d.partitions = parts
    counters = []
    for name in draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=7, unique=True)):
        level = draw(st.sampled_from(levels + ["partition", "device"]))
        rollup = draw(st.sampled_from(ROLLUPS)) if level in levels and draw(st.booleans()) else ""
        counters.append(_core.CounterSpec(name, level, draw(st.sampled_from(UNITS)), "",
                                          draw(st.sampled_from(AGGREGATIONS)), rollup))
    d.counters = counters
    try:
        d.validate()
    except ValueError:
        assume(False)  # e.g. two counters giving one rollup name at different levels
    return d


def processes_and_pods(draw: Any) -> tuple[Optional[list[dict[str, Any]]], Optional[list[dict[str, Any]]]]:
    processes = draw(st.one_of(st.none(), st.lists(st.fixed_dictionaries(
        {"pid": st.integers(1, 2**22), "name": st.text(max_size=20)},
        optional={"sm": st.one_of(st.none(), st.floats(0, 1), st.just(math.nan)),
                  "mem": st.one_of(st.none(), st.integers(-1, 2**40))}), max_size=3)))
    pods = draw(st.one_of(st.none(), st.lists(st.fixed_dictionaries(
        {k: st.text(min_size=1, max_size=12) for k in ("namespace", "pod", "container", "resource")},
        optional={"partition": st.one_of(st.none(), st.sampled_from(["0", "1"]))}), max_size=2)))
    return processes, pods


def reference(harness: Any, desc: _core.DeviceDescription, processes: Any, pods: Any) -> bytes:
    """What the agent sent before the core encoded: the engine's window through DeviceState
    and the Python encoder."""
    topo = DeviceTopology.from_description(desc)
    state = DeviceState.from_window(topo, harness.latest())
    return wire.pack(wire.encode_state_body(state, topo.counters, processes, pods))


def core(harness: Any, processes: Any, pods: Any) -> bytes:
    extras, entries = wire.encode_state_extras(processes, pods)
    body: bytes = harness.latest_state(extras, entries)
    return body


def fill_window(harness: Any, data: Any, rng: np.random.Generator, max_samples: int, levels: list[float],
                special_rates: list[float], noise: float = 0.0) -> None:
    """One window of 1..max_samples random samples (values around ``levels``, some special:
    NaN, inf, huge; some counters absent all window) into ``harness``, and the window finished."""
    n = data.draw(st.integers(1, max_samples))
    t = np.sort(rng.integers(0, WINDOW_NS, n)).astype(np.int64)
    values = rng.choice(levels, size=(n, harness.values)).astype(np.float32)
    if noise:
        values += rng.normal(0, noise, size=values.shape).astype(np.float32)
    special = rng.random(values.shape) < data.draw(st.sampled_from(special_rates))
    values[special] = rng.choice(np.asarray(SPECIAL, dtype=np.float32), size=int(special.sum()))
    # A counter with no value in the whole window is absent: leave some out entirely.
    absent = data.draw(st.sampled_from([0.0, 0.15, 0.5]))
    for _name, offset, elements in harness.counter_slots():
        if rng.random() < absent:
            values[:, offset:offset + elements] = np.nan
    harness.add(t, values)
    harness.poll(2 * WINDOW_NS + 1, 0)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.data())
def test_random_windows_encode_to_the_reference_bytes(data: Any) -> None:
    desc = data.draw(devices())
    harness = _core.AggregatorHarness(desc, _core.StateThresholds(), WINDOW_NS, 0)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    fill_window(harness, data, rng, max_samples=12, levels=[0.0, 0.03, 0.5, 0.62, 0.93, 1.0],
                special_rates=[0.0, 0.3, 0.8], noise=0.02)
    assert harness.windows == 1
    processes, pods = processes_and_pods(data.draw)
    want = reference(harness, desc, processes, pods)
    assert core(harness, processes, pods) == want, msgpack.unpackb(want, raw=False)


def test_whole_numbers_past_msgpack_int_range_go_out_as_floats() -> None:
    # A bytes counter of 2**70 has no msgpack int: both encoders send it as a float (the
    # Python one used to raise, which would have stopped the agent's loop).
    d = flat_device("big", 1, [_core.CounterSpec(name, "device", "bytes", "", _core.Aggregation.last, "")
                               for name in ("huge", "top", "low", "floor")])
    harness = _core.AggregatorHarness(d, _core.StateThresholds(), WINDOW_NS, 0)
    harness.add(np.asarray([5], dtype=np.int64), np.asarray([[2.0**70, 2.0**64, -2.0**63, -2.0**64]], dtype=np.float32))
    harness.poll(2 * WINDOW_NS + 1, 0)
    want = reference(harness, d, None, None)
    assert core(harness, None, None) == want
    device = msgpack.unpackb(want, raw=False)["device"]
    assert device == {"huge": 2.0**70, "top": 2.0**64, "low": -2**63, "floor": -2.0**64}
    assert [type(device[k]) for k in ("huge", "top", "low", "floor")] == [float, float, int, float]


def test_a_counter_named_state_at_a_level_is_refused() -> None:
    # A level's map carries its element states under "state" (PROTOCOL.md §3.2).
    d = flat_device("test", 2, [_core.CounterSpec("state", "device", "count", "", _core.Aggregation.last, "")])
    d.validate()  # a device value of that name is no level's states
    d.counters = [_core.CounterSpec("state", "sm", "ratio", "", _core.Aggregation.mean, "")]
    with pytest.raises(ValueError, match="counter 'state' at level 'sm': the name is a level's element states"):
        d.validate()


def test_a_level_named_twice_is_refused() -> None:
    # Levels are names on the wire (a state's levels map, the topo's counts and layout).
    d = flat_device("test", 2, levels=("sm", "sm"))
    d.layout = [[0, 1]]
    with pytest.raises(ValueError, match="level 'sm' is named twice"):
        d.validate()


def stopped_engine(devices: list[MockDevice]) -> Engine:
    """A mock engine run until every device has a finished window, then stopped: its last
    windows stay readable and no longer change."""
    engine = Engine(driver="mock", devices=devices, rate_hz=1000, window_ms=20, seed=5)
    engine.start()
    deadline = time.monotonic() + 30
    while any(s is None or s.window_seq < 2 for s in engine.snapshot()):
        assert time.monotonic() < deadline, "no windows in 30 s"
        time.sleep(0.01)
    engine.stop()
    return engine


MOCKS = [MockDevice("h100-sxm", scenario="fragmented"), MockDevice("h100-sxm", scenario="mig"),
         MockDevice("mi300x", scenario="training"), MockDevice("generic", units=12, scenario="inference")]
PROCESSES = [{"pid": 7, "sm": 0.25, "mem": 1 << 33, "name": "train"}]
PODS = [{"namespace": "ml", "pod": "p-0", "container": "c", "resource": "nvidia.com/gpu"}]


def test_the_engine_encodes_each_window_as_the_reference_does() -> None:
    engine = stopped_engine(MOCKS)
    n = len(MOCKS)
    topology, snapshot = engine.topology(), engine.snapshot()
    extras = [wire.encode_state_extras(PROCESSES if i == 0 else None, PODS if i == 1 else None) for i in range(n)]
    windows = engine.latest_states([-(1 << 63)] * n, [x for x, _ in extras], [k for _, k in extras])
    for i, (w, st_, topo) in enumerate(zip(windows, snapshot, topology)):
        assert w is not None and st_ is not None
        assert w[:4] == (st_.window_seq, st_.t_ns, st_.window_ns, st_.windows_missed)
        want = wire.pack(wire.encode_state_body(st_, topo.counters, PROCESSES if i == 0 else None,
                                                PODS if i == 1 else None))
        assert w[4] == want, i
    # A window no newer than the caller's last: its stamp only, nothing encoded.
    stamps = engine.latest_states([w[1] for w in windows if w is not None], [b""] * n, [0] * n)
    assert [s[:4] for s in stamps if s is not None] == [w[:4] for w in windows if w is not None]
    assert all(s is not None and s[4] is None for s in stamps)
    with pytest.raises(ValueError, match="one newer_than_ns, extras and extra_entries per device"):
        engine.latest_states([0], [b""], [0])


class FixedProcesses(SlowPath):
    """The first device runs PROCESSES; the others cannot list theirs."""

    def processes(self, device_index: int, now: float) -> Optional[list[dict[str, Any]]]:
        return PROCESSES if device_index == 0 else None


class FixedPods:
    """Kubelet attribution stand-in: the second device is held by one container."""

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id

    def pods(self, devices: Any) -> dict[str, list[dict[str, str]]]:
        return {self.device_id: PODS}

    def close(self) -> None:
        pass


class Counted:
    """An engine whose window calls are counted; ``python_only`` hides the core's encoder
    (the agent then takes the Python path, as with a test's scripted engine)."""

    def __init__(self, engine: Engine, python_only: bool = False) -> None:
        self._engine = engine
        self._python_only = python_only
        self.calls: dict[str, int] = {"snapshot": 0, "latest_states": 0}

    def __getattr__(self, name: str) -> Any:
        if name == "latest_states" and self._python_only:
            raise AttributeError(name)
        attr = getattr(self._engine, name)
        if name not in self.calls:
            return attr

        def counted(*args: Any) -> Any:
            self.calls[name] += 1
            return attr(*args)
        return counted


def published_states(engine: Any, tmp_path: Any, name: str, device_id: str) -> dict[str, bytes]:
    agent = Agent(engine, AgentConfig(node=name, feed=f"ipc://{tmp_path}/{name}-f", sync=f"ipc://{tmp_path}/{name}-s"),
                  slow_path=FixedProcesses(), pods=FixedPods(device_id))  # type: ignore[arg-type]
    runner = threading.Thread(target=agent.run, daemon=True)
    runner.start()
    deadline = time.monotonic() + 30
    while agent.stats["state"] < len(MOCKS):
        assert time.monotonic() < deadline, f"{name}: {agent.stats}"
        time.sleep(0.01)
    agent.stop()
    runner.join(10)
    assert not runner.is_alive()
    content = agent.snapshot(wire.kind_prefix("state"))
    agent.close()
    return {wire.parse_topic(frames[0].decode()).device: frames[2] for frames in content.messages}


def test_the_agent_sends_the_core_bodies_the_python_path_would(tmp_path: Any) -> None:
    engine = stopped_engine(MOCKS)
    device_id = engine.topology()[1].id
    core_engine, python_engine = Counted(engine), Counted(engine, python_only=True)
    native = published_states(core_engine, tmp_path, "native", device_id)
    python = published_states(python_engine, tmp_path, "python", device_id)
    # Each took its own path: the core's encoder, or the snapshot and the Python encoder.
    assert core_engine.calls["snapshot"] == 0 and core_engine.calls["latest_states"] > 0
    assert python_engine.calls["snapshot"] > 0
    assert sorted(native) == sorted(d.id for d in engine.topology())
    assert native == python
    bodies = {k: msgpack.unpackb(v, raw=False) for k, v in native.items()}
    assert bodies[engine.topology()[0].id]["processes"] == PROCESSES
    assert bodies[device_id]["pods"] == PODS and "processes" not in bodies[device_id]


@settings(max_examples=200, deadline=None)
@given(node=st.from_regex(wire.NODE_RE, fullmatch=True), epoch=st.integers(1, 2**64 - 1),
       seq=st.integers(1, 2**64 - 1), ts=st.integers(-(2**63), 2**63 - 1), gen=st.integers(1, 2**64 - 1))
def test_the_header_packer_writes_encode_header_bytes(node: str, epoch: int, seq: int, ts: int, gen: int) -> None:
    packer = wire.FramePacker(node, epoch)
    topic = wire.build_topic("state", node, "GPU-0")
    body = {"window_ns": 1, "samples": 2, "partition": {}, "device": {}}
    want = wire.encode_frames(topic, wire.Header(node, epoch, seq, ts, gen), body)
    assert packer.frames(topic, seq, ts, gen, body) == want
    assert packer.frames(topic, seq, ts, gen, wire.pack(body)) == want
