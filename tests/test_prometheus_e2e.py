"""The exporter against the real Prometheus tools (Debian package `prometheus`): `promtool check
metrics` on live scrapes, `promtool check rules` on the alert rules and on every PromQL
expression of the Grafana dashboard, `promtool test rules` on what each alert is for, and a
real Prometheus server scraping an agent on the mock every 0.5 s.

Each test skips, saying why, when the binary is absent; CI installs the package, so there
they run."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Optional

import pytest
import yaml

from cuagent.client import Client
from feed_support import ROOT, WAIT_S, Proc, wait_until

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
needs_prometheus = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (apt-get install prometheus)")

ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "cuagent.json"
FAULT_AGENT = str(Path(__file__).resolve().parent / "fakes" / "mock_fault_agent.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def start_metrics_agent(tmp: Path, name: str, devices: str, *extra: str, launcher: Optional[list[str]] = None) -> tuple[Proc, int]:
    port = free_port()
    feed, sync = f"ipc://{tmp}/{name}.feed", f"ipc://{tmp}/{name}.sync"
    args = ["run", "--driver", "mock", "--mock-devices", devices, "--seed", "3", "--node", name, "--feed", feed,
            "--sync", sync, "--rate-hz", "200", "--publish-interval-ms", "100", "--log-level", "info",
            "--metrics-listen", f"127.0.0.1:{port}", *extra]
    proc = Proc(args, feed, sync, tmp / f"{name}.log", launcher=launcher)
    proc.wait_ping()
    return proc, port


def promtool(*args: str, stdin: Optional[str] = None) -> subprocess.CompletedProcess:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, text=True, timeout=WAIT_S)


def dashboard_exprs(substitutions: dict[str, str]) -> list[str]:
    """Every PromQL expression of the dashboard (panel targets and variable queries), with
    Grafana's variables replaced as Grafana would before sending them."""
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    for var in board["templating"]["list"]:
        query = var.get("query")
        if isinstance(query, dict):  # label_values(<selector>, label): the selector is PromQL
            m = re.fullmatch(r"label_values\((.*), *\w+\)", query["query"])
            assert m, query
            exprs.append(m.group(1))
    out = []
    for expr in exprs:
        for var, value in substitutions.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, expr
        out.append(expr)
    return out


# --------------------------------------------------------------------------- promtool


@needs_promtool
def test_promtool_accepts_live_scrapes(tmp_path: Path):
    """Default series and every opt-in family (per SM/CU, per process), MIG and XCP included."""
    agent, port = start_metrics_agent(tmp_path, "lint", "h100-sxm:mig,mi300x:mig,a100-sxm:inference",
                                      "--metrics-per-unit", "--metrics-per-process")
    try:
        wait_until(lambda: "cuagent_sm_active_ratio" in http_get(f"http://127.0.0.1:{port}/metrics"),
                   what="a first window on /metrics")
        text = http_get(f"http://127.0.0.1:{port}/metrics")
    finally:
        assert agent.stop() == 0, agent.log()
    result = promtool("check", "metrics", stdin=text)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), result


@needs_promtool
def test_promtool_accepts_the_alert_rules():
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    names = {r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}
    assert names == {"CuagentGpuLost", "CuagentUnitsThrashing", "CuagentFeedStale", "CuagentFragmented",
                     "CuagentProfilingBlocked"}


@needs_promtool
def test_promtool_accepts_every_dashboard_expression(tmp_path: Path):
    exprs = dashboard_exprs({"$node": ".*", "$gpu": ".*", "$__rate_interval": "1m", "$__range": "1h"})
    assert len(exprs) >= 15
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"cuagent:dashboard:expr_{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def _series(name: str, values: str, **labels: str) -> dict[str, str]:
    base = {"job": "cuagent", "instance": "gpu01:7712", "node": "gpu01"}
    text = ",".join(f'{k}="{v}"' for k, v in {**base, **labels}.items())
    return {"series": f"{name}{{{text}}}", "values": values}


def expected_alert(name: str, labels: dict[str, str], value: str) -> dict[str, Any]:
    """The alert promtool must report: its labels and its annotations as Prometheus renders
    them (so a template naming a label the expression drops shows up as a failure)."""
    (rule,) = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"] if r["alert"] == name]

    def render(template: str) -> str:
        text = re.sub(r"\{\{ \$value( \| humanize)? \}\}", value, template)
        return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)

    return {"exp_labels": {**labels, **rule["labels"]},
            "exp_annotations": {k: render(v) for k, v in rule["annotations"].items()}}


@needs_promtool
def test_each_alert_fires_on_its_case_and_not_beside_it(tmp_path: Path):
    """`promtool test rules`: one minute per step; unit-seconds grow by 60 × units per minute."""
    us = "cuagent_unit_state_seconds_total"
    series = [
        # g-lost stops at minute 2; g-ok stays up.
        _series("cuagent_gpu_up", "1 1 0x10", gpu_uuid="g-lost"),
        _series("cuagent_gpu_up", "1x12", gpu_uuid="g-ok"),
        # Thrashing: 2 units on average on g-thrash; 0.5 on g-mild (below one unit).
        _series(us, "0+120x12", gpu_uuid="g-thrash", partition="0", group="0", state="thrashing"),
        _series(us, "0+30x12", gpu_uuid="g-mild", partition="0", group="0", state="thrashing"),
        # The feed of gpu02 goes stale; gpu01 keeps its heartbeats.
        {"series": 'cuagent_feed_up{job="cuagent",instance="gpu02:7712",node="gpu02"}', "values": "1 0x10"},
        {"series": 'cuagent_feed_up{job="cuagent",instance="gpu01:7712",node="gpu01"}', "values": "1x12"},
        # Fragmented: g-frag's GPC 1 (16 SMs) idles while GPC 0 works, memory 95 % full;
        # g-roomy idles the same way with memory 20 % full: no alert.
        _series(us, "0+960x30", gpu_uuid="g-frag", partition="0", group="1", state="idle"),
        _series(us, "0+0x30", gpu_uuid="g-frag", partition="0", group="1", state="active"),
        _series(us, "0+960x30", gpu_uuid="g-frag", partition="0", group="0", state="active"),
        _series(us, "0+0x30", gpu_uuid="g-frag", partition="0", group="0", state="idle"),
        _series("cuagent_mem_used_bytes", "76000000000x30", gpu_uuid="g-frag"),
        _series("cuagent_mem_total_bytes", "80000000000x30", gpu_uuid="g-frag"),
        _series(us, "0+960x30", gpu_uuid="g-roomy", partition="0", group="1", state="idle"),
        _series(us, "0+960x30", gpu_uuid="g-roomy", partition="0", group="0", state="active"),
        _series("cuagent_mem_used_bytes", "16000000000x30", gpu_uuid="g-roomy"),
        _series("cuagent_mem_total_bytes", "80000000000x30", gpu_uuid="g-roomy"),
        # MIG SMs no instance holds are idle by construction: never "fragmented".
        _series(us, "0+960x30", gpu_uuid="g-mig", partition="unassigned", group="8", state="idle"),
        _series("cuagent_mem_used_bytes", "76000000000x30", gpu_uuid="g-mig"),
        _series("cuagent_mem_total_bytes", "80000000000x30", gpu_uuid="g-mig"),
        # CUPTI held by another profiler on g-busy; paused by the operator on g-ncu: no alert.
        _series("cuagent_profiling_paused", "1x40", gpu_uuid="g-busy", reason="busy: held by another profiler"),
        _series("cuagent_profiling_paused", "1x40", gpu_uuid="g-ncu", reason="ncu session"),
    ]
    base = {"job": "cuagent", "instance": "gpu01:7712", "node": "gpu01"}
    tests = {"rule_files": [str(ALERTS)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [
            {"eval_time": "4m", "alertname": "CuagentGpuLost",
             "exp_alerts": [expected_alert("CuagentGpuLost", {**base, "gpu_uuid": "g-lost"}, "0")]},
            {"eval_time": "4m", "alertname": "CuagentUnitsThrashing", "exp_alerts": []},  # not yet 5 min
            {"eval_time": "8m", "alertname": "CuagentUnitsThrashing", "exp_alerts": [
                expected_alert("CuagentUnitsThrashing", {**base, "gpu_uuid": "g-thrash", "partition": "0"}, "2")]},
            {"eval_time": "4m", "alertname": "CuagentFeedStale", "exp_alerts": [
                expected_alert("CuagentFeedStale", {"job": "cuagent", "instance": "gpu02:7712", "node": "gpu02"}, "0")]},
            {"eval_time": "8m", "alertname": "CuagentFragmented", "exp_alerts": []},  # not yet 10 min
            {"eval_time": "25m", "alertname": "CuagentFragmented",
             "exp_alerts": [expected_alert("CuagentFragmented", {**base, "gpu_uuid": "g-frag"}, "1")]},
            {"eval_time": "25m", "alertname": "CuagentProfilingBlocked", "exp_alerts": []},  # not yet 30 min
            {"eval_time": "35m", "alertname": "CuagentProfilingBlocked", "exp_alerts": [
                expected_alert("CuagentProfilingBlocked", {**base, "gpu_uuid": "g-busy",
                                                           "reason": "busy: held by another profiler"}, "1")]},
        ],
    }]}
    path = tmp_path / "alerts-test.yaml"
    path.write_text(yaml.safe_dump(tests))
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- a real Prometheus


class PrometheusServer:
    """The Debian `prometheus` binary on loopback, scraping ``target`` every 0.5 s."""

    def __init__(self, tmp: Path, target: str) -> None:
        assert PROMETHEUS is not None
        self.port = free_port()
        config = {"global": {"scrape_interval": "500ms", "scrape_timeout": "400ms"},
                  "scrape_configs": [{"job_name": "cuagent", "static_configs": [{"targets": [target]}],
                                      "relabel_configs": [{"source_labels": ["__address__"], "regex": "(.+):[0-9]+",
                                                           "target_label": "node", "replacement": "$1"}]}]}
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log_path = tmp / "prometheus.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"], stdout=self._log, stderr=subprocess.STDOUT)
        wait_until(self._ready, what=f"prometheus ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return "Ready" in http_get(f"http://127.0.0.1:{self.port}/-/ready", timeout=1)
        except OSError:
            return False

    def query(self, expr: str, at: Optional[float] = None) -> list[dict[str, Any]]:
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        reply = json.loads(http_get(f"http://127.0.0.1:{self.port}/api/v1/query?{urllib.parse.urlencode(params)}"))
        assert reply["status"] == "success", reply
        return list(reply["data"]["result"])

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()


# Tolerance of the idle check. The feed's idle_units is Σ (1 − mean active) over the SMs, a
# continuous estimate; the counter integrates the idle *state* (mean active < 0.05, with
# hysteresis). On `fragmented` work the SMs are either pinned busy or idle, so the two agree
# within a few SMs (measured: mean difference 0.4 SM of 132); the boundaries of the span add at
# most one 100 ms window at each end. 3 SMs is 2.3 % of the GPU.
IDLE_TOLERANCE_UNITS = 3.0
LOST_AT_S = 25.0  # device time at which the mock GPU falls off the bus (after a slow Prometheus start and 5 s of scrapes)


@needs_prometheus
def test_real_prometheus_sees_idle_units_and_a_lost_gpu(tmp_path: Path):
    agent, port = start_metrics_agent(tmp_path, "e2e", "h100-sxm:fragmented",
                                      launcher=[FAULT_AGENT, str(LOST_AT_S), "600"])
    prom: Optional[PrometheusServer] = None
    client = Client([agent.endpoint])
    windows: list[tuple[int, float]] = []  # (ts ns, idle_units) of every window of mock-0
    lost_seen: list[int] = []

    def on_update(u: Any) -> None:
        if u.kind == "state" and u.device == "mock-0" and u.body.idle_units is not None:
            windows.append((u.header.ts, u.body.idle_units))
        elif u.kind == "event" and u.body.type == "device_lost":
            lost_seen.append(u.header.ts)

    client.on_update(on_update)
    try:
        prom = PrometheusServer(tmp_path, f"127.0.0.1:{port}")
        series = 'cuagent_unit_state_seconds_total{gpu_uuid="mock-0", state="idle"}'
        span = "4s"

        def spans_enough() -> bool:
            client.poll(0.05)
            assert prom is not None
            # Scrapes from before the span too, so that the span is full of them.
            got = prom.query('count_over_time(cuagent_windows_total{gpu_uuid="mock-0"}[5s])')
            return bool(got) and int(got[0]["value"][1]) >= 10
        wait_until(spans_enough, step=lambda: None, what=f"5 s of scrapes:\n{prom.log()}")
        client.poll(0.05)
        # Evaluated at the latest scrape: rate() then spans whole scrape intervals and
        # extrapolates to the range's start by less than one interval, which makes it the
        # counter's exact slope between the first and last scrape of the range (evaluated
        # between scrapes, it would be off by up to an interval over the range: 12 % here).
        at = float(prom.query('timestamp(cuagent_windows_total{gpu_uuid="mock-0"})')[0]["value"][1])
        assert not lost_seen, "the GPU was lost before the span was measured"
        # Over what was seen: a window the agent's loop skipped on a busy machine adds to no
        # state (and is counted as missed); with none missed the divisor is exactly 1.
        rate = prom.query(f"sum(rate({series}[{span}])) / "
                          f"sum(rate(cuagent_window_seconds_total{{gpu_uuid=\"mock-0\"}}[{span}]))", at=at)
        raw = prom.query(f"{series}[{span}]", at=at)  # the scrapes rate() used, per GPC
        stamps = sorted({float(t) for r in raw for t, _ in r["values"]})
        t_first, t_last = stamps[0], stamps[-1]
        feed = [idle for ts, idle in windows if t_first < ts / 1e9 <= t_last]
        assert len(feed) >= 20, (len(feed), t_first, t_last, len(windows))
        feed_mean = sum(feed) / len(feed)
        prom_mean = float(rate[0]["value"][1])
        assert abs(prom_mean - feed_mean) <= IDLE_TOLERANCE_UNITS, (prom_mean, feed_mean, len(feed))
        assert 0 < prom_mean < 132  # fragmented: some GPCs idle, some not

        # Every dashboard query returns data from this live agent (the lost-GPU count, empty
        # while none is lost, aside).
        for expr in dashboard_exprs({"$node": ".*", "$gpu": ".*", "$__rate_interval": "2s", "$__range": "4s"}):
            if "== 0" not in expr:
                assert prom.query(expr, at=at), expr

        # The GPU falls off the bus: the agent announces it, and Prometheus sees gpu_up 0
        # while the node's feed stays up.
        def gpu_down() -> bool:
            client.poll(0.05)
            assert prom is not None
            got = prom.query('cuagent_gpu_up{gpu_uuid="mock-0"}')
            return bool(got) and got[0]["value"][1] == "0"
        wait_until(gpu_down, step=lambda: None, timeout=LOST_AT_S + WAIT_S, what="cuagent_gpu_up 0")
        assert lost_seen, "Prometheus saw the GPU down before the agent announced it"
        assert prom.query("cuagent_feed_up")[0]["value"][1] == "1"
        assert not prom.query('cuagent_power_watts{gpu_uuid="mock-0"}')  # no stale reading
    finally:
        client.close()
        if prom is not None:
            prom.close()
        assert agent.stop() == 0, agent.log()
