"""The placement scorer on views filled through the wire codec: what it prefers, what it
refuses, staleness, the horizon, MIG partitions, and that it is pure and deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from cuagent.scheduling import Request, RequestError, Scorer, Weights, rank
from cuagent.topology import PartitionInfo
from sched_support import GPCS, MEMORY, SMS_PER_GPC, UNITS, ViewBuilder, topology

T0 = 1_700_000_000_000_000_000
STEP = 100_000_000  # 100 ms windows


def busy(level: float = 0.9) -> list[float]:
    return [level] * UNITS


def idle() -> list[float]:
    return [0.0] * UNITS


def one_idle_gpc(other: float) -> list[float]:
    """GPC 0 wholly idle, the rest at ``other``."""
    return [0.0] * SMS_PER_GPC + [other] * (UNITS - SMS_PER_GPC)


def scattered(other: float) -> list[float]:
    """The same number of idle SMs as :func:`one_idle_gpc`, spread over every GPC."""
    per = SMS_PER_GPC // GPCS
    out = []
    for _g in range(GPCS):
        out += [0.0] * per + [other] * (SMS_PER_GPC - per)
    return out


def fleet(layouts: dict[str, list[list[float]]], windows: int = 5, **scorer_kw):
    """node -> one activity list per device; ``windows`` identical windows each."""
    vb = ViewBuilder()
    scorer = Scorer(vb.view, **scorer_kw)
    topos = {}
    for node, devices in layouts.items():
        for i, _ in enumerate(devices):
            topo = topology(f"GPU-{node}-{i}", i)
            vb.device(node, topo)
            topos[(node, i)] = topo
    for w in range(windows):
        for (node, i), topo in topos.items():
            vb.window(scorer, node, topo, layouts[node][i], T0 + w * STEP)
    return vb, scorer, topos


NOW = T0 + 5 * STEP


def test_idle_node_outranks_training_node():
    _vb, scorer, _ = fleet({"train": [busy(), busy()], "idle": [idle(), idle()]})
    r = scorer.rank(Request(gpus=1), NOW)
    assert [n.node for n in r.nodes] == ["idle", "train"]
    assert r.score("idle") > 0.8 and r.score("train") == 0.0  # a training GPU is not free (memory unknown: 0.85)
    assert r.nodes[0].devices == ("GPU-idle-0",)  # ties break by the order devices were seen
    # Sharing the training GPUs is allowed but scores far lower than idle ones.
    shared = scorer.rank(Request(gpus=1, shared=True), NOW)
    assert 0 < shared.score("train") < 0.2 < shared.score("idle")


def test_whole_idle_gpc_outranks_the_same_idle_units_scattered():
    _vb, scorer, _ = fleet({"gpc": [one_idle_gpc(0.5)], "spread": [scattered(0.5)]})
    devs = {d.node: d for d in scorer.rank(Request(shared=True), NOW).devices()}
    assert devs["gpc"].idle_units == pytest.approx(devs["spread"].idle_units)  # same idle SMs
    assert devs["gpc"].idle_groups == (0,) and devs["spread"].idle_groups == ()
    assert devs["gpc"].idle_group_units == SMS_PER_GPC
    r = scorer.rank(Request(shared=True, units=SMS_PER_GPC), NOW)
    assert r.score("gpc") > r.score("spread") > 0
    assert r.extender_scores() == {"gpc": 10, "spread": round(10 * r.score("spread") / r.score("gpc"))}


def test_thrashing_units_are_avoided():
    vb = ViewBuilder()
    scorer = Scorer(vb.view)
    calm, thrash = topology("GPU-calm"), topology("GPU-thrash")
    vb.device("calm", calm)
    vb.device("thrash", thrash)
    for w in range(3):
        vb.window(scorer, "calm", calm, [0.6] * UNITS, T0 + w * STEP, mem_stall=[0.1] * UNITS)
        vb.window(scorer, "thrash", thrash, [0.6] * UNITS, T0 + w * STEP, mem_stall=[0.9] * UNITS)
    r = scorer.rank(Request(shared=True), T0 + 3 * STEP)
    (d,) = r.devices("thrash")
    assert d.thrashing == pytest.approx(1.0)
    assert r.score("calm") > 0 and r.score("thrash") == 0.0  # idle share 0.4 minus the penalty


def test_stale_or_lost_nodes_and_old_windows_score_zero():
    vb, scorer, _ = fleet({"a": [idle()], "b": [idle()]})
    assert scorer.rank(Request(), NOW).score("a") > 0
    vb.view.nodes["a"].stale = True  # no heartbeat for 3 s (the client's verdict)
    r = scorer.rank(Request(), NOW, nodes=["a", "b", "unknown"])
    assert r.score("a") == 0 and r.score("b") > 0 and r.score("unknown") == 0 and not r.stale
    assert r.fresh == {"b"}
    # Windows older than max_age_s: every node is stale; nothing raises.
    later = NOW + int(3.5e9)
    r = scorer.rank(Request(), later, nodes=["a", "b"])
    assert r.stale and r.scores == {"a": 0.0, "b": 0.0} and r.extender_scores() == {"a": 0, "b": 0}
    # A node that restarted (epoch changed) is forgotten until its next window.
    scorer.observe(type("U", (), {"kind": "restart", "node": "b", "device": None, "header": None, "body": None})())
    assert scorer.rank(Request(), NOW).score("b") == 0
    # A node the client dropped (silent for its relay's forget interval, §7) likewise.
    _, scorer, _ = fleet({"a": [idle()], "b": [idle()]})
    assert scorer.rank(Request(), NOW).score("a") > 0
    scorer.observe(type("U", (), {"kind": "gone", "node": "a", "device": None, "header": None, "body": None})())
    assert scorer.rank(Request(), NOW).score("a") == 0 and scorer.rank(Request(), NOW).score("b") > 0


def test_a_gpu_whose_topo_says_lost_is_never_placed_on():
    """§3.1: a device whose status is not ok is not available, at once (was: its last
    window kept it eligible until max_age_s, up to an hour with a long setting)."""
    from cuagent.client import DeviceView

    vb, scorer, topos = fleet({"a": [idle(), idle()]}, max_age_s=3600.0)
    nv = vb.view.nodes["a"]
    lost = nv.devices[topos[("a", 0)].id]
    nv.devices[lost.id] = DeviceView("a", lost.topology, status="lost")  # as the client applies that topo
    scorer.observe(type("U", (), {"kind": "topo", "node": "a", "device": None, "header": None, "body": None})())
    devices = scorer.rank(Request(), NOW).devices()
    assert [d.device for d in devices] == [topos[("a", 1)].id], devices
    # Its first window back makes it a candidate again.
    nv.devices[lost.id] = DeviceView("a", lost.topology)
    vb.window(scorer, "a", lost.topology, idle(), NOW)
    assert {d.device for d in scorer.rank(Request(), NOW).devices()} == {lost.id, topos[("a", 1)].id}


def test_freshness_is_judged_on_the_nodes_clock_and_its_window_length():
    """A node whose clock is a minute behind this host's is current while its heartbeats come
    (was: every window a minute old, every score 0); a window of 5 s is current for three of
    its lengths (was: 3 s, so a node publishing every 5 s scored 0 most of the time)."""
    import time

    from sched_support import decoded, device_state

    vb = ViewBuilder()
    scorer = Scorer(vb.view)
    here = time.time_ns()
    behind = topology("GPU-behind", 0)
    dv = vb.device("behind", behind)
    vb.view.nodes["behind"].clock.heard(here - 60 * 10**9)  # its latest heartbeat, on its own clock
    scorer.fold("behind", behind.id, here - 60 * 10**9, decoded(dv.topology, device_state(dv.topology, idle(), 0)))
    slow = topology("GPU-slow", 0)
    dv = vb.device("slow", slow)
    st = decoded(dv.topology, device_state(dv.topology, idle(), 0))
    st.window_ns = 5 * 10**9
    scorer.fold("slow", slow.id, here - 6 * 10**9, st)
    r = scorer.rank(Request(), here)
    assert r.score("behind") > 0 and r.score("slow") > 0, r.scores
    assert scorer.rank(Request(), here + 10 * 10**9).score("slow") == 0  # 16 s: past three windows


def test_the_horizon_is_not_one_window():
    vb = ViewBuilder()
    scorer = Scorer(vb.view, horizon_s=10.0)
    steady, burst = topology("GPU-steady"), topology("GPU-burst")
    vb.device("steady", steady)
    vb.device("burst", burst)
    for w in range(50):  # 5 s: steady half idle; burst busy all along ...
        vb.window(scorer, "steady", steady, [0.5] * UNITS, T0 + w * STEP)
        vb.window(scorer, "burst", burst, busy(1.0) if w < 49 else idle(), T0 + w * STEP)
    # ... but whose last window happens to be idle: one window would rank it first.
    now = T0 + 50 * STEP
    one_window = rank(vb.view, Request(shared=True), now)
    assert one_window.nodes[0].node == "burst"
    horizon = scorer.rank(Request(shared=True), now)
    assert horizon.nodes[0].node == "steady"
    (b,) = horizon.devices("burst")
    assert 0 < b.idle_units < UNITS * 0.1


def test_demand_memory_fraction_and_count():
    vb = ViewBuilder()
    scorer = Scorer(vb.view)
    t = [topology(f"GPU-n-{i}", i) for i in range(3)]
    for topo in t:
        vb.device("n", topo)
    vb.window(scorer, "n", t[0], idle(), T0, mem_used=MEMORY - 10 * 2**30)  # 10 GiB free
    vb.window(scorer, "n", t[1], idle(), T0, mem_used=2**30)
    vb.window(scorer, "n", t[2], [0.75] * UNITS, T0)  # 8 idle SM-equivalents, memory unknown
    assert scorer.rank(Request(gpus=2), T0).nodes[0].devices == ("GPU-n-1", "GPU-n-0")
    assert scorer.rank(Request(gpus=3), T0).score("n") == 0  # only two free GPUs
    assert scorer.rank(Request(gpus=2, memory_bytes=20 * 2**30), T0).score("n") == 0
    assert scorer.rank(Request(gpus=1, memory_bytes=20 * 2**30), T0).nodes[0].devices == ("GPU-n-1",)
    # A quarter GPU needs 8 idle SMs: the busy GPU just fits; 9 SMs do not.
    r = scorer.rank(Request(gpus=0.25), T0)
    assert {d.device for d in r.devices() if d.eligible} == {"GPU-n-0", "GPU-n-1", "GPU-n-2"}
    r = scorer.rank(Request(gpus=0.25, units=9), T0)
    assert {d.device for d in r.devices() if d.eligible} == {"GPU-n-0", "GPU-n-1"}


def test_mig_partitions_rank_by_profile_and_idleness():
    vb = ViewBuilder()
    scorer = Scorer(vb.view)
    half = UNITS // 2
    parts = [PartitionInfo("1", "mig", half, 40 * 2**30, "MIG 3g.40gb", np.arange(half, dtype=np.uint16)),
             PartitionInfo("2", "mig", half, 40 * 2**30, "MIG 3g.40gb", np.arange(half, UNITS, dtype=np.uint16))]
    small = [PartitionInfo("5", "mig", 8, 10 * 2**30, "MIG 1g.10gb", np.arange(8, dtype=np.uint16))]
    a, b = topology("GPU-a", partitions=parts), topology("GPU-b", partitions=small)
    vb.device("a", a)
    vb.device("b", b)
    vb.window(scorer, "a", a, [0.9] * half + [0.0] * half, T0)  # partition 2 idle
    vb.window(scorer, "b", b, idle(), T0)
    r = scorer.rank(Request(mig_profile="3g.40gb"), T0)
    assert r.nodes[0] == ("a", r.score("a"), ("GPU-a/2",)) and r.score("b") == 0
    assert [(p.partition, p.eligible) for p in r.partitions("a")] == [("2", True), ("1", False)]
    assert scorer.rank(Request(mig_profile="MIG 1g.10gb"), T0).nodes[0].node == "b"
    assert scorer.rank(Request(gpus=2, mig_profile="3g.40gb"), T0).score("a") == 0  # one of two is busy


def test_vendor_filter_and_mock_stands_in():
    vb = ViewBuilder()
    scorer = Scorer(vb.view)
    for node, vendor in (("nv", "nvidia"), ("amd", "amd"), ("sim", "mock")):
        topo = topology(f"GPU-{node}", vendor=vendor)
        vb.device(node, topo)
        vb.window(scorer, node, topo, idle(), T0)
    assert {n.node for n in scorer.rank(Request(vendor="amd"), T0).nodes if n.score > 0} == {"amd", "sim"}
    assert {n.node for n in scorer.rank(Request(vendor="nvidia"), T0).nodes if n.score > 0} == {"nv", "sim"}


def test_rank_is_pure_and_deterministic():
    vb, scorer, _ = fleet({f"n{i:02d}": [one_idle_gpc(0.1 * (i % 7)), scattered(0.3)] for i in range(20)})
    first = scorer.rank(Request(shared=True, units=4), NOW)
    for _ in range(3):
        again = scorer.rank(Request(shared=True, units=4), NOW)
        assert again.nodes == first.nodes and again.devices() == first.devices()
    # A second scorer fed the same windows in the same order gives the same answer.
    twin = Scorer(vb.view)
    for node in vb.view.nodes.values():
        for dv in node.devices.values():
            twin.fold(node.name, dv.id, dv.ts, dv.state)
    assert Scorer.from_view(vb.view).rank(Request(shared=True, units=4), NOW).nodes == \
        twin.rank(Request(shared=True, units=4), NOW).nodes


def test_bad_requests_and_options_are_refused():
    for bad in (dict(gpus=0), dict(gpus=1.5), dict(units=0), dict(memory_bytes=-1), dict(mig_profile="big"),
                dict(vendor="intel"), dict(gpus=0.5, mig_profile="1g.10gb")):
        with pytest.raises(RequestError):
            Request(**bad)
    with pytest.raises(RequestError, match="unknown request field"):
        Request.from_json({"gpu": 1})
    with pytest.raises(ValueError):
        Weights(idle=-1)
    with pytest.raises(ValueError):
        Scorer(ViewBuilder().view, horizon_s=0)


def test_states_measured_per_xcd_count_whole_idle_xcds():
    """ROCm SMI measures activity per XCD, not per CU: idle XCDs are the idle groups."""
    from cuagent import protocol
    from cuagent.client import DeviceView, NodeView
    from cuagent.scheduling.scorer import Scorer as _Scorer
    from cuagent.topology import CounterInfo, CounterStat, DeviceTopology

    cus = np.arange(64)
    topo = DeviceTopology(id="amd-0", index=0, vendor="amd", model="MI-test", backend="rocm_smi", unit="cu", units=64,
                          levels=["xcd", "cu"], layout={"xcd": (cus // 8).astype(np.uint16)}, layout_source="vendor",
                          counts={"xcd": 8, "cu": 64}, partitions=[PartitionInfo("0", "whole", 64, MEMORY)],
                          memory_bytes=MEMORY, counters={"active": CounterInfo("xcd", "ratio", "")})
    view = ViewBuilder().view
    nv = view.nodes["amd"] = NodeView("amd", 1)
    scorer = _Scorer(view)
    active = np.array([0.0, 0.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9], np.float32)
    states = np.where(active < 0.05, protocol.IDLE, protocol.ACTIVE).astype(np.uint8)
    st = protocol.State(100_000_000, 10, {"xcd": {"active": CounterStat(active, active), "state": states}}, {}, {},
                        float(np.sum((1 - active) * 8)))
    nv.devices["amd-0"] = DeviceView("amd", topo, st, T0)
    scorer.fold("amd", "amd-0", T0, st)
    (d,) = scorer.rank(Request(shared=True, vendor="amd"), T0).devices()
    assert d.idle_groups == (0, 1) and d.idle_group_units == 16 and d.eligible


def test_what_a_device_does_not_measure_is_null_not_zero():
    """An NVML GPU has no state level: its thrashing and idle groups are not measured. The
    scorer neither penalises nor credits them, and says so with None (JSON null), never 0 —
    which a custom scheduler reading /recommend would take for "measured: none"."""
    import json

    from cuagent import protocol
    from cuagent.scheduling.extender import ExtenderService
    from cuagent.topology import CounterInfo, DeviceTopology

    vb = ViewBuilder()
    scorer = Scorer(vb.view)
    nvml = DeviceTopology(id="GPU-nvml", index=0, vendor="nvidia", model="NVML GPU", backend="nvml", unit="sm",
                          units=UNITS, levels=["sm"], layout={}, layout_source="none", counts={"sm": UNITS},
                          partitions=[PartitionInfo("0", "whole", UNITS, MEMORY)], memory_bytes=MEMORY,
                          counters={"sm_active": CounterInfo("partition", "ratio", "SM active")})
    dv = vb.device("nvml-node", nvml)
    state = protocol.State(window_ns=STEP, samples=10, levels={}, partition={"0": {"sm_active": 0.0}},
                           device={"sm_active": 0.0}, idle_units=float(UNITS))
    mock = topology("GPU-mock")
    vb.device("mock-node", mock)
    for w in range(3):
        dv.state, dv.ts = state, T0 + w * STEP
        scorer.fold("nvml-node", "GPU-nvml", T0 + w * STEP, state)
        vb.window(scorer, "mock-node", mock, one_idle_gpc(0.9), T0 + w * STEP)
    r = scorer.rank(Request(shared=True), T0 + 3 * STEP)
    devs = {d.device: d for d in r.devices()}
    d = devs["GPU-nvml"]
    assert (d.thrashing, d.idle_groups, d.idle_group_units) == (None, None, None)
    assert d.eligible and d.score == pytest.approx(0.6)  # idle share only: no penalty, no group credit
    m = devs["GPU-mock"]
    assert m.thrashing == 0.0 and m.idle_groups == (0,) and m.idle_group_units == SMS_PER_GPC  # measured
    out = ExtenderService(scorer, clock=lambda: T0 + 3 * STEP).recommend(
        json.dumps({"request": {"gpus": 1, "shared": True}}).encode())
    row = {x["device"]: x for x in json.loads(json.dumps(out))["devices"]}["GPU-nvml"]
    assert (row["thrashing"], row["idle_groups"], row["idle_group_units"]) == (None, None, None)
