"""A partition's idle units are given only where they are measured: a partition whose size is
unknown (NVML's MIG attributes call failed: units 0) has none, as the core's aggregator skips
it for the device's idle_units, and units without an ``active`` this window add nothing (as in
the core); a row without a value never enters a ranking, whose order a NaN would make
undefined."""

from __future__ import annotations

import math
import time

import numpy as np

from cuagent import protocol
from cuagent.client import ClusterView, DeviceView, NodeView
from cuagent.topology import PartitionInfo

from sched_support import MEMORY, UNITS, decoded, device_state, topology


def _view(dv: DeviceView) -> ClusterView:
    view = ClusterView()
    nv = view.nodes[dv.node] = NodeView(dv.node, epoch=1)
    nv.devices[dv.id] = dv
    return view


def test_a_partition_of_unknown_size_has_no_idle_units():
    # NVML without MIG attributes: the instances are known, their SM counts are not (0).
    parts = [PartitionInfo("1", "mig", 0, MEMORY // 2, "MIG 3g.40gb"), PartitionInfo("2", "mig", 16, MEMORY // 2,
                                                                                         "MIG 3g.40gb")]
    topo = protocol.decode_device(protocol.encode_device(topology("GPU-nvml", partitions=parts)))
    now = time.time_ns()
    state = protocol.State(window_ns=100_000_000, samples=10, levels={},  # sm_active per instance only
                           partition={"1": {"sm_active": 0.25}, "2": {"sm_active": 0.5}},
                           device={"sm_active": 0.5}, idle_units=8.0)
    dv = DeviceView("n", topo, state, now)
    assert dv.partition_idle_units() == {"2": 8.0}  # was {"1": 0.0, "2": 8.0}: 0 idle SMs claimed
    assert [(pid, idle) for _, pid, idle in _view(dv).rank_partitions()] == [("2", 8.0)]


def test_unmeasured_units_add_no_idle_and_a_partition_without_any_is_not_ranked():
    ids_a, ids_b = np.arange(0, 16, dtype=np.uint16), np.arange(16, 32, dtype=np.uint16)
    parts = [PartitionInfo("a", "mig", 16, MEMORY // 2, "MIG 3g.40gb", ids_a),
             PartitionInfo("b", "mig", 16, MEMORY // 2, "MIG 3g.40gb", ids_b)]
    topo = topology("GPU-mig", partitions=parts)
    topo.counters.pop("sm_active")  # no per-instance rollup to fall back on
    active = np.zeros(UNITS, np.float32)
    active[ids_a] = np.nan  # instance a: no unit measured this window
    active[16:20] = np.nan  # instance b: 4 of its 16 units not measured
    now = time.time_ns()
    st = device_state(topo, active.tolist(), now)
    st.partition = {}
    dv = DeviceView("n", protocol.decode_device(protocol.encode_device(topo)))
    dv.state, dv.ts = decoded(dv.topology, st), now
    idle = dv.partition_idle_units()
    assert idle == {"b": 12.0}  # was {"a": nan, "b": nan}
    ranked = _view(dv).rank_partitions()
    assert [(pid, v) for _, pid, v in ranked] == [("b", 12.0)] and all(math.isfinite(v) for _, _, v in ranked)
