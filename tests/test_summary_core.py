"""The node summary's records as the engine's core writes them (C++, from the window buffer)
are SummaryBuilder's (python/cuagent/node/summary.py, the reference) byte for byte: on every
backend's golden windows, on random devices and windows, and through the engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cuagent import _core, wire
from cuagent.node.summary import SummaryBuilder
from cuagent.topology import DeviceState, DeviceTopology
from device_descriptions import flat_device
from fakes.amd_fixtures import rocm_library  # noqa: F401
from test_state_encoder import MOCKS, WINDOW_NS, devices, fill_window, stopped_engine
from test_summary_golden import generate
from wire_golden import NVML_SCRIPT

GOLDEN = Path(__file__).resolve().parent / "golden"


def check_golden(backend: str, out: Path) -> None:
    """The core's records (written beside the blob) are those of the golden summaries."""
    blob = msgpack.unpackb((GOLDEN / f"wire_summary_{backend}.msgpack").read_bytes(), raw=False)
    want = [msgpack.unpackb(m[2], raw=False)["records"] for m in blob["messages"] if m[0].startswith(b"cua1/sum/")]
    core = msgpack.unpackb(out.with_name(out.name + ".core").read_bytes(), raw=False)
    assert len(want) == len(core) == 2
    for i, (w, g) in enumerate(zip(want, core)):
        got, expected = np.frombuffer(g, wire.RECORD_DTYPE), np.frombuffer(w, wire.RECORD_DTYPE)
        assert g == w, (backend, i, got, expected)


def test_mock_summary_records(tmp_path: Path) -> None:
    out = tmp_path / "mock.msgpack"
    generate("mock", out)
    check_golden("mock", out)


def test_nvml_summary_records(fake_nvml) -> None:
    out = fake_nvml.work / "nvml-summary.msgpack"
    generate("nvml", out, fake_nvml.library, env=fake_nvml.env(fake_nvml.script(NVML_SCRIPT)))
    check_golden("nvml", out)


def test_rocm_smi_summary_records(rocm_library: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "rocm-summary.msgpack"
    generate("rocm_smi", out, rocm_library, tmp_path)
    check_golden("rocm_smi", out)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.data())
def test_random_windows_summarise_to_the_reference_records(data: Any) -> None:
    desc = data.draw(devices())
    topo = DeviceTopology.from_description(desc)
    harness = _core.AggregatorHarness(desc, _core.StateThresholds(), WINDOW_NS, 0)
    now = data.draw(st.integers(-5 * 10**6, 80 * 10**9))  # before the window's end .. past the age's range
    lost = data.draw(st.booleans())
    if data.draw(st.integers(0, 9)) == 0:  # no window yet
        want = SummaryBuilder([topo]).records([None], {desc.id} if lost else (), now).tobytes()
        assert harness.summary_record(now, lost) == want
        return
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    # Activity around the state thresholds (every state shows up), now and then a special value.
    fill_window(harness, data, rng, max_samples=8, levels=[0.0, 0.03, 0.3, 0.55, 0.7, 0.95, 1.0],
                special_rates=[0.0, 0.2])
    state = DeviceState.from_window(topo, harness.latest())
    want = SummaryBuilder([topo]).records([state], {desc.id} if lost else (), now)
    got = harness.summary_record(now, lost)
    assert got == want.tobytes(), (np.frombuffer(got, wire.RECORD_DTYPE), want)


def test_states_of_a_level_without_values_are_not_counted() -> None:
    # `active` has no value this window: the SM level has no map in the state (§3.2), so
    # its states (kept from before) are no unit's and the record says STATES unmeasured.
    d = flat_device("quiet", 2, [_core.CounterSpec("active", "sm", "ratio", "", _core.Aggregation.mean, ""),
                                 _core.CounterSpec("power", "device", "W", "", _core.Aggregation.mean, "")])
    harness = _core.AggregatorHarness(d, _core.StateThresholds(), WINDOW_NS, 0)
    harness.add(np.asarray([5], dtype=np.int64), np.asarray([[np.nan, np.nan, 300.0]], dtype=np.float32))
    harness.poll(3 * WINDOW_NS, 0)
    topo = DeviceTopology.from_description(d)
    want = SummaryBuilder([topo]).records([DeviceState.from_window(topo, harness.latest())], (), 10**7)
    assert want["flags"][0] == 4 and want["power"][0] == 300.0  # a window, no states
    assert harness.summary_record(10**7) == want.tobytes()


def test_the_engine_writes_the_records_of_the_windows_it_gave() -> None:
    engine = stopped_engine(MOCKS)
    n = len(MOCKS)
    topology = engine.topology()
    windows = engine.latest_states([-(1 << 63)] * n, [b""] * n, [0] * n)
    snapshot = engine.snapshot()
    assert [w[1] for w in windows if w is not None] == [s.t_ns for s in snapshot if s is not None]
    now = max(s.t_ns for s in snapshot if s is not None) + 7_000_000
    for lost in ((), (topology[2].id,)):
        want = SummaryBuilder(topology).records(snapshot, lost, now).tobytes()
        assert engine.summary_records(now, [d.id in lost for d in topology]) == want
    raw = engine.summary_records(now, [False] * n)
    rec = np.frombuffer(raw, wire.RECORD_DTYPE)
    assert (rec["flags"] & 1).all() and rec["idle"].sum() + rec["active"].sum() > 0  # states measured
    # The agent's body from the core's records packs as the reference's from an array does
    # (the client's fast path for the usual summary expects exactly those bytes).
    assert wire.pack(wire.encode_summary_records(raw)) == wire.pack(wire.encode_summary_body(rec.copy()))
