"""The Prometheus exporter: ``/metrics`` for one agent (inside ``cuagent run``) or for every node
behind any agents or relays (``cuagent exporter``).

A custom collector builds fresh metric families from :class:`FeedMetrics` at each scrape
(prometheus-client writes the exposition format). Names and labels follow the Prometheus
conventions: base units as suffixes, ``_total`` counters, identity and versions in ``_info``
metrics, and no host label of ours — the scrape target's labels say which host. The one
exception is ``cuagent exporter``, which speaks for many nodes at once: it labels every series
with the feed's ``node``, as a Pushgateway keeps its groups' labels (scrape it with
``honor_labels: true``), so dashboards and alerts read both deployments alike.

Default series per GPU (an 8-GPU node with MIG or XCP partitions stays under 100 per GPU;
tests/test_prometheus.py checks every mock preset): identity, up, partitions, unit-seconds per
(partition, GPC/XCD, state), every partition/device counter of the feed, and self-monitoring.
Per-SM/CU series (``per_unit``) and per-process series (``per_process``, whose ``pid`` label
churns with every job) are opt-in. Kubernetes attribution (``state.pods``) is one info series per
container holding a GPU, ``cuagent_gpu_pod_info``, to join on ``gpu_uuid``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Iterable, Optional, Sequence

import socket
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from .. import __version__
from ..http_bounds import HANDLER_TIMEOUT, BoundedServer
from ..wire import DEVICE_LEVEL, PARTITION_LEVEL
from .feed_metrics import DeviceMetrics, FeedMetrics, NodeMetrics
from .names import PREFIX, counter_metric
from .unit_seconds import unit_groups, unit_partitions

log = logging.getLogger("cuagent.exporters")

class FeedCollector(Collector):
    """Builds every cuagent metric family from ``metrics`` at each scrape."""

    def __init__(self, metrics: FeedMetrics, node_label: bool = False, per_unit: bool = False,
                 per_process: bool = False) -> None:
        self.metrics = metrics
        self.node_label = node_label
        self.per_unit = per_unit
        self.per_process = per_process

    def collect(self) -> Iterable[Metric]:
        with self.metrics.lock:
            self.metrics.apply_queued()
            return _Scrape(self, time.monotonic()).families()


class _Scrape:
    """One scrape: the families, filled node by node and device by device."""

    def __init__(self, c: FeedCollector, now: float) -> None:
        self.c, self.now = c, now
        self.base = ["node"] if c.node_label else []
        self.node: list[str] = []  # the node label's value, when there is one
        self.fams: dict[str, tuple[str, tuple[str, ...], Metric]] = {}

    def _family(self, kind: str, name: str, doc: str, labels: Sequence[str], unit: str = "") -> Optional[Metric]:
        known = self.fams.get(name)
        if known is not None:
            # A feed counter whose derived name is already taken (by one of ours, or by a
            # counter with other labels) would corrupt that family: it is left out.
            return known[2] if known[0] == kind and known[1] == tuple(labels) else None
        full = [*self.base, *labels]
        fam: Metric
        if kind == "counter":
            fam = CounterMetricFamily(name, doc, labels=full, unit=unit)
        elif kind == "info":
            fam = InfoMetricFamily(name, doc, labels=full)
        else:
            fam = GaugeMetricFamily(name, doc, labels=full, unit=unit)
        self.fams[name] = (kind, tuple(labels), fam)
        return fam

    def gauge(self, name: str, doc: str, labels: Sequence[str], values: Sequence[str], value: float,
              unit: str = "") -> None:
        fam = self._family("gauge", name, doc, labels, unit)
        if isinstance(fam, GaugeMetricFamily):
            fam.add_metric([*self.node, *values], value)

    def counter(self, name: str, doc: str, labels: Sequence[str], values: Sequence[str], value: float,
                unit: str = "") -> None:
        fam = self._family("counter", name, doc, labels, unit)
        if isinstance(fam, CounterMetricFamily):
            fam.add_metric([*self.node, *values], value)

    def many(self, kind: str, name: str, doc: str, labels: Sequence[str],
             rows: Iterable[tuple[Sequence[str], float]], unit: str = "") -> None:
        """Many samples of one gauge or counter family: (label values, value) per row."""
        fam = self._family(kind, name, doc, labels, unit)
        if isinstance(fam, (GaugeMetricFamily, CounterMetricFamily)):
            node = self.node
            for values, v in rows:
                fam.add_metric([*node, *values], v)

    def info(self, name: str, doc: str, labels: Sequence[str], values: Sequence[str], info: dict[str, str]) -> None:
        fam = self._family("info", name, doc, labels)
        if isinstance(fam, InfoMetricFamily):
            fam.add_metric([*self.node, *values], info)

    # ------------------------------------------------------------------ families
    def families(self) -> list[Metric]:
        # The exporter's own count: never labelled with a node.
        own = CounterMetricFamily(f"{PREFIX}exporter_messages_not_understood", "feed messages the exporter "
                                  "could not interpret (each is logged)", value=self.c.metrics.decode_errors)
        for nv in sorted(self.c.metrics.nodes.values(), key=lambda n: n.name):
            self.node = [nv.name] if self.c.node_label else []
            self.node_metrics(nv)
            for dm in sorted(nv.devices.values(), key=lambda d: (d.device.index, d.device.id)):
                self.device_metrics(dm)
        return [own, *(fam for _, _, fam in self.fams.values())]

    def node_metrics(self, nv: NodeMetrics) -> None:
        if nv.agent is not None:
            self.info(f"{PREFIX}agent", "the agent publishing this feed (its version)", [], [],
                      {"version": nv.agent.version})
            self.gauge(f"{PREFIX}agent_start_time_seconds", "when the agent started, Unix time", [], [],
                       nv.agent.started_ns / 1e9, unit="seconds")
        self.gauge(f"{PREFIX}feed_up", "1 while the node's heartbeats arrive, 0 after 3 s without one "
                   "(PROTOCOL.md §3.3)", [], [], 1.0 if nv.feed_up(self.now) else 0.0)
        if nv.rate_hz is not None:
            self.gauge(f"{PREFIX}sampling_rate_hertz", "ticks per second the agent's sampler achieves",
                       [], [], nv.rate_hz, unit="hertz")
        if nv.dropped is not None:
            self.counter(f"{PREFIX}samples_dropped", "raw samples lost inside the agent (ring overflow) since "
                         "it started", [], [], nv.dropped)

    def device_metrics(self, dm: DeviceMetrics) -> None:
        dev = dm.device
        g = [dev.id]
        gl = ["gpu_uuid"]
        self.info(f"{PREFIX}gpu", "identity of a GPU: index, vendor, model, PCI bus id, the backend that "
                  "measures it, where its GPC/XCD layout comes from", gl, g,
                  {"gpu": str(dev.index), "vendor": dev.vendor, "model": dev.model, "pci_bus_id": dev.pci or "",
                   "backend": dev.backend, "layout_source": dev.layout_source})
        self.gauge(f"{PREFIX}gpu_up", "1 while the GPU's latest window is current (at most 3 s old, or 3 windows, "
                   "on the agent's clock), 0 once it is lost (device_lost) or its window is older",
                   gl, g, 1.0 if dm.up(self.now) else 0.0)
        if "pm_sm_active" in dev.counters:  # a GPU with CUPTI's kHz counters
            paused = dm.profiling_paused
            self.gauge(f"{PREFIX}profiling_paused", "1 while the GPU's CUPTI counters (pm_*) are paused, busy or not "
                       "permitted, reason saying why (the agent's topo); 0 while they flow", [*gl, "reason"],
                       [dev.id, paused or ""], 0.0 if paused is None else 1.0)
        if dev.memory_bytes > 0:
            self.gauge(f"{PREFIX}mem_total_bytes", "device memory", gl, g, dev.memory_bytes, unit="bytes")
        pl = [*gl, "partition"]
        for p in dev.partitions:
            self.info(f"{PREFIX}partition", "a partition of a GPU: MIG instance, AMD XCP, or the whole GPU "
                      "(mode whole)", pl, [dev.id, p.id], {"profile": p.profile, "mode": p.kind})
            self.gauge(f"{PREFIX}partition_units", "SMs/CUs in the partition", pl, [dev.id, p.id], p.units)
        self.unit_state_seconds(dm)
        self.window_counters(dm)
        # The latest window's values only while the GPU is up: a lost GPU's last reading is
        # not its present state (its counters above stay: what was counted stays true).
        st = dm.state() if dm.up(self.now) else None
        if st is not None:
            self.feed_counters(dm, st)
            if self.c.per_unit:
                self.unit_counters(dm, st)
            if self.c.per_process and st.processes is not None:
                self.processes(dm, st.processes)
            if st.pods:
                self.pods(dm, st.pods)

    def unit_state_seconds(self, dm: DeviceMetrics) -> None:
        dev_id = dm.device.id
        self.many("counter", f"{PREFIX}unit_state_seconds", "unit-seconds spent in each state, summed over the "
                  "SMs/CUs of a GPC/XCD (group) in a partition, from every window received: rate() is the mean "
                  "number of units in the state", ["gpu_uuid", "partition", "group", "state"],
                  (((dev_id, p, g, s), ns / 1e9) for p, g, s, ns in dm.ledger.totals_ns()), unit="seconds")

    def window_counters(self, dm: DeviceMetrics) -> None:
        gl, g = ["gpu_uuid"], [dm.device.id]
        self.counter(f"{PREFIX}windows", "state windows received", gl, g, dm.windows)
        self.counter(f"{PREFIX}windows_missed", "windows not received (gaps in the window grid while the GPU "
                     "was up): counted here, in no state", gl, g, dm.missed)
        self.counter(f"{PREFIX}window_seconds", "time covered by the windows received", gl, g,
                     dm.window_ns_total / 1e9, unit="seconds")
        self.counter(f"{PREFIX}samples", "raw samples aggregated into the windows received", gl, g, dm.samples)
        if "power" in dm.device.counters:
            self.counter(f"{PREFIX}gpu_energy_joules", "energy: power integrated over the windows received", gl, g,
                         dm.energy_j, unit="joules")
        if dm.last_ts is not None:
            self.gauge(f"{PREFIX}last_window_timestamp_seconds", "end of the latest window received, Unix time "
                       "(time() minus this is how old the data is)", gl, g, dm.last_ts / 1e9, unit="seconds")

    def feed_counters(self, dm: DeviceMetrics, st: Any) -> None:
        dev = dm.device
        labels = ["gpu_uuid", "partition"]
        for name, info in dev.counters.items():
            metric = counter_metric(name, info.unit)
            if metric is None:
                continue
            doc = f"{info.help or name} (feed counter {name}, measured per {info.level})"
            if info.level == PARTITION_LEVEL:
                for pid, values in st.partition.items():
                    if name in values:
                        self.gauge(metric, doc, labels, [dev.id, pid], float(values[name]))
            elif info.level == DEVICE_LEVEL:  # one label set per name: partition empty is device-wide
                if name in st.device:
                    self.gauge(metric, doc, labels, [dev.id, ""], float(st.device[name]))
            elif info.level == dev.levels[0] and info.level != dev.unit:
                # Measured per GPC/XCD (ROCm SMI: activity per XCD): as many series as groups.
                stat = st.levels.get(info.level, {}).get(name)
                group_metric = counter_metric(name, info.unit, prefix=f"{PREFIX}group_")
                if stat is not None and group_metric is not None:
                    self.many("gauge", group_metric, f"{info.help or name} (feed counter {name}, per {info.level})",
                              ["gpu_uuid", "group"], (((dev.id, str(i)), v) for i, v in enumerate(stat.mean.tolist())))
        self.activity_peak(dm, st)
        if st.idle_units is not None:
            self.gauge(f"{PREFIX}idle_units", "estimated idle SMs/CUs in the latest window (the feed's idle_units)",
                       ["gpu_uuid"], [dev.id], st.idle_units)

    def activity_peak(self, dm: DeviceMetrics, st: Any) -> None:
        """The top of the kHz band: per partition, the mean over its units of each unit's
        highest ``active`` sample in the window. With ``sm_active`` (the window's mean) it
        bounds what only sub-millisecond sampling sees: a partition 20 % active on average
        whose every SM was busy at some instant of the window. Absent where no per-unit or
        per-group ``active`` is measured (NVML)."""
        level = dm.ledger.level
        stat = st.levels.get(level, {}).get("active") if level else None
        if stat is None:
            return
        peaks = stat.max
        for pid, elements in dm.partition_elements().items():
            if len(elements):
                self.gauge(f"{PREFIX}sm_active_peak_ratio", "mean over a partition's units of each unit's highest "
                           "active sample in the latest window: with cuagent_sm_active_ratio (the mean), the band "
                           "that kHz sampling shows", ["gpu_uuid", "partition"], [dm.device.id, pid],
                           float(peaks[elements].mean()))

    def unit_counters(self, dm: DeviceMetrics, st: Any) -> None:
        dev = dm.device
        level = st.levels.get(dev.unit)
        if not level:
            return
        groups, partitions = unit_groups(dev), unit_partitions(dev)
        labels = ["gpu_uuid", "partition", "group", "unit"]
        for name, stat in level.items():
            info = dev.counters.get(name)
            if info is None or name == "state":
                continue
            metric = counter_metric(name, info.unit, prefix=f"{PREFIX}unit_")
            if metric is None:
                continue
            doc = f"{info.help or name} (feed counter {name}, per {dev.unit}; off by default)"
            self.many("gauge", metric, doc, labels, (((dev.id, partitions[u], groups[u], str(u)), v)
                                                     for u, v in enumerate(stat.mean.tolist())))

    def pods(self, dm: DeviceMetrics, pods: list[dict[str, Any]]) -> None:
        """Who holds the GPU (the kubelet's PodResources, carried in ``state.pods``): one info
        series per container, to join on gpu_uuid (and partition, for MIG), so that no other
        series grows a pod label (dcgm-exporter's cardinality complaint)."""
        labels = ["gpu_uuid", "partition", "namespace", "pod", "container"]
        for p in pods:
            self.info(f"{PREFIX}gpu_pod", "a Kubernetes container the kubelet assigned this GPU (or, for MIG, this "
                      "partition) to; join on gpu_uuid", labels,
                      [dm.device.id, str(p.get("partition") or ""), str(p.get("namespace", "")), str(p.get("pod", "")),
                       str(p.get("container", ""))], {"resource": str(p.get("resource", ""))})

    def processes(self, dm: DeviceMetrics, processes: list[dict[str, Any]]) -> None:
        labels = ["gpu_uuid", "pid", "process"]
        for p in processes:
            values = [dm.device.id, str(p.get("pid")), str(p.get("name") or "")]
            if p.get("sm") is not None:
                self.gauge(f"{PREFIX}process_sm_ratio", "a process's share of the GPU's SMs (off by default)",
                           labels, values, float(p["sm"]))
            if p.get("mem") is not None:
                self.gauge(f"{PREFIX}process_mem_bytes", "device memory a process holds (off by default)",
                           labels, values, float(p["mem"]))


# --------------------------------------------------------------------------- serving


class _QuietHandler(WSGIRequestHandler):
    timeout = HANDLER_TIMEOUT  # a connection silent this long is closed

    def log_message(self, format: str, *args: Any) -> None:  # one line per scrape is noise
        pass


class _Server(BoundedServer, WSGIServer):
    """At most MAX_CONNECTIONS scrapes at once, each on its own thread (http_bounds)."""


class _Server6(_Server):
    address_family = socket.AF_INET6


class MetricsServer:
    """``/metrics`` over HTTP from a daemon thread, for ``collector`` plus this process's own
    CPU and memory (``process_*``: what an operator compares with dcgm-exporter's)."""

    def __init__(self, collector: Collector, listen: tuple[str, int]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        ProcessCollector(registry=self.registry)
        host, port = listen
        # Uncompressed: gzip of a 46 KB exposition costs more CPU on the GPU node (1.7 ms at
        # prometheus-client's level 9, as much as building it) than its bytes cost a LAN.
        app = make_wsgi_app(self.registry, disable_compression=True)
        server_class = _Server6 if ":" in host else _Server
        self.httpd = make_server(host, port, app, server_class, handler_class=_QuietHandler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="cuagent-metrics", daemon=True)
        self.thread.start()
        self.port = int(self.httpd.server_port)
        self.host = host

    @property
    def address(self) -> str:
        """HOST:PORT as bound (the port a 0 chose), an IPv6 host in brackets."""
        return f"{self.host if ':' not in self.host else f'[{self.host}]'}:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def serve_agent(agent: Any, listen: tuple[str, int], per_unit: bool = False, per_process: bool = False) -> MetricsServer:
    """``/metrics`` from inside ``cuagent run``: the agent hands each message it publishes to
    the exporter (``agent.on_publish``), so no socket or decoding stands in between."""
    metrics = FeedMetrics()
    server = MetricsServer(FeedCollector(metrics, node_label=False, per_unit=per_unit, per_process=per_process),
                           listen)
    agent.on_publish = metrics.agent_hook()
    log.info("metrics on http://%s/metrics", server.address)
    return server


class FeedExporter:
    """``cuagent exporter``: a :class:`cuagent.client.Client` following ``endpoints`` (agents
    or relays) and ``/metrics`` for every node it hears of. :meth:`run` until :meth:`stop`."""

    def __init__(self, endpoints: Sequence[str], listen: tuple[str, int], curve: Any = None, per_unit: bool = False,
                 per_process: bool = False) -> None:
        from ..client import Client

        self.metrics = FeedMetrics()
        self.client = Client(list(endpoints), curve=curve)
        self.client.on_update(self.metrics.client_update)
        try:
            self.server = MetricsServer(FeedCollector(self.metrics, node_label=True, per_unit=per_unit,
                                                      per_process=per_process), listen)
        except OSError:
            self.client.close()
            raise
        log.info("exporter: metrics on http://%s/metrics, for %s; cuagent %s", self.server.address,
                 ", ".join(e.sync for e in self.client.endpoints), __version__)
        self._stop = threading.Event()

    def run(self, poll_s: float = 0.25) -> None:
        while not self._stop.is_set():
            self.client.poll(poll_s)

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.server.close()
        st = self.client.stats
        log.info("exporter stopped: %d node(s) followed; messages %d, gaps %d, resyncs %d, decode errors %d",
                 len(self.metrics.nodes), st.messages, st.gaps, st.resyncs, st.decode_errors)
        self.client.close()

