"""Wire bytes from a fixed engine state, for tests/test_wire_golden.py.

Each backend's devices are described by the real driver (mock, or nvml / rocm_smi on
their fake libraries), read at fixed times outside any engine, their samples folded by
the C++ aggregator into 100 ms windows, and the last window encoded the way the agent
sends it: topo, one state per device, hb, and a snapshot reply around them. Nothing
depends on the wall clock or on thread timing, so the same code gives the same bytes.

The agent sends state bodies the engine's core encodes from its window buffer (C++); the
script writes those too, beside the blob (<out>.core: the core's state bodies in device
order; for a summary, the records the core writes), so that tests/test_wire_golden.py and
tests/test_summary_core.py hold them to the Python encoders' bytes.

Run as a script (the fake vendor libraries must be loaded by a fresh process):

    python wire_golden.py mock <out>
    python wire_golden.py nvml <out> <fake libnvidia-ml> <script dir>
    python wire_golden.py rocm_smi <out> <fake librocm_smi64> <work dir>
    python wire_golden.py summary <backend> <out> [...]   # the node summary (§3.5) instead
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, List, NamedTuple, Sequence

import msgpack
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cuagent import _core, protocol  # noqa: E402
from cuagent.topology import DeviceState, DeviceTopology  # noqa: E402

WINDOW_NS = 100_000_000
NODE = "golden-node"
EPOCH = 0x1F2E3D4C5B6A7988
TS = 1_700_000_000_123_456_789
AGENT = protocol.AgentInfo("0.0.0-golden", "golden-host", 4242, 1_700_000_000_000_000_000)
# A fixed process list on the first device: the encoder's processes path, same bytes every time.
PROCESSES = [{"pid": 101, "sm": 0.5, "mem": 1 << 30, "name": "train.py"}, {"pid": 102, "mem": 4096, "name": ""}]


Reading = Any  # (status, {counter: float32 array}, detail), as _core.driver_read returns


class Window(NamedTuple):
    state: DeviceState  # the last window, as the engine's snapshot gives it
    harness: Any  # the aggregator holding it (its core encoder: latest_state)


def last_window(desc: Any, readings: Sequence[tuple[int, Reading]]) -> Window:
    """Fold (t_ns, reading) pairs of one device into 100 ms windows; return the last window."""
    topo = DeviceTopology.from_description(desc)
    harness = _core.AggregatorHarness(desc, _core.StateThresholds(), WINDOW_NS, 0)
    slots = harness.counter_slots()
    for t, (status, values, detail) in readings:
        assert status == "ok", (desc.id, t, status, detail)
        row = np.full((1, harness.values), np.nan, dtype=np.float32)
        for name, offset, elements in slots:
            row[0, offset:offset + elements] = values[name]
        harness.add(np.asarray([t], dtype=np.int64), row)
    harness.poll(readings[-1][0] + 10 * WINDOW_NS, 0)
    window = harness.latest()
    assert window is not None
    return Window(DeviceState.from_window(topo, window), harness)


def read_all(driver: Any, times_ns: Sequence[int], before: Callable[[int], None] = lambda k: None) -> List[Window]:
    """Read every device at each time (calling before(k) ahead of the k-th round); their last windows."""
    readings: List[List[tuple[int, Reading]]] = [[] for _ in range(driver.device_count)]
    for k, t in enumerate(times_ns):
        before(k)
        for i in range(driver.device_count):
            readings[i].append((t, _core.driver_read(driver, i, t)))
    return [last_window(driver.device(i), r) for i, r in enumerate(readings)]


def core_bodies(windows: List[Window]) -> bytes:
    """The state bodies the core's encoder writes for the same windows (and processes)."""
    bodies = []
    for i, w in enumerate(windows):
        extras, entries = protocol.encode_state_extras(PROCESSES if i == 0 else None)
        bodies.append(w.harness.latest_state(extras, entries))
    return msgpack.packb(bodies, use_bin_type=True)


def wire(driver: Any, windows: List[Window]) -> bytes:
    """topo, states, hb and a snapshot reply as the agent frames them, packed into one blob."""
    states = [w.state for w in windows]
    topology = [DeviceTopology.from_description(driver.device(i)) for i in range(driver.device_count)]
    seqs: dict[str, int] = {}
    messages: list[list[bytes]] = []

    def frames(topic: str, body: dict[str, Any]) -> list[bytes]:
        seqs[topic] = seqs.get(topic, 0) + 1
        out = protocol.encode_frames(topic, protocol.Header(NODE, EPOCH, seqs[topic], TS, 1), body)
        messages.append(out)
        return out

    frames(protocol.build_topic("topo", NODE), protocol.encode_topo_body(topology, AGENT))
    for i, (t, s) in enumerate(zip(topology, states)):
        body = protocol.encode_state_body(s, t.counters, PROCESSES if i == 0 else None)
        frames(protocol.build_topic("state", NODE, t.id), body)
    hb_topic = protocol.build_topic("hb", NODE)
    hb = frames(hb_topic, protocol.encode_hb_body({**seqs, hb_topic: 1}, 1000.0, 3, 12.5))
    snapshot = protocol.snapshot_reply(EPOCH, messages[:-1], {k: v for k, v in seqs.items() if k != hb_topic})
    return msgpack.packb({"messages": messages, "hb": hb, "snapshot": snapshot}, use_bin_type=True)


def summary_wire(driver: Any, states: List[DeviceState]) -> bytes:
    """topo and the node summary (PROTOCOL.md §3.5) of the same windows, as the agent frames
    them: once with every device ok, once with the first one lost; and a snapshot reply."""
    from cuagent.node.summary import SummaryBuilder

    topology = [DeviceTopology.from_description(driver.device(i)) for i in range(driver.device_count)]
    builder = SummaryBuilder(topology)
    # The summary is made 23 ms after the last window ended (its ages say so).
    now = max(s.t_ns for s in states) + 23_000_000
    messages = [protocol.encode_frames(protocol.build_topic("topo", NODE), protocol.Header(NODE, EPOCH, 1, TS, 1),
                                       protocol.encode_topo_body(topology, AGENT))]
    for seq, lost in ((1, ()), (2, (topology[0].id,))):
        body = protocol.encode_summary_body(builder.records(states, lost, now))
        messages.append(protocol.encode_frames(protocol.build_topic("sum", NODE), protocol.Header(NODE, EPOCH, seq, now, 1),
                                               body))
    snapshot = protocol.snapshot_reply(EPOCH, [messages[0], messages[-1]],
                                       {protocol.build_topic("topo", NODE): 1, protocol.build_topic("sum", NODE): 2})
    return msgpack.packb({"messages": messages, "snapshot": snapshot}, use_bin_type=True)


def core_summaries(windows: List[Window]) -> bytes:
    """The records the core writes for the same windows, ages and lost devices as
    summary_wire's two summaries: one bytes string of records per summary."""
    now = max(w.state.t_ns for w in windows) + 23_000_000
    return msgpack.packb([b"".join(w.harness.summary_record(now, lost and i == 0) for i, w in enumerate(windows))
                          for lost in (False, True)], use_bin_type=True)


MOCK_DEVICES = [{"preset": "h100-sxm", "scenario": "fragmented"}, {"preset": "h100-sxm", "scenario": "mig"},
                {"preset": "mi300x", "scenario": "training"}, {"preset": "a100-sxm", "scenario": "thrashing"},
                {"preset": "generic", "units": 24, "scenario": "inference"}]


def mock_windows(driver: Any) -> List[Window]:
    times = [k * 1_000_000 for k in range(350)]  # 1 kHz for 350 ms: three full windows and a part
    return read_all(driver, times)


NVML_SCRIPT = """devices 2
mig 0 1 3g.40gb 60 40320 0 4 1
mig 0 2 2g.20gb 32 20096 4 2 1
set * power_w 642.024
set * temp_c 67
set * sm_clock_hz 1260000000
set * mem_clock_hz 2619000000
set * throttle_mask 4
set * sm_active 0.92
set * sm_occupancy 0.136
set * tensor_active 0.89
set * dram_active 0.41
set * gr_active 0.95
set * pcie_tx_mib_s 2
set * pcie_rx_mib_s 3.5
set * nvlink_tx_mib_s 120
set * nvlink_rx_mib_s 96
set * mem_used 1563230208
set * util_gpu 0.96
set * util_mem 0.37
set * ecc_uncorrected 2
nvlink 0 0 1
nvlink 0 1 1
nvlink 1 0 0
nvlink 1 1 0
topo 0 1 10
"""


def nvml_windows(driver: Any) -> List[Window]:
    # GPM compares samples one 100 ms refresh apart, and the fake refreshes on the real
    # clock: each round of reads waits out a refresh, so every pair spans one (the values
    # are static, so how long it waits does not matter).
    times = [k * WINDOW_NS for k in range(4)]
    return read_all(driver, times, lambda k: time.sleep(0.12 if k else 0))


def rocm_windows(library: str, work: str) -> tuple[Any, List[Window]]:
    from cuagent.backends.rocm_smi import make_driver
    from fakes.rocm import FakeAmdHost

    host = FakeAmdHost(Path(library), Path(work) / "kfd")
    big = host.add_mi300x(compute="CPX", memory="NPS4")
    old = host.add_mi210()
    host.set_xcd_busy(big, [90.0, 0.0, 0.0, 20.0, 50.0, 60.0, 70.0, 100.0])
    host.set_xcd_busy(old, [35.0])
    for gpu, power, temp in ((big, 612.5, 71.0), (old, 248.0, 55.0)):
        for dev in gpu.rsmi_devices:
            host.fake.set_value(dev, "vram_used", float(3 << 30))
            host.fake.set_value(dev, "busy_pct", 87.0)
        host.fake.set_value(gpu.metrics_device, "power_w", power)
        host.fake.set_value(gpu.metrics_device, "temp_c", temp)
        host.fake.set_value(gpu.metrics_device, "sclk_mhz", 2100.0)
        host.fake.set_value(gpu.metrics_device, "mclk_mhz", 1300.0)
        host.fake.set_value(gpu.metrics_device, "ppt_violation", 0.25)
        host.fake.set_value(gpu.metrics_device, "thermal_violation", 0.125)
        host.fake.set_value(gpu.metrics_device, "throttle_mask", 5.0)
    driver = make_driver(None, 0, library=library, kfd_root=str(host.kfd_root))
    times = [k * 10_000_000 for k in range(25)]  # every 10 ms for 250 ms

    def firmware_tick(k: int) -> None:  # a new gpu_metrics table (timestamp, accumulators) per read
        host.tick(big)
        host.tick(old)

    return driver, read_all(driver, times, firmware_tick)


def main(argv: List[str]) -> None:
    summary = argv[0] == "summary"
    if summary:
        argv = argv[1:]
    backend, out = argv[0], Path(argv[1])
    if backend == "mock":
        from cuagent.backends import mock
        driver = mock.make_driver(MOCK_DEVICES, seed=11)
        windows = mock_windows(driver)
    elif backend == "nvml":
        from cuagent.backends import nvml
        driver = nvml.make_driver(None, 0, library=argv[2])
        windows = nvml_windows(driver)
    elif backend == "rocm_smi":
        driver, windows = rocm_windows(argv[2], argv[3])
    else:
        raise SystemExit(f"unknown backend {backend!r}")
    if summary:
        out.write_bytes(summary_wire(driver, [w.state for w in windows]))
        out.with_name(out.name + ".core").write_bytes(core_summaries(windows))
        return
    out.write_bytes(wire(driver, windows))
    out.with_name(out.name + ".core").write_bytes(core_bodies(windows))


if __name__ == "__main__":
    main(sys.argv[1:])
