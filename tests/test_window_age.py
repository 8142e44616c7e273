"""A window too old to be the device's present state is not served as one. A device whose reads
hang keeps status ok, its node keeps heartbeating and the agent keeps its last window in every
snapshot: the client's helpers (idle units, rankings, summaries) and the exporter's gauges must
see it for what it is by its age, judged on the agent's own clock (a skewed host clock must not
blank live windows, nor keep dead ones)."""

from __future__ import annotations

import math
import time

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cuagent import wire
from cuagent.client import Client, ClusterView, NodeView, Update
from cuagent.exporters.feed_metrics import FeedMetrics
from cuagent.exporters.prometheus import FeedCollector
from cuagent.wire import Header
from cuagent.wire.summary import RECORD_DTYPE, STATES, WINDOW
from feed_support import wait_until
from sched_support import ViewBuilder, decoded, device_state, topology
from synthetic_nodes import SyntheticNodes
from test_protocol import AGENT, h100_device, h100_state

S = 1_000_000_000
TEN_MINUTES = 600 * S
HOUR = 3600 * S


def _view_with(windows: dict[str, int]) -> tuple[ClusterView, dict[str, object]]:
    """A view of node ``n`` with one idle device per id, its window ending at the given ts."""
    vb = ViewBuilder()
    topos = {}
    for i, (dev_id, ts) in enumerate(windows.items()):
        topo = topos[dev_id] = topology(dev_id, index=i)
        vb.device("n", topo)
        vb.window(None, "n", topo, [0.0] * topo.units, ts)
    return vb.view, topos


def test_a_window_ten_minutes_old_is_no_idle_capacity():
    now = time.time_ns()
    view, _ = _view_with({"GPU-hung": now - TEN_MINUTES, "GPU-live": now - 50_000_000})
    hung, live = view.device("n", "GPU-hung"), view.device("n", "GPU-live")
    assert hung.state is not None and hung.state.idle_units == 32  # the window is still held ...
    assert hung.idle_units is None and not hung.current()  # ... but is not the device's present
    assert live.idle_units == 32 and live.current()
    assert [d.id for d in view.rank_devices()] == ["GPU-live"]
    assert {d.id for d, _, _ in view.rank_partitions()} == {"GPU-live"}
    # The limit is the caller's to set: an hour takes the old window in again.
    assert [d.id for d in view.rank_devices(max_age_s=3600)] == ["GPU-hung", "GPU-live"]
    assert {d.id for d, _, _ in view.rank_partitions(max_age_s=3600)} == {"GPU-hung", "GPU-live"}
    assert hung.fresh_idle_units(max_age_s=3600) == 32


def test_a_long_publish_interval_keeps_its_window_current_for_three_windows():
    now = time.time_ns()
    view, topos = _view_with({"GPU-slow": now})
    dv = view.device("n", "GPU-slow")
    # A 10 s publish interval: the window 8 s old is the latest there is, not a stale one.
    st = device_state(topos["GPU-slow"], [0.0] * 32, now - 8 * S)
    st.window_ns = 10 * S
    dv.state, dv.ts = decoded(dv.topology, st), now - 8 * S
    assert dv.current() and dv.idle_units == 32
    dv.ts = now - 31 * S  # three windows and more
    assert not dv.current() and dv.idle_units is None


def test_window_age_is_taken_on_the_agents_clock(tmp_path):
    """Agent clock an hour behind this host's: its live window is current, its hung one is not,
    and the old window it replays in the join's snapshot is never ranked."""
    dev = h100_device()
    topo_body = {"agent": wire.encode_topo_body([dev], AGENT)["agent"],
                 "devices": [wire.encode_device(dev) | {"id": d} for d in ("hung", "live")]}
    up = SyntheticNodes(f"ipc://{tmp_path}/up.feed", f"ipc://{tmp_path}/up.sync", 1, topo_body,
                        wire.encode_state_body(h100_state(), dev.counters), prefix="skew")
    node = up.nodes[0]

    def agent_now() -> int:
        return time.time_ns() - HOUR

    up.topo(node, ts=agent_now())
    up.state(node, "hung", agent_now() - TEN_MINUTES)
    up.state(node, "live", agent_now() - 50_000_000)
    try:
        with Client([f"ipc://{tmp_path}/up.feed,ipc://{tmp_path}/up.sync"]) as client:
            def step() -> None:
                up.serve()
                up.hb(node, ts=agent_now())
                up.state(node, "live", agent_now() - 50_000_000)
                client.poll(0.05)

            def joined() -> bool:
                nv = client.view.nodes.get(node.name)
                return (nv is not None and nv.heartbeat is not None
                        and all(d.state is not None for d in nv.devices.values()))

            wait_until(joined, step=step, what="the node joined and heard")
            hung, live = client.view.device(node.name, "hung"), client.view.device(node.name, "live")
            assert hung.idle_units is None and live.idle_units is not None
            assert [d.id for d in client.view.rank_devices()] == ["live"]
            assert {d.id for d, _, _ in client.view.rank_partitions()} == {"live"}
    finally:
        up.close()


def test_a_summary_record_whose_window_is_old_gives_no_idle_units():
    view = ClusterView()
    view.nodes["n"] = NodeView("n", epoch=1)
    rec = np.zeros(4, RECORD_DTYPE)
    rec["idle_units"] = [32, 10, np.nan, 20]
    rec["flags"] = [STATES | WINDOW | 2, STATES | WINDOW, 0, STATES | WINDOW]
    # The hung device of the audit (age 65534 ms: that or more), a live one, one with no
    # window yet, and one 5 s old.
    rec["age_ms"] = [65534, 50, 65535, 5000]
    view.summaries.apply_records("n", Header("n", 1, 1, time.time_ns(), 2), rec.tobytes())
    idle = view.summaries.idle_units()
    assert math.isnan(idle[0]) and idle[1] == 10 and math.isnan(idle[2]) and math.isnan(idle[3])
    idle = view.summaries.idle_units(max_age_s=10)
    assert math.isnan(idle[0]) and idle[1] == 10 and idle[3] == 20


# --------------------------------------------------------------------------- the exporter


def _scrape(metrics: FeedMetrics) -> dict[str, float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FeedCollector(metrics))
    out = {}
    for fam in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in fam.samples:
            if s.name in ("cuagent_gpu_up", "cuagent_power_watts"):
                out[s.name] = s.value
    return out


def _client_feed(metrics: FeedMetrics, node: str = "n1"):
    dev = h100_device()
    seq = iter(range(1, 1000))

    def send(kind: str, body: object, ts: int, device: object = None) -> None:
        metrics.client_update(Update(kind, node, device, Header(node, 1, next(seq), ts, 1), body))

    topo = wire.decode_topo_body(wire.encode_topo_body([dev], AGENT))
    hb = wire.decode_hb_body(wire.encode_hb_body({}, 1000.0, 0, 1.0))
    state = h100_state()
    return dev, send, topo, hb, state


def test_the_exporter_does_not_export_an_old_window_replayed_by_a_snapshot():
    metrics = FeedMetrics()
    dev, send, topo, hb, state = _client_feed(metrics)
    now = time.time_ns()
    # Exporter start: the snapshot replays the hung device's last window, before any heartbeat.
    send("topo", topo, now)
    send("state", state, now - TEN_MINUTES, dev.id)
    assert _scrape(metrics) == {"cuagent_gpu_up": 0.0}
    # After a resync (a heartbeat heard): the replay of the same window is still not current.
    send("hb", hb, now)
    send("state", state, now - TEN_MINUTES + 1, dev.id)
    assert _scrape(metrics) == {"cuagent_gpu_up": 0.0}
    send("state", state, now, dev.id)  # a live window
    assert _scrape(metrics) == {"cuagent_gpu_up": 1.0, "cuagent_power_watts": 512.5}


def test_the_exporter_judges_window_age_on_the_agents_clock():
    metrics = FeedMetrics()
    dev, send, topo, hb, state = _client_feed(metrics)
    agent_now = time.time_ns() - HOUR  # the agent's clock is an hour behind this host's
    send("topo", topo, agent_now)
    send("hb", hb, agent_now)
    send("state", state, agent_now - 50_000_000, dev.id)
    assert _scrape(metrics) == {"cuagent_gpu_up": 1.0, "cuagent_power_watts": 512.5}
    send("state", state, agent_now + 1, dev.id)
    send("hb", hb, agent_now + TEN_MINUTES)  # ten minutes on, the device's reads hang
    assert _scrape(metrics) == {"cuagent_gpu_up": 0.0}


def test_top_says_a_windows_age_on_the_agents_clock():
    """An agent whose clock is a minute behind this host's: top said its windows were a minute
    old; on the agent's clock (its heartbeats) it is the 50 ms it is."""
    from cuagent.exporters.top_heatmap import window_age
    from cuagent.feed.freshness import NodeClock

    here = time.time_ns()
    view, _ = _view_with({"GPU-behind": here - 60 * S - 50_000_000})
    dv = view.device("n", "GPU-behind")
    dv.clock = NodeClock()
    dv.clock.heard(here - 60 * S)  # its latest heartbeat, sent at its "now"
    ms = float(window_age(dv).split()[1])
    assert 50 <= ms < 10_000, window_age(dv)  # (was about 60,050 ms)
