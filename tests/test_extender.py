"""The kube-scheduler extender contract over real HTTP, fed by real agents: requests are
the JSON kube-scheduler sends (ExtenderArgs with Go field names around Pod and NodeList
JSON from the official kubernetes client's models)."""

from __future__ import annotations

import http.client
import json
import logging
import re
import socket
import threading
import time
import urllib.parse

import pytest

pytest.importorskip("kubernetes")

from cuagent.client import Client  # noqa: E402
from cuagent.scheduling.extender import Extender  # noqa: E402
from feed_support import WAIT_S, Proc, start_agent, wait_until  # noqa: E402
from sched_support import (SMS_PER_GPC, UNITS, ScriptedEngine, ThreadAgent, constant, node_list_json,  # noqa: E402
                           pod_json, topology)

GPU_POD = pod_json({"nvidia.com/gpu": "1"})
SHARED_POD = pod_json({"nvidia.com/gpu": "1"}, {"cuagent.io/shared": "true", "cuagent.io/sm-demand": str(SMS_PER_GPC)})


def one_idle_gpc() -> list[float]:
    return [0.0] * SMS_PER_GPC + [0.5] * (UNITS - SMS_PER_GPC)


def scattered() -> list[float]:
    out = []
    for _ in range(UNITS // SMS_PER_GPC):
        out += [0.0, 0.0] + [0.5] * (SMS_PER_GPC - 2)
    return out


class Http:
    """One keep-alive connection, as kube-scheduler's Go client keeps one."""

    def __init__(self, url: str) -> None:
        u = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)

    def post(self, path: str, body: object) -> tuple[int, object]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        return resp.status, json.loads(resp.read())

    def get(self, path: str) -> tuple[int, object]:
        self.conn.request("GET", path)
        resp = self.conn.getresponse()
        return resp.status, json.loads(resp.read())

    def close(self) -> None:
        self.conn.close()


class Running:
    """An in-process Extender (HTTP threads + the feed loop in a thread)."""

    def __init__(self, endpoints: list[str], filter_enabled: bool = True) -> None:
        self.ext = Extender(Client(endpoints), ("127.0.0.1", 0), filter_enabled=filter_enabled).start()
        self.thread = threading.Thread(target=self.ext.run, daemon=True)
        self.thread.start()
        self.http = Http(self.ext.url)

    def scores(self, pod: dict, names: list[str]) -> dict[str, int]:
        status, out = self.http.post("/prioritize", {"Pod": pod, "Nodes": None, "NodeNames": names})
        assert status == 200, out
        assert [h["Host"] for h in out] == names  # one entry per node, in the order sent
        assert all(set(h) == {"Host", "Score"} and 0 <= h["Score"] <= 10 for h in out)
        return {h["Host"]: h["Score"] for h in out}

    def close(self) -> None:
        self.http.close()
        self.ext.stop()
        self.thread.join(10)
        self.ext.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("extender")
    procs = [start_agent(tmp, "idle-node", "h100-sxm:idle,h100-sxm:idle"),
             start_agent(tmp, "train-node", "h100-sxm:training,h100-sxm:training")]
    scripted = [ThreadAgent(tmp, "gpc-node", ScriptedEngine([(topology("GPU-g"), constant(one_idle_gpc()))])),
                ThreadAgent(tmp, "spread-node", ScriptedEngine([(topology("GPU-s"), constant(scattered()))]))]
    run = Running([p.endpoint for p in procs] + [a.endpoint for a in scripted])
    try:
        names = ["idle-node", "train-node", "gpc-node", "spread-node"]
        wait_until(lambda: run.ext.client.ready and all(
            n in run.ext.client.view.nodes and all(d.state is not None for d in run.ext.client.view.nodes[n].devices.values())
            for n in names), what="every node's first window")
        time.sleep(1.0)  # a few windows into the horizon
        yield run
    finally:
        run.close()
        for a in scripted:
            a.stop()
        for p in procs:
            p.stop()


def test_idle_node_outranks_training_node(cluster):
    scores = cluster.scores(GPU_POD, ["train-node", "idle-node", "not-a-cuagent-node"])
    assert scores == {"train-node": 0, "idle-node": 10, "not-a-cuagent-node": 0}
    # Without nodeCacheCapable kube-scheduler sends the whole NodeList instead of names.
    status, out = cluster.http.post("/prioritize", {"Pod": GPU_POD, "Nodes": node_list_json(["train-node", "idle-node"]),
                                                    "NodeNames": None})
    assert status == 200 and out == [{"Host": "train-node", "Score": 0}, {"Host": "idle-node", "Score": 10}]


def test_whole_idle_gpc_outranks_scattered_idle_units(cluster):
    view = cluster.ext.client.view
    with cluster.ext.lock:
        idle = {n: view.nodes[n].devices[d].idle_units for n, d in (("gpc-node", "GPU-g"), ("spread-node", "GPU-s"))}
    assert idle["gpc-node"] == pytest.approx(idle["spread-node"])  # the same idle units
    scores = cluster.scores(SHARED_POD, ["spread-node", "gpc-node"])
    assert scores["gpc-node"] == 10 and 0 < scores["spread-node"] < 10


def test_pod_without_gpu_gets_no_opinion(cluster):
    assert cluster.scores(pod_json({"cpu": "1"}), ["idle-node", "train-node"]) == {"idle-node": 0, "train-node": 0}


@pytest.mark.parametrize("body, reason", [
    (b"{not json", "not JSON"),
    (b"[]", "JSON object"),
    (json.dumps({"Nodes": None, "NodeNames": ["a"]}).encode(), "Pod"),
    (json.dumps({"Pod": GPU_POD, "Nodes": None, "NodeNames": None}).encode(), "neither NodeNames nor Nodes"),
    (json.dumps({"Pod": GPU_POD, "NodeNames": [1]}).encode(), "NodeNames"),
    (json.dumps({"Pod": pod_json({"nvidia.com/gpu": "1"}, {"cuagent.io/sm-demand": "x"}), "NodeNames": ["a"]}).encode(),
     "sm-demand"),
    # Found by an adversarial review: each was a 500 and a logged traceback.
    (json.dumps({"Pod": pod_json({"nvidia.com/gpu": "1"}, {"cuagent.io/sm-demand": "\u00b2"}),
                 "NodeNames": ["a"]}).encode(), "Pod"),
    (json.dumps({"Pod": {"spec": {"containers": 5}}, "NodeNames": ["a"]}).encode(), "Pod"),
    (json.dumps({"Pod": GPU_POD, "Nodes": {"items": [{"metadata": ["x"]}]}}).encode(), "metadata.name"),
    (b'{"Pod": {}, "NodeNames": ["a"], "x": NaN}', "not JSON"),
    (b'{"Pod": {}, "NodeNames": ["a"], "x": 1e999}', "float64"),
    (json.dumps({"Pod": pod_json({"nvidia.com/gpu": "1"}, {"cuagent.io/sm-demand": "9" * 4000}),
                 "NodeNames": ["a"]}).encode(), "sm-demand"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deep"),
])
def test_malformed_requests_get_400_with_a_reason_and_service_goes_on(cluster, body, reason):
    status, out = cluster.http.post("/prioritize", body)
    assert status == 400 and reason in out["error"]
    assert cluster.scores(GPU_POD, ["idle-node"]) == {"idle-node": 10}  # same connection, still serving


def test_filter_fails_only_nodes_whose_data_shows_no_room(cluster):
    names = ["idle-node", "train-node", "not-a-cuagent-node"]
    status, out = cluster.http.post("/filter", {"Pod": GPU_POD, "Nodes": None, "NodeNames": names})
    assert status == 200
    assert out["NodeNames"] == ["idle-node", "not-a-cuagent-node"] and out["Nodes"] is None
    assert set(out["FailedNodes"]) == {"train-node"} and out["Error"] == ""
    assert out["FailedAndUnresolvableNodes"] == {}
    status, out = cluster.http.post("/filter", {"Pod": GPU_POD, "Nodes": node_list_json(names), "NodeNames": None})
    assert [i["metadata"]["name"] for i in out["Nodes"]["items"]] == ["idle-node", "not-a-cuagent-node"]
    assert out["NodeNames"] is None


def test_recommend_ranks_gpus_for_custom_schedulers(cluster):
    status, out = cluster.http.post("/recommend", {"request": {"gpus": 1, "shared": True, "units": 4}, "limit": 3})
    assert status == 200 and not out["stale"]
    assert out["nodes"][0]["node"] == "idle-node" and len(out["devices"]) == 3
    top = out["devices"][0]
    assert top["node"] == "idle-node" and top["eligible"] and top["idle_groups"]
    assert top["units"] == 132 and top["idle_units"] > 130
    status, out = cluster.http.post("/recommend", {"pod": SHARED_POD, "nodes": ["gpc-node", "spread-node"]})
    assert status == 200 and [n["node"] for n in out["nodes"]] == ["gpc-node", "spread-node"]
    status, out = cluster.http.post("/recommend", {"request": {"gpus": 0}})
    assert status == 400 and "gpus" in out["error"]
    assert cluster.http.get("/readyz") == (200, {"ready": True})


def test_filter_is_off_unless_asked(tmp_path):
    agent = ThreadAgent(tmp_path, "solo", ScriptedEngine([(topology("GPU-x"), constant([0.0] * UNITS))]))
    run = Running([agent.endpoint], filter_enabled=False)
    try:
        status, out = run.http.post("/filter", {"Pod": GPU_POD, "NodeNames": ["solo"]})
        assert status == 404 and "--filter" in out["error"]
    finally:
        run.close()
        agent.stop()


def test_stale_data_gives_zeros_and_one_log_line(tmp_path, caplog):
    agent = ThreadAgent(tmp_path, "fading", ScriptedEngine([(topology("GPU-f"), constant([0.0] * UNITS))]))
    run = Running([agent.endpoint])
    try:
        wait_until(lambda: run.scores(GPU_POD, ["fading"]) == {"fading": 10}, what="a score for the live node")
        agent.stop()  # no more windows or heartbeats: stale after 3 s
        with caplog.at_level(logging.WARNING, logger="cuagent.extender"):
            wait_until(lambda: run.scores(GPU_POD, ["fading"]) == {"fading": 0}, what="zeros once stale",
                       step=lambda: time.sleep(0.2))
            for _ in range(5):
                assert run.scores(GPU_POD, ["fading"]) == {"fading": 0}
        stale_lines = [r for r in caplog.records if "no fresh cuagent data" in r.getMessage()]
        assert len(stale_lines) == 1
        status, out = run.http.post("/filter", {"Pod": GPU_POD, "NodeNames": ["fading"]})
        assert status == 200 and out["NodeNames"] == ["fading"]  # no data is no reason to fail a node
    finally:
        run.close()
        agent.stop()


def test_cuagent_extender_command(tmp_path):
    agent = start_agent(tmp_path, "cli-node", "h100-sxm:idle")
    ext = Proc(["extender", "--connect", agent.endpoint, "--listen", "127.0.0.1:0", "--log-level", "info"],
               agent.feed, agent.sync, tmp_path / "extender.log")
    try:
        url = []
        wait_until(lambda: bool(url.extend(re.findall(r"extender listening on (http://\S+)", ext.log())) or url),
                   what="the extender's address")
        client = Http(url[0])
        wait_until(lambda: client.post("/prioritize", {"Pod": GPU_POD, "NodeNames": ["cli-node"]})[1]
                   == [{"Host": "cli-node", "Score": 10}], what="a score", step=lambda: time.sleep(0.2))
        assert client.post("/prioritize", b"\x00garbage")[0] == 400
        assert client.post("/prioritize", {"Pod": GPU_POD, "NodeNames": ["cli-node"]})[0] == 200
        assert client.get("/healthz")[1]["counts"]["bad_request"] == 1
        client.close()
    finally:
        assert ext.stop(timeout=WAIT_S) == 0, ext.log()
        agent.stop()


def test_cuagent_extender_bad_flags_exit_2(tmp_path):
    import subprocess
    import sys

    for args, needle in ((["--listen", "nowhere"], "HOST:PORT"), (["--horizon-s", "0"], "--horizon-s")):
        proc = subprocess.run([sys.executable, "-m", "cuagent.cli", "extender", "--connect", "tcp://127.0.0.1:1",
                               *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_request_too_large_for_a_float_is_a_400_on_recommend(cluster):
    status, out = cluster.http.post("/recommend", {"request": {"gpus": 1, "memory_bytes": 10**400}})
    assert status == 400 and "memory_bytes must be an integer from 0 to" in out["error"], out
    assert "an integer of 401 digits" in out["error"], out  # not the number itself


def test_bodies_parsed_at_once_stay_within_the_budget():
    from cuagent.scheduling.extender import _ParseBudget

    budget = _ParseBudget(10)
    budget.take(6)
    budget.take(4)  # 10: within
    waited = threading.Event()

    def third() -> None:
        budget.take(5)  # waits: 15 would be past the budget
        waited.set()
        budget.give(5)

    t = threading.Thread(target=third, daemon=True)
    t.start()
    assert not waited.wait(0.3)
    budget.give(6)
    assert waited.wait(WAIT_S)
    t.join(WAIT_S)
    budget.give(4)
    budget.take(50)  # one alone always goes, however large
    budget.give(50)
    assert budget.in_use == 0


def test_a_content_length_that_is_no_ascii_number_is_refused(cluster):
    u = urllib.parse.urlsplit(cluster.ext.url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall("POST /prioritize HTTP/1.1\r\nHost: x\r\nContent-Length: \u00b2\r\n\r\n".encode())
        assert s.recv(4096).startswith(b"HTTP/1.1 411 ")  # was: int() raised, no answer at all


def test_a_body_over_the_cap_is_refused_before_it_is_read(cluster):
    from cuagent.scheduling.extender import MAX_BODY_BYTES

    u = urllib.parse.urlsplit(cluster.ext.url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(f"POST /filter HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode())
        assert s.recv(4096).startswith(b"HTTP/1.1 413 ")


def _healthz(s: socket.socket) -> int:
    """One GET /healthz on a raw kept-alive connection: its status (0: closed, no answer)."""
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    resp = http.client.HTTPResponse(s)
    try:
        resp.begin()
    except http.client.RemoteDisconnected:
        return 0
    resp.read()
    return resp.status


def test_a_kept_alive_connection_waits_past_the_read_timeout_for_its_next_request(cluster, monkeypatch):
    """kube-scheduler's Go client keeps an idle connection 90 s. An extender that closed it
    sooner would race its next request, and Go retries no POST that meets a closed connection."""
    from cuagent.scheduling import extender

    monkeypatch.setattr(extender._Handler, "timeout", 0.3)  # a request's bytes must keep coming
    monkeypatch.setattr(cluster.ext.httpd, "keepalive_idle_s", 2.0)
    u = urllib.parse.urlsplit(cluster.ext.url)
    with socket.create_connection((u.hostname, u.port), timeout=WAIT_S) as s:
        assert _healthz(s) == 200
        time.sleep(1.0)  # idle past the read timeout, within the keep-alive wait
        assert _healthz(s) == 200  # the same connection: it was not closed
        assert s.recv(1) == b""  # ... until idle past keepalive_idle_s (closed; recv would time out otherwise)
    with socket.create_connection((u.hostname, u.port), timeout=WAIT_S) as s:
        assert _healthz(s) == 200
        s.sendall(b"GET /heal")  # the next request begun, then silent: the read timeout again
        assert s.recv(1) == b""
