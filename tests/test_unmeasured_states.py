"""An element whose ``active`` is absent in a window claims no state (PROTOCOL.md §3.2: 255,
unmeasured): the engine publishes none for it, and every reader (the view's per-unit states
and idle groups, the scorer, cuagent top) counts it in no state, never as idle. Before, the
engine published an element never measured as idle, and one that lost its value kept an
older window's state; a view gave units the layout cannot place the idle state."""

from __future__ import annotations

import io

import numpy as np
import pytest
from rich.console import Console

from cuagent import _core, protocol
from cuagent.client import DeviceView, NodeView
from cuagent.exporters.top_heatmap import compact_lines, device_panel, state_counts
from cuagent.scheduling.scorer import Request, Scorer
from cuagent.topology import CounterInfo, CounterStat, DeviceTopology, PartitionInfo

from sched_support import MEMORY, ViewBuilder, decoded, device_state, topology
from test_aggregation import WINDOW_NS, describe

T0 = 1_700_000_000_000_000_000
U = protocol.UNMEASURED


def test_a_unit_without_active_in_a_window_claims_no_state():
    d = describe(2, 1, np.zeros(2, dtype=np.uint16), [None])
    harness = _core.AggregatorHarness(d, _core.StateThresholds(), WINDOW_NS, 0)
    published = []
    # (unit 0, unit 1) `active` per window; NaN: the backend gave none.
    for k, (a0, a1) in enumerate([(0.0, np.nan), (np.nan, 0.9), (0.08, 0.9), (0.9, 0.9)]):
        row = np.full((1, harness.values), np.nan, dtype=np.float32)
        row[0, 0], row[0, 1] = a0, a1
        harness.add(np.array([k * WINDOW_NS], dtype=np.int64), row)
        w = harness.latest()
        if w is not None:
            published.append(w["levels"]["sm"]["state"].tolist())
    # Unit 1 was never measured in window 0 (was: idle); unit 0 has no value in window 1 (was:
    # window 0's idle). In window 2 unit 0 continues from its last measured state: 0.08 is
    # within idle's hysteresis band, so it stays idle rather than flapping.
    assert published == [[0, U], [U, 1], [0, 1]]


def test_a_whole_is_absent_when_a_part_of_it_has_no_value():
    """4 SMs in 2 GPCs, SMs 2 and 3 (GPC 1) without `active` this window: GPC 1's mean, the
    device's sm_active and idle_units are absent. Were: idle_units 2.0 (the two counted as
    busy) beside sm_active 0.0 (the two extrapolated from the others): one window, two
    contradicting answers."""
    d = describe(4, 2, np.array([0, 0, 1, 1], dtype=np.uint16), [None])
    harness = _core.AggregatorHarness(d, _core.StateThresholds(), WINDOW_NS, 0)
    rows = np.full((2, harness.values), np.nan, dtype=np.float32)
    rows[:, 0:2] = 0.0  # `active` of SMs 0 and 1
    harness.add(np.array([0, WINDOW_NS], dtype=np.int64), rows)
    w = harness.latest()
    assert w["idle_units"] is None and "sm_active" not in w["device"], w
    gpc = w["groups"]["gpc"]["active"][0]  # (mean, max)
    assert gpc[0] == 0.0 and np.isnan(gpc[1])
    assert w["levels"]["sm"]["state"].tolist() == [0, 0, U, U]


def _amd_view() -> DeviceView:
    """8 XCDs of 8 CUs, states per XCD, XCD 1 without a value this window; 4 more CUs the
    layout cannot place."""
    cus = np.arange(68)
    layout = np.minimum(cus // 8, 8).astype(np.uint16)  # CUs 64..67: ancestor 8, beyond the 8 XCDs
    topo = DeviceTopology(id="amd-0", index=0, vendor="amd", model="MI-test", backend="rocm_smi", unit="cu", units=68,
                          levels=["xcd", "cu"], layout={"xcd": layout}, layout_source="vendor",
                          counts={"xcd": 8, "cu": 68}, partitions=[PartitionInfo("0", "whole", 68, MEMORY)],
                          memory_bytes=MEMORY, counters={"active": CounterInfo("xcd", "ratio", "")})
    active = np.array([0.0, np.nan, 0.0, 0.9, 0.9, 0.9, 0.9, 0.9], np.float32)
    states = np.array([protocol.IDLE, U, protocol.IDLE] + [protocol.ACTIVE] * 5, np.uint8)
    st = protocol.State(100_000_000, 10, {"xcd": {"active": CounterStat(active, active), "state": states}}, {}, {},
                        float(np.nansum((1 - active) * 8)))
    return DeviceView("amd", topo, st, T0)


def test_the_view_counts_unmeasured_and_unplaced_units_in_no_state():
    dv = _amd_view()
    units = dv.unit_states()
    assert units is not None
    assert (units[8:16] == U).all() and (units[64:] == U).all()  # XCD 1's CUs; the unplaced (were: idle)
    assert dv.idle_groups() == [0, 2]  # XCD 1 is not shown idle
    assert state_counts(dv) == {"idle": 16, "active": 40, "saturated": 0, "thrashing": 0, "unmeasured": 12}


def test_the_scorer_takes_an_unmeasured_group_for_no_idle_group():
    dv = _amd_view()
    view = ViewBuilder().view
    nv = view.nodes["amd"] = NodeView("amd", 1)
    nv.devices[dv.id] = dv
    scorer = Scorer(view)
    assert dv.state is not None
    scorer.fold("amd", dv.id, T0, dv.state)
    (d,) = scorer.rank(Request(shared=True, vendor="amd"), T0).devices()
    assert d.idle_groups == (0, 2) and d.idle_group_units == 16


def test_top_draws_a_unit_without_a_value_as_unmeasured():
    topo = topology()
    active = np.full(topo.units, 0.9, np.float32)
    active[3] = np.nan  # its SM has no value this window
    st = device_state(topo, active, T0)
    st.levels["sm"]["state"][3] = U
    dv = ViewBuilder().device("n1", topo)
    dv.state = decoded(dv.topology, st)
    assert state_counts(dv)["unmeasured"] == 1
    out = io.StringIO()
    console = Console(file=out, width=100, color_system=None)
    console.print(device_panel(dv, NodeView("n1", 1)))  # a NaN `active` drew a cell as int(NaN): ValueError
    for line in compact_lines(dv, 100):
        console.print(line)
    assert "unmeasured 1" in out.getvalue() and "active 31" in out.getvalue(), out.getvalue()


def test_top_draws_amd_cus_as_tall_as_their_xcds_activity():
    """AMD measures `active` per XCD: each CU's cell is as tall as its XCD's (was: every cell full
    height, which the legend reads as 100 % active)."""
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(device_panel(_amd_view(), NodeView("amd", 1)))
    rows = {line.split()[1]: line.split()[2] for line in out.getvalue().splitlines()
            if line.startswith("│") and len(line.split()) > 2 and line.split()[1].startswith("xcd")}
    assert rows["xcd0"] == "▁" * 8 and rows["xcd3"] == "▇" * 8, rows  # active 0.0 and 0.9
    assert rows["xcd1"] == "▁" * 8 and rows["xcd?"] == "▁" * 4  # no value / unplaced: the lowest cell


def test_idle_units_fall_back_to_gpms_sm_active_while_cupti_is_paused():
    """With CUPTI's pm_sm_active absent (an ncu session holds the counters), idle_units comes
    from NVML GPM's sm_active (was: absent for the whole pause, so summaries showed no idle
    capacity on that GPU)."""
    d = _core.DeviceDescription()
    d.id, d.vendor, d.model, d.backend, d.unit_kind = "GPU-p", "nvidia", "H100", "nvml", "sm"
    d.units, d.levels, d.counts = 132, ["sm"], [132]
    whole = _core.Partition()
    whole.id, whole.kind, whole.units = "0", "whole", 132
    d.partitions = [whole]
    d.counters = [_core.CounterSpec(name, "device", "ratio", "", _core.Aggregation.mean, "")
                  for name in ("sm_active", "pm_sm_active")]
    harness = _core.AggregatorHarness(d, _core.StateThresholds(), WINDOW_NS, 0)
    sampling = np.array([[0.3, 0.4]], dtype=np.float32)  # (sm_active, pm_sm_active)
    paused = np.array([[0.3, np.nan]], dtype=np.float32)
    harness.add(np.array([0], dtype=np.int64), sampling)
    harness.add(np.array([WINDOW_NS], dtype=np.int64), paused)
    assert harness.latest()["idle_units"] == pytest.approx(132 * 0.6)  # the kHz mean when it is there
    harness.add(np.array([2 * WINDOW_NS], dtype=np.int64), paused)
    assert harness.latest()["idle_units"] == pytest.approx(132 * 0.7)
