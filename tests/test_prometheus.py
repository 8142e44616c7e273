"""The Prometheus exporter without Prometheus: names and units after the conventions, the series
budget per GPU, unit-seconds integrated exactly, missed windows and lost GPUs, the in-agent
exporter against what the feed really carried, `cuagent exporter` in front of a relay, and the
CLI's errors. (promtool and a real Prometheus: tests/test_prometheus_e2e.py.)"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Optional

import msgpack
import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cuagent import Engine, MockDevice, mock, protocol
from cuagent.exporters import feed_metrics as fm
from cuagent.exporters.feed_metrics import FeedMetrics
from cuagent.exporters.names import BASE_UNIT_SUFFIXES, counter_metric
from cuagent.exporters.prometheus import FeedCollector
from cuagent.exporters.unit_seconds import FOLD_EVERY, UNASSIGNED, UNPLACED, UnitSeconds
from cuagent.protocol import AgentInfo, Header
from cuagent.topology import CounterInfo, DeviceTopology, PartitionInfo
from feed_support import WAIT_S, Proc, Recorder, _env, start_agent, start_relay, wait_until

AGENT = AgentInfo("9.9.9", "host", 1, 1_700_000_000_000_000_000)
W = 100_000_000  # a 100 ms window


# --------------------------------------------------------------------------- helpers


def scrape(collector: FeedCollector) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry).decode()


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(text: str, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                out.append((s.labels, s.value))
    return out


def value(text: str, name: str, **labels: str) -> float:
    found = samples(text, name, **labels)
    assert len(found) == 1, (name, labels, found)
    return found[0][1]


class Feeder:
    """Pushes wire bodies into FeedMetrics through the agent hook, as `cuagent run` does."""

    def __init__(self, metrics: FeedMetrics, node: str = "n1") -> None:
        self.hook = metrics.agent_hook()
        self.node = node
        self.seq = 0

    def send(self, kind: str, body: dict, device: Optional[str] = None, ts: int = 0, gen: int = 1) -> None:
        self.seq += 1
        self.hook(protocol.build_topic(kind, self.node, device), Header(self.node, 1, self.seq, ts, gen), body)

    def topo(self, devices: list[Any], gen: int = 1) -> None:
        self.send("topo", protocol.encode_topo_body(devices, AGENT), gen=gen)

    def window(self, dev: Any, ts: int, states: Optional[np.ndarray], window_ns: int = W,
               device_values: Optional[dict] = None, partition: Optional[dict] = None,
               pods: Optional[list[dict]] = None) -> None:
        level = dev.counters["active"].level if "active" in dev.counters else None
        n = dev.counts[level] if level else 0
        levels = {}
        if states is not None and level is not None:
            mean = np.zeros(n, np.float32)
            levels[level] = {"active": protocol.CounterStat(mean, mean), "state": states.astype(np.uint8)}
        st = protocol.State(window_ns, 10, levels, partition or {}, device_values or {}, None)
        self.send("state", protocol.encode_state_body(st, dev.counters, pods=pods), device=dev.id, ts=ts)

    def event(self, kind: str, dev: Any) -> None:
        self.send("event", protocol.encode_event_body(kind, "test", dev.id), device=dev.id)


def synthetic(units: int = 6, levels: tuple[str, ...] = ("sm",), layout: Optional[dict] = None,
              counts: Optional[dict] = None, partitions: Optional[list[PartitionInfo]] = None,
              active_level: Optional[str] = "sm", device_counters: tuple[tuple[str, str, str], ...] = (),
              dev_id: str = "GPU-synthetic", memory: int = 80 << 30) -> DeviceTopology:
    counters: dict[str, CounterInfo] = {}
    if active_level is not None:
        counters["active"] = CounterInfo(active_level, "ratio")
    for name, level, unit in device_counters:
        counters[name] = CounterInfo(level, unit, f"{name} help")
    return DeviceTopology(
        id=dev_id, index=0, vendor="nvidia", model="Synthetic", backend="mock", unit=levels[-1], units=units,
        levels=list(levels), layout={k: np.asarray(v, np.uint16) for k, v in (layout or {}).items()},
        layout_source="mock", counts=counts or {levels[-1]: units},
        partitions=partitions or [PartitionInfo("0", "whole", units)], memory_bytes=memory, counters=counters)


def mig_device() -> DeviceTopology:
    """6 SMs in 3 GPCs (GPC index 9 is beyond the count: the layout could not place SM 5);
    two MIG instances hold SMs 0-1 and 2-3; SM 4 and 5 are in none."""
    return synthetic(
        levels=("gpc", "sm"), layout={"gpc": [0, 0, 1, 1, 2, 9]}, counts={"gpc": 3, "sm": 6}, device_counters=(("power", "device", "W"),),
        partitions=[PartitionInfo("7", "mig", 2, unit_ids=np.array([0, 1], np.uint16), profile="MIG 1g"),
                    PartitionInfo("8", "mig", 2, unit_ids=np.array([2, 3], np.uint16), profile="MIG 1g")])


def brute_force(dev: DeviceTopology, windows: list[tuple[int, np.ndarray]]) -> dict[tuple[str, str, str], int]:
    """Unit-ns per (partition, group, state), one unit and one window at a time."""
    level = dev.counters["active"].level
    part_of: dict[int, str] = {}
    listed = all(p.unit_ids is not None for p in dev.partitions)
    for u in range(dev.units):
        part_of[u] = (dev.partitions[0].id if len(dev.partitions) == 1 and dev.partitions[0].unit_ids is None
                      else UNASSIGNED if listed else "unknown")
    for p in dev.partitions:
        for u in (p.unit_ids if p.unit_ids is not None else []):
            part_of[int(u)] = p.id
    top = dev.levels[0]
    out: dict[tuple[str, str, str], int] = {}
    for window_ns, states in windows:
        for u in range(dev.units):
            element = u if level == dev.unit else int(dev.layout[level][u])
            if element >= dev.counts[level] or states[element] > 3:
                continue
            if top == dev.unit or top not in dev.layout:
                group = UNPLACED
            else:
                g = int(dev.layout[top][u])
                group = str(g) if g < dev.counts[top] else UNPLACED
            key = (part_of[u], group, protocol.STATE_NAMES[states[element]])
            out[key] = out.get(key, 0) + window_ns
    return out


# --------------------------------------------------------------------------- names and units

# Wire counter (name, unit as PROTOCOL.md §3.1 spells it) -> metric name. Every unit the
# protocol defines, the canonical counters, and the cases where no name may be guessed.
NAME_TABLE = [
    ("sm_active", "ratio", "cuagent_sm_active_ratio"),
    ("tensor_active", "ratio", "cuagent_tensor_active_ratio"),
    ("power", "W", "cuagent_power_watts"),
    ("temp", "C", "cuagent_temp_celsius"),
    ("mem_used", "bytes", "cuagent_mem_used_bytes"),
    ("sm_clock", "Hz", "cuagent_sm_clock_hertz"),
    ("mem_clock", "Hz", "cuagent_mem_clock_hertz"),
    ("pcie_tx", "B/s", "cuagent_pcie_tx_bytes_per_second"),
    ("nvlink_rx", "B/s", "cuagent_nvlink_rx_bytes_per_second"),
    ("ecc_uncorrected", "count", "cuagent_ecc_uncorrected"),
    ("throttle", "mask", "cuagent_throttle_mask"),
    ("scratch_bytes", "bytes", "cuagent_scratch_bytes"),  # never "_bytes_bytes"
    ("sm_clock", "MHz", None),  # not a protocol unit: no name is guessed for it
    ("power", "mW", None),
    ("Bad-Name", "ratio", None),  # from the network: never mangled into a name
    ("a b", "W", None),
]


@pytest.mark.parametrize("wire, unit, expected", NAME_TABLE)
def test_feed_counter_names_follow_the_unit_table(wire, unit, expected):
    assert counter_metric(wire, unit) == expected


# Units that are not base units, as words or abbreviations. promtool does not flag a name such
# as `..._megahertz`, so the exporter's names are checked against this list here.
NON_BASE_UNITS = {
    "milliseconds", "microseconds", "nanoseconds", "minutes", "hours", "days", "ms", "us", "ns",
    "percent", "percentage", "pct", "kilohertz", "megahertz", "gigahertz", "khz", "mhz", "ghz", "hz",
    "kilobytes", "megabytes", "gigabytes", "kibibytes", "mebibytes", "gibibytes", "kib", "mib", "gib", "kb",
    "mb", "gb", "bits", "milliwatts", "kilowatts", "watt", "millijoules", "kilojoules", "joule", "wh",
    "fahrenheit", "kelvin", "celcius", "degrees", "second", "byte", "sec", "secs",
}
# Names that measure no unit (identity, liveness, plain counts of things).
UNITLESS = {
    "cuagent_gpu_info", "cuagent_agent_info", "cuagent_partition_info", "cuagent_gpu_pod_info",
    "cuagent_gpu_up", "cuagent_feed_up", "cuagent_partition_units", "cuagent_idle_units",
    "cuagent_windows_total", "cuagent_windows_missed_total", "cuagent_samples_total",
    "cuagent_samples_dropped_total", "cuagent_exporter_messages_not_understood_total", "cuagent_ecc_uncorrected",
    "process_open_fds", "process_max_fds",
}
FORBIDDEN_LABELS = {"type", "cluster", "host", "hostname", "instance", "job"}


def check_conventions(text: str) -> set[str]:
    """Every convention the exporter promises, on one exposition; returns the names seen."""
    seen = set()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name.endswith("_created"):
                continue
            seen.add(s.name)
            assert re.fullmatch(r"(cuagent|process)_[a-z][a-z0-9_]*", s.name), s.name
            tokens = s.name.replace("_per_second", "").split("_")  # "per second" is a base-unit rate
            assert not NON_BASE_UNITS & set(tokens), f"{s.name}: not a base unit"
            if fam.type == "counter":
                assert s.name.endswith("_total"), s.name
                assert s.value >= 0, s
            else:
                assert not s.name.endswith("_total"), f"{s.name} is a {fam.type}"
            if fam.type == "info":
                assert s.name.endswith("_info") and s.value == 1, s
            stem = re.sub(r"_(total|info)$", "", s.name)
            assert s.name in UNITLESS or stem.endswith(BASE_UNIT_SUFFIXES), f"{s.name}: no base-unit suffix"
            if stem.endswith("_ratio"):
                assert 0.0 <= s.value <= 1.0, s
            for label in s.labels:
                assert re.fullmatch(r"[a-z][a-z0-9_]*", label), (s.name, label)
                assert label not in FORBIDDEN_LABELS, (s.name, label)
    return seen


def nvml_like_device() -> DeviceTopology:
    """What the NVML driver declares (cpp/src/drivers/nvml/nvml.cpp), under MIG with 7 instances:
    every unit of the protocol, and no per-SM level."""
    gpm = [(n, "partition", "ratio") for n in ("sm_active", "sm_occupancy", "tensor_active", "dram_active",
                                               "gr_active")]
    device = [("mem_used", "device", "bytes"), ("power", "device", "W"), ("temp", "device", "C"),
              ("sm_clock", "device", "Hz"), ("mem_clock", "device", "Hz"), ("throttle", "device", "mask"),
              ("gpu_util", "device", "ratio"), ("mem_util", "device", "ratio"),
              ("ecc_uncorrected", "device", "count"), ("pcie_tx", "device", "B/s"), ("pcie_rx", "device", "B/s"),
              ("nvlink_tx", "device", "B/s"), ("nvlink_rx", "device", "B/s")]
    parts = [PartitionInfo(str(i), "mig", 16, profile="MIG 1g.10gb") for i in range(7)]
    return synthetic(units=132, levels=("sm",), partitions=parts, active_level=None,
                     device_counters=tuple(gpm + device), dev_id="GPU-nvml-like")


def nvml_like_window(dev: DeviceTopology) -> dict:
    part = {p.id: {n: 0.5 for n, c in dev.counters.items() if c.level == "partition"} for p in dev.partitions}
    values = {"mem_used": 1 << 30, "power": 300.0, "temp": 60.0, "sm_clock": 1.98e9, "mem_clock": 2.6e9,
              "throttle": 4, "gpu_util": 0.5, "mem_util": 0.2, "ecc_uncorrected": 0, "pcie_tx": 1e9,
              "pcie_rx": 1e9, "nvlink_tx": 1e10, "nvlink_rx": 1e10}
    return {"device": values, "partition": part}


def mock_engine_feed(metrics: FeedMetrics, devices: list[MockDevice], seconds: float = 0.35) -> list[Any]:
    """Runs a mock engine and pushes its topo and windows through the hook, encoded as the
    agent encodes them."""
    feeder = Feeder(metrics)
    with Engine(driver="mock", devices=devices, rate_hz=200, window_ms=100, seed=1) as engine:
        topology = engine.topology()
        feeder.topo(topology)
        seen: dict[int, int] = {}
        start = time.monotonic()
        while time.monotonic() - start < WAIT_S and (len(seen) < len(topology) or time.monotonic() - start < seconds):
            for i, st in enumerate(engine.snapshot()):
                if st is not None and seen.get(i) != st.window_seq:
                    seen[i] = st.window_seq
                    body = protocol.encode_state_body(st, topology[i].counters)
                    feeder.send("state", body, device=topology[i].id, ts=st.t_ns)
            time.sleep(0.01)
        feeder.send("hb", protocol.encode_hb_body({}, 200.0, 0, 1.0))
    return topology


def all_mock_devices() -> list[MockDevice]:
    return [MockDevice(p, scenario=s, units=64 if p == "generic" else None)
            for p in mock.presets() for s in mock.scenarios()]


@pytest.fixture(scope="module")
def rich_scrape() -> tuple[str, list[Any]]:
    """Every mock preset in every scenario, plus an NVML-shaped GPU under MIG, with every
    opt-in family on and containers holding it: all the names the exporter can produce."""
    metrics = FeedMetrics()
    topology = mock_engine_feed(metrics, all_mock_devices())
    nvml = nvml_like_device()
    feeder = Feeder(metrics, node="n2")
    feeder.topo([nvml])
    w = nvml_like_window(nvml)
    pods = [{"namespace": "ml", "pod": f"train-{i}", "container": "main", "resource": "nvidia.com/mig-1g.10gb",
             "partition": str(i)} for i in range(7)]
    feeder.window(nvml, 1_000_000_000, None, device_values=w["device"], partition=w["partition"], pods=pods)
    text = scrape(FeedCollector(metrics, node_label=True, per_unit=True, per_process=True))
    return text, [*topology, nvml]


def test_every_name_unit_and_label_follows_the_conventions(rich_scrape):
    text, _ = rich_scrape
    seen = check_conventions(text)
    for expected in ("cuagent_gpu_info", "cuagent_gpu_up", "cuagent_partition_info", "cuagent_unit_state_seconds_total",
                     "cuagent_gpu_energy_joules_total", "cuagent_windows_total", "cuagent_windows_missed_total",
                     "cuagent_sm_active_ratio", "cuagent_power_watts", "cuagent_sm_clock_hertz",
                     "cuagent_pcie_tx_bytes_per_second", "cuagent_unit_active_ratio", "cuagent_gpu_pod_info",
                     "cuagent_sm_active_peak_ratio", "cuagent_agent_info", "cuagent_feed_up"):
        assert expected in seen, expected


def test_pods_are_one_info_series_per_container_to_join_on(rich_scrape):
    text, _ = rich_scrape
    pods = samples(text, "cuagent_gpu_pod_info", gpu_uuid="GPU-nvml-like")
    assert sorted((lab["partition"], lab["pod"]) for lab, _ in pods) == [(str(i), f"train-{i}") for i in range(7)]
    assert all(lab["resource"] == "nvidia.com/mig-1g.10gb" and lab["namespace"] == "ml" for lab, _ in pods)
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name != "cuagent_gpu_pod_info":
                assert "pod" not in s.labels, s  # no other series grows a pod label


def test_node_label_only_from_the_multi_node_exporter(rich_scrape):
    text, _ = rich_scrape
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name != "cuagent_exporter_messages_not_understood_total":
                assert s.labels.get("node") in ("n1", "n2"), s
    metrics = FeedMetrics()
    mock_engine_feed(metrics, [MockDevice("h100-sxm", scenario="idle")], seconds=0.15)
    for fam in text_string_to_metric_families(scrape(FeedCollector(metrics))):
        for s in fam.samples:
            assert "node" not in s.labels, s  # inside the agent, the scrape target says which host


def series_per_gpu(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if "gpu_uuid" in s.labels and not s.name.endswith("_created"):
                key = f"{s.labels.get('node', '')}/{s.labels['gpu_uuid']}"
                counts[key] = counts.get(key, 0) + 1
    return counts


def test_default_series_per_gpu_within_budget():
    """≤ 100 series per GPU by default, for every mock preset and scenario (MIG and XCP
    partitions included) and an NVML GPU under MIG with every counter NVML declares."""
    metrics = FeedMetrics()
    devices = all_mock_devices()
    mock_engine_feed(metrics, devices)
    nvml = nvml_like_device()
    feeder = Feeder(metrics, node="n2")
    feeder.topo([nvml])
    w = nvml_like_window(nvml)
    feeder.window(nvml, 1_000_000_000, None, device_values=w["device"], partition=w["partition"])
    counts = series_per_gpu(scrape(FeedCollector(metrics, node_label=True)))
    assert len(counts) == len(devices) + 1
    worst = max(counts.items(), key=lambda kv: kv[1])
    assert worst[1] <= 100, counts
    # The figures README.md quotes: an H100, one under MIG, an MI300X in CPX, an NVML GPU under MIG.
    quoted = {(d.preset, d.scenario): counts[f"n1/mock-{i}"] for i, d in enumerate(devices)}
    assert (quoted["h100-sxm", "idle"], quoted["h100-sxm", "mig"], quoted["mi300x", "mig"],
            counts["n2/GPU-nvml-like"]) == (59, 77, 97, 71), counts
    per_unit = series_per_gpu(scrape(FeedCollector(metrics, node_label=True, per_unit=True)))
    assert per_unit["n1/mock-0"] > 132 * 4  # the per-SM series exist, behind their flag


# --------------------------------------------------------------------------- unit-seconds


@pytest.mark.parametrize("make", [mig_device, lambda: synthetic(
    units=8, levels=("xcd", "se", "cu"), layout={"xcd": [0, 0, 0, 0, 1, 1, 1, 1], "se": [0, 0, 1, 1, 2, 2, 3, 3]},
    counts={"xcd": 2, "se": 4, "cu": 8}, active_level="xcd")], ids=["sm-level-mig", "xcd-level"])
def test_unit_seconds_are_exact_over_mixed_windows(make):
    dev = make()
    ledger = UnitSeconds(dev)
    rng = np.random.default_rng(7)
    n = dev.counts[dev.counters["active"].level]
    windows = []
    for i in range(FOLD_EVERY * 2 + 17):  # crosses the automatic fold twice, then folds at read
        states = rng.integers(0, 5, n).astype(np.uint8)  # 4: not a state, counted nowhere
        # The first batch has equal spans (the common case, folded on a fast path), the
        # later ones mixed spans.
        window_ns = W if i < FOLD_EVERY or i % 3 else 99_999_937 + i
        windows.append((window_ns, states))
        assert ledger.add(window_ns, states.tobytes())
    expected = brute_force(dev, windows)
    got = {(p, g, s): ns for p, g, s, ns in ledger.totals_ns()}
    assert {k: v for k, v in got.items() if v} == expected
    assert len(got) == len(ledger.cells) * 4  # zeros too: every series exists from the start


def test_unassigned_and_unplaced_units_are_labelled_not_dropped():
    ledger = UnitSeconds(mig_device())
    assert ledger.cells == [("7", "0"), ("8", "1"), (UNASSIGNED, "2"), (UNASSIGNED, UNPLACED)]
    assert not ledger.add(W, b"\x00" * 5)  # a window that does not fit the topology is not counted


def test_a_new_partition_layout_keeps_the_counts_so_far():
    dev = mig_device()
    ledger = UnitSeconds(dev)
    ledger.add(W, bytes(6))  # all idle
    whole = synthetic(levels=("gpc", "sm"), layout={"gpc": [0, 0, 1, 1, 2, 9]}, counts={"gpc": 3, "sm": 6})
    ledger.rebind(whole)
    ledger.add(W, bytes(6))
    got = {(p, g, s): ns for p, g, s, ns in ledger.totals_ns() if ns}
    assert got == {("0", "0", "idle"): 2 * W, ("0", "1", "idle"): 2 * W, ("0", "2", "idle"): W,
                   ("0", UNPLACED, "idle"): W}
    ledger.rebind(dev)  # back to MIG: the MIG-era counts resume from where they were
    got = {(p, g, s): ns for p, g, s, ns in ledger.totals_ns() if ns}
    assert got[("7", "0", "idle")] == 2 * W and got[(UNASSIGNED, "2", "idle")] == W


def test_no_unit_seconds_where_nothing_measures_activity():
    dev = nvml_like_device()
    assert not UnitSeconds(dev).measures
    metrics = FeedMetrics()
    feeder = Feeder(metrics)
    feeder.topo([dev])
    feeder.window(dev, 10 * W, None, device_values={"power": 100.0})
    text = scrape(FeedCollector(metrics))
    assert not samples(text, "cuagent_unit_state_seconds_total")  # absent, not zero
    assert not samples(text, "cuagent_sm_active_peak_ratio")
    assert value(text, "cuagent_gpu_energy_joules_total") == pytest.approx(10.0)


# --------------------------------------------------------------------------- windows and liveness


def test_missed_windows_are_counted_and_never_filled():
    dev = mig_device()
    metrics = FeedMetrics()
    feeder = Feeder(metrics)
    feeder.topo([dev])
    idle = np.zeros(6, np.uint8)
    t = 1_000 * W
    for k in (0, 1, 5, 6, 8):  # windows 2, 3, 4 and 7 never arrive
        feeder.window(dev, t + k * W, idle, device_values={"power": 50.0})
    feeder.window(dev, t + 8 * W, idle, device_values={"power": 50.0})  # a replay: not counted twice
    text = scrape(FeedCollector(metrics))
    assert value(text, "cuagent_windows_total") == 5
    assert value(text, "cuagent_windows_missed_total") == 4
    assert value(text, "cuagent_window_seconds_total") == pytest.approx(0.5)
    assert value(text, "cuagent_gpu_energy_joules_total") == pytest.approx(25.0)
    idle_s = sum(v for _, v in samples(text, "cuagent_unit_state_seconds_total", state="idle"))
    assert idle_s == pytest.approx(6 * 0.5)  # only what was seen
    assert value(text, "cuagent_last_window_timestamp_seconds") == pytest.approx((t + 8 * W) / 1e9)


def test_gpu_up_follows_windows_the_lost_event_and_silence():
    dev = mig_device()
    metrics = FeedMetrics()
    feeder = Feeder(metrics)
    feeder.topo([dev])
    assert value(scrape(FeedCollector(metrics)), "cuagent_gpu_up") == 0  # no window yet
    t = 1_000 * W
    feeder.window(dev, t, np.zeros(6, np.uint8), device_values={"power": 50.0})
    text = scrape(FeedCollector(metrics))
    assert value(text, "cuagent_gpu_up") == 1 and value(text, "cuagent_power_watts") == 50
    feeder.event("device_lost", dev)
    text = scrape(FeedCollector(metrics))
    assert value(text, "cuagent_gpu_up") == 0
    assert not samples(text, "cuagent_power_watts")  # its last reading is not its present state
    assert value(text, "cuagent_gpu_energy_joules_total") == 5  # what was counted stays
    feeder.event("device_back", dev)
    assert value(scrape(FeedCollector(metrics)), "cuagent_gpu_up") == 0  # until its windows come
    feeder.window(dev, t + 50 * W, np.zeros(6, np.uint8))  # 5 s later: an outage, not a miss
    text = scrape(FeedCollector(metrics))
    assert value(text, "cuagent_gpu_up") == 1 and value(text, "cuagent_windows_missed_total") == 0
    dm = metrics.nodes["n1"].devices[dev.id]
    assert dm.last_arrival is not None
    assert dm.up(dm.last_arrival + fm.STALE_AFTER_S - 0.1)
    assert not dm.up(dm.last_arrival + fm.STALE_AFTER_S + 0.1)  # silence alone means lost too


def test_topo_status_lost_and_a_relays_node_stale_take_gpus_down_at_once():
    dev, other = mig_device(), synthetic(dev_id="GPU-other")
    metrics = FeedMetrics()
    feeder = Feeder(metrics)
    feeder.topo([dev, other])
    t = 1_000 * W
    feeder.window(dev, t, np.zeros(6, np.uint8))
    feeder.window(other, t, None)
    # A joiner that missed the device_lost event still learns it from topo (§3.1); a status
    # this exporter does not know counts as lost too.
    body = protocol.with_device_status(protocol.encode_topo_body([dev, other], AGENT), lost=[dev.id])
    body["devices"][1]["status"] = "degraded"
    feeder.send("topo", body)
    text = scrape(FeedCollector(metrics))
    assert value(text, "cuagent_gpu_up", gpu_uuid=dev.id) == 0
    assert value(text, "cuagent_gpu_up", gpu_uuid=other.id) == 0
    feeder.window(dev, t + W, np.zeros(6, np.uint8))  # its first window back: up again
    assert value(scrape(FeedCollector(metrics)), "cuagent_gpu_up", gpu_uuid=dev.id) == 1
    # A relay announces on its own topic that it stopped hearing node n1 (§7).
    feeder.send("hb", protocol.encode_hb_body({}, 100.0, 0, 1.0))
    assert value(scrape(FeedCollector(metrics)), "cuagent_feed_up") == 1
    relay = Feeder(metrics, node="relay-1")
    relay.send("event", protocol.encode_event_body("node_stale", "no hb for 3 s", node="n1"))
    text = scrape(FeedCollector(metrics))
    assert value(text, "cuagent_feed_up") == 0 and value(text, "cuagent_gpu_up", gpu_uuid=dev.id) == 0
    assert "relay-1" not in metrics.nodes  # a relay is no node of GPUs



def test_a_gpu_with_cupti_says_while_its_counters_are_paused_and_why():
    cupti = synthetic(dev_id="GPU-cupti", device_counters=(("pm_sm_active", "device", "ratio"),))
    plain = synthetic(dev_id="GPU-plain")
    metrics = FeedMetrics()
    feeder = Feeder(metrics)
    feeder.topo([cupti, plain])
    text = scrape(FeedCollector(metrics))
    assert samples(text, "cuagent_profiling_paused") == [({"gpu_uuid": cupti.id, "reason": ""}, 0.0)]
    # The agent re-publishes topo with the reason while paused (§3.1): a scrape of an exporter
    # that started after the profiling_paused event says it too.
    body = protocol.with_device_status(protocol.encode_topo_body([cupti, plain], AGENT), [],
                                       {cupti.id: "busy: another profiler holds the counters"})
    feeder.send("topo", body)
    assert samples(scrape(FeedCollector(metrics)), "cuagent_profiling_paused") == [
        ({"gpu_uuid": cupti.id, "reason": "busy: another profiler holds the counters"}, 1.0)]
    feeder.topo([cupti, plain])  # resumed
    assert value(scrape(FeedCollector(metrics)), "cuagent_profiling_paused", gpu_uuid=cupti.id) == 0


def _relay_forgets(metrics):
    # The relay forgot node n1 (§7).
    Feeder(metrics, node="relay-1").send("event", protocol.encode_event_body("node_gone", "silent", node="n1"))


def _client_forgets(metrics):
    # The client's own forget (§7: silent for the relay's forget interval, no node_gone came),
    # an update of kind "gone".
    from cuagent.client import Update

    metrics.client_update(Update("gone", "n1", None, None, None))


@pytest.mark.parametrize("forget", [_relay_forgets, _client_forgets])
def test_a_node_forgotten_drops_its_series(forget):
    dev = mig_device()
    metrics = FeedMetrics()
    feeder = Feeder(metrics)
    feeder.topo([dev])
    feeder.window(dev, 1_000 * W, np.zeros(6, np.uint8))
    assert value(scrape(FeedCollector(metrics)), "cuagent_gpu_up", gpu_uuid=dev.id) == 1
    forget(metrics)
    text = scrape(FeedCollector(metrics))  # nothing of it is exported any more, as if never heard
    assert "n1" not in metrics.nodes and dev.id not in text, text


def test_a_source_never_waits_for_a_scrape_and_nothing_is_lost():
    """Past DRAIN_AT queued messages the source applies them itself, but never waits for a
    scrape in progress: with the lock held (a scrape), pushes return; afterwards every
    window is counted exactly once."""
    dev = mig_device()
    metrics = FeedMetrics()
    feeder = Feeder(metrics)
    feeder.topo([dev])
    rng = np.random.default_rng(3)
    windows = [(W, rng.integers(0, 4, 6).astype(np.uint8)) for _ in range(fm.DRAIN_AT * 5)]
    t = 1_000 * W

    def push(part: list) -> None:
        for k, (_, states) in part:
            feeder.window(dev, t + k * W, states)

    indexed = list(enumerate(windows))
    push(indexed[: fm.DRAIN_AT * 2])  # applied by the source itself, twice
    assert len(metrics._queue) < fm.DRAIN_AT
    with metrics.lock:  # a scrape in progress
        pusher = threading.Thread(target=push, args=(indexed[fm.DRAIN_AT * 2:],))
        pusher.start()
        pusher.join(WAIT_S)
        assert not pusher.is_alive(), "a push waited for the scrape"
    text = scrape(FeedCollector(metrics))
    got = {(lab["partition"], lab["group"], lab["state"]): round(v * 1e9)
           for lab, v in samples(text, "cuagent_unit_state_seconds_total") if v}
    assert got == brute_force(dev, windows)
    assert value(text, "cuagent_windows_total") == len(windows)


def test_the_hook_never_raises_into_the_agent():
    metrics = FeedMetrics()
    hook = metrics.agent_hook()
    hook("not a topic", Header("n1", 1, 1, 0, 1), {})  # logged, swallowed
    hook(protocol.build_topic("topo", "n1"), Header("n1", 1, 1, 0, 1), {"devices": "garbage"})
    text = scrape(FeedCollector(metrics))  # the bad topo is applied (and refused) at the scrape
    assert value(text, "cuagent_exporter_messages_not_understood_total") == 1


# --------------------------------------------------------------------------- the agent's own /metrics


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def test_agent_metrics_equal_what_its_feed_carried(tmp_path: Path):
    """An Agent in this process with /metrics on; a raw SUB records every frame it sends.
    After it stops, every counter equals what the recorded frames say, exactly."""
    from cuagent.node.agent import Agent, AgentConfig
    from cuagent.exporters.prometheus import serve_agent

    engine = Engine(driver="mock", devices=[MockDevice("h100-sxm", scenario="fragmented"),
                                            MockDevice("mi300x", scenario="mig")], rate_hz=200, window_ms=50, seed=2)
    agent = Agent(engine, AgentConfig(node="prom-a", feed=f"ipc://{tmp_path}/f", sync=f"ipc://{tmp_path}/s",
                                      publish_interval_ms=50))
    server = serve_agent(agent, ("127.0.0.1", 0))
    rec = Recorder(agent.feed_endpoint)
    time.sleep(0.3)  # let the recorder's subscription reach the PUB before anything is sent
    engine.start()
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: rec.drain(50) >= 0 and sum(f[0].startswith(b"cua1/state/") for f in rec.frames) >= 30,
                   step=lambda: None, what="30 state messages")
        live = http_get(f"http://127.0.0.1:{server.port}/metrics")  # a scrape while it runs
        assert value(live, "cuagent_feed_up") == 1
    finally:
        agent.stop()
        thread.join(WAIT_S)
        engine.stop()
    rec.drain(200)
    text = http_get(f"http://127.0.0.1:{server.port}/metrics")
    server.close()
    agent.close()
    rec.close()

    topo = None
    expected: dict[tuple[str, str, str, str], int] = {}
    windows: dict[str, list[tuple[int, np.ndarray]]] = {}
    energy: dict[str, float] = {}
    ends: dict[str, list[tuple[int, int]]] = {}
    for frames in rec.frames:
        kind = frames[0].decode().split("/")[1]
        body = msgpack.unpackb(frames[2])
        if kind == "topo":
            topo = protocol.decode_topo_body(body)
        elif kind == "state":
            assert topo is not None
            dev_id = frames[0].decode().split("/")[3]
            dev = next(d for d in topo.devices if d.id == dev_id)
            level = dev.counters["active"].level
            windows.setdefault(dev_id, []).append(
                (body["window_ns"], np.frombuffer(body["levels"][level]["state"], np.uint8)))
            energy[dev_id] = energy.get(dev_id, 0.0) + body["device"]["power"] * body["window_ns"] / 1e9
            ends.setdefault(dev_id, []).append((msgpack.unpackb(frames[1])["ts"], body["window_ns"]))
    assert topo is not None
    for dev in topo.devices:
        for (p, g, s), ns in brute_force(dev, windows[dev.id]).items():
            expected[(dev.id, p, g, s)] = ns
        assert value(text, "cuagent_windows_total", gpu_uuid=dev.id) == len(windows[dev.id])
        assert value(text, "cuagent_gpu_energy_joules_total", gpu_uuid=dev.id) == pytest.approx(energy[dev.id], rel=1e-9)
    got = {(lab["gpu_uuid"], lab["partition"], lab["group"], lab["state"]): v
           for lab, v in samples(text, "cuagent_unit_state_seconds_total") if v}
    assert got.keys() == expected.keys()
    for key, ns in expected.items():
        assert got[key] == pytest.approx(ns / 1e9, rel=1e-12), key
    for dev_id, stamps in ends.items():
        # A window the agent's loop skipped (it publishes the latest, and a busy machine can
        # delay it past a window end) is a gap in the recorded ends: counted, never filled.
        gaps = sum(round((b - a) / w) - 1 for (a, w), b in zip(stamps, [t for t, _ in stamps[1:]]))
        assert value(text, "cuagent_windows_missed_total", gpu_uuid=dev_id) == gaps
    assert samples(text, "process_cpu_seconds_total")  # the agent's own CPU, for the operator


def test_exporter_fronts_a_relay_of_two_nodes(tmp_path: Path):
    """`cuagent exporter --connect <relay>`: every node behind the relay, each series labelled
    with its node (both agents' mock ids are mock-0: only the node tells them apart)."""
    a = start_agent(tmp_path, "node-a", "h100-sxm:idle")
    b = start_agent(tmp_path, "node-b", "mi300x:training")
    relay = start_relay(tmp_path, "relay", a.endpoint, b.endpoint)
    port = free_port()
    exporter = Proc(["exporter", "--connect", relay.endpoint, "--listen", f"127.0.0.1:{port}", "--log-level", "info"],
                    relay.feed, relay.sync, tmp_path / "exporter.log")
    try:
        def both_up() -> bool:
            try:
                text = http_get(f"http://127.0.0.1:{port}/metrics")
            except OSError:
                return False
            return len([v for _, v in samples(text, "cuagent_gpu_up") if v == 1]) == 2
        wait_until(both_up, what=f"two GPUs up:\n{exporter.log()}")
        text = http_get(f"http://127.0.0.1:{port}/metrics")
        check_conventions(text)
        models = {lab["node"]: lab["model"] for lab, _ in samples(text, "cuagent_gpu_info", gpu_uuid="mock-0")}
        assert set(models) == {"node-a", "node-b"} and "MI300X" in models["node-b"]
        assert value(text, "cuagent_feed_up", node="node-a") == 1
        assert value(text, "cuagent_partition_units", node="node-b") == 304
        idle = sum(v for _, v in samples(text, "cuagent_unit_state_seconds_total", node="node-a", state="idle"))
        assert idle > 0
    finally:
        assert exporter.stop() == 0, exporter.log()
        relay.stop()
        a.stop()
        b.stop()


# --------------------------------------------------------------------------- CLI errors


@pytest.mark.parametrize("command, flag, value_", [
    (["run", "--driver", "mock"], "--metrics-listen", "127.0.0.1:70000"),
    (["run", "--driver", "mock"], "--metrics-listen", "nowhere"),
    (["exporter", "--connect", "tcp://127.0.0.1:1"], "--listen", "[::1:7722"),
])
def test_bad_listen_address_is_one_line_and_exit_2(tmp_path, command, flag, value_):
    proc = subprocess.run([sys.executable, "-m", "cuagent.cli", *command, flag, value_],
                          capture_output=True, text=True, env=_env(), timeout=WAIT_S)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert f"argument {flag}: {value_!r}: expected HOST:PORT with PORT from 0 to 65535" in line, line


def test_a_taken_metrics_port_is_one_line_and_exit_2(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "cuagent.cli", "run", "--driver", "mock", "--node", "x",
                               "--feed", f"ipc://{tmp_path}/f", "--sync", f"ipc://{tmp_path}/s",
                               "--metrics-listen", f"127.0.0.1:{port}"],
                              capture_output=True, text=True, env=_env(), timeout=WAIT_S)
        exporter = subprocess.run([sys.executable, "-m", "cuagent.cli", "exporter", "--connect", "tcp://127.0.0.1:1",
                                   "--listen", f"127.0.0.1:{port}"],
                                  capture_output=True, text=True, env=_env(), timeout=WAIT_S)
    for result, line in ((proc, f"cuagent run: error: --metrics-listen 127.0.0.1:{port}: Address already in use"),
                         (exporter, f"cuagent exporter: error: --listen 127.0.0.1:{port}: Address already in use")):
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines()[-1] == line and "Traceback" not in result.stderr, result.stderr


# --------------------------------------------------------------------------- deploy/


def test_deploy_files_serve_and_scrape_the_default_ports():
    """The DaemonSet serves /metrics where the ServiceMonitor and the scrape config look, and
    both set the `node` label that the dashboard and the alerts group by."""
    yaml = pytest.importorskip("yaml")
    from cuagent.exporters.prometheus_cli import DEFAULT_AGENT_PORT, DEFAULT_EXPORTER_PORT
    from cuagent.options import parse_listen

    deploy = Path(__file__).resolve().parents[1] / "deploy"
    (ds,) = [d for d in yaml.safe_load_all((deploy / "daemonset.yaml").read_text()) if d and d["kind"] == "DaemonSet"]
    (c,) = ds["spec"]["template"]["spec"]["containers"]
    listen = c["args"][c["args"].index("--metrics-listen") + 1]
    assert parse_listen(listen)[1] == DEFAULT_AGENT_PORT
    assert {"name": "metrics", "containerPort": DEFAULT_AGENT_PORT, "hostPort": DEFAULT_AGENT_PORT,
            "protocol": "TCP"} in c["ports"]
    docs = {d["kind"]: d for d in yaml.safe_load_all((deploy / "prometheus" / "servicemonitor.yaml").read_text())}
    (svc_port,) = docs["Service"]["spec"]["ports"]
    assert svc_port["targetPort"] == "metrics" and svc_port["port"] == DEFAULT_AGENT_PORT
    assert docs["Service"]["spec"]["selector"] == ds["spec"]["selector"]["matchLabels"]
    (endpoint,) = docs["ServiceMonitor"]["spec"]["endpoints"]
    assert endpoint["port"] == svc_port["name"]
    assert {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"} in endpoint["relabelings"]
    config = yaml.safe_load((deploy / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert all(t.endswith(f":{DEFAULT_AGENT_PORT}") for t in jobs["cuagent"]["static_configs"][0]["targets"])
    assert jobs["cuagent"]["relabel_configs"][0]["target_label"] == "node"
    assert jobs["cuagent-exporter"]["honor_labels"] is True
    assert all(t.endswith(f":{DEFAULT_EXPORTER_PORT}") for t in jobs["cuagent-exporter"]["static_configs"][0]["targets"])
    assert config["rule_files"] == ["alerts.yaml"]
