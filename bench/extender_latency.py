"""kube-scheduler extender response time: POST /prioritize for a GPU pod over 100 candidate
nodes (8 H100s each), as kube-scheduler sends it (nodeCacheCapable: NodeNames only, one
keep-alive connection), p50/p99 over many requests. Target: p99 <= 5 ms (issue 12).

Ours: the extender's HTTP service (`cuagent extender`'s handler and ExtenderService) over a
Scorer that has folded the fleet's windows. Baseline in the same run: the same HTTP server
answering from the straightforward pure-Python loop over the client's helpers
(bench/scorer.py's ``naive_rank``) — so the ratio is what the scorer saves per call.
The feed thread is left out: it holds the lock only while it applies updates.

    python bench/extender_latency.py [--nodes 100] [--requests 2000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet import STEP, T0, build  # noqa: E402
from machine import Steal  # noqa: E402
from scorer import naive_rank  # noqa: E402

from cuagent.scheduling import Scorer, pod_request  # noqa: E402
from cuagent.scheduling.extender import ExtenderService, _Server, parse_extender_args  # noqa: E402


def pod(i: int) -> dict[str, Any]:
    """A training pod about the size kube-scheduler sends (metadata, one container, tolerations)."""
    return {
        "metadata": {"name": f"train-{i}", "namespace": "ml", "uid": f"6f1c0e7a-0000-4000-8000-{i:012d}",
                     "labels": {"app": "trainer", "team": "research", "job": f"j{i}"},
                     "annotations": {"cuagent.io/sm-demand": "32"}, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "main", "image": "registry.example/train:1.4",
                                 "command": ["python", "-m", "train"], "args": ["--epochs", "10"],
                                 "env": [{"name": "NCCL_DEBUG", "value": "WARN"}],
                                 "resources": {"limits": {"nvidia.com/gpu": "2", "cpu": "16", "memory": "64Gi"},
                                               "requests": {"nvidia.com/gpu": "2", "cpu": "16", "memory": "64Gi"}},
                                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
                 "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                 "restartPolicy": "Never", "schedulerName": "default-scheduler"},
        "status": {"phase": "Pending"},
    }


class NaiveService(ExtenderService):
    """The baseline: same HTTP handling, ranking by a per-device Python loop."""

    def prioritize(self, body: bytes) -> list[dict[str, Any]]:
        p, names, _ = parse_extender_args(body)
        request = pod_request(p)
        assert request is not None
        with self.lock:
            scores = dict(naive_rank(self.scorer.view, request, self.clock()))
        best = max(scores.values(), default=0.0) or 1.0
        return [{"Host": n, "Score": int(round(10 * scores.get(n, 0.0) / best))} for n in names]


def measure(service: ExtenderService, names: list[str], requests: int) -> npt.NDArray[np.float64]:
    server = _Server(("127.0.0.1", 0), service)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1])
    out: list[float] = []
    try:
        for i in range(requests):
            body = json.dumps({"Pod": pod(i), "Nodes": None, "NodeNames": names}).encode()
            t = time.perf_counter()
            conn.request("POST", "/prioritize", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            out.append(time.perf_counter() - t)
            assert resp.status == 200, data
            if i == 0:
                scores = json.loads(data)
                assert len(scores) == len(names) and max(s["Score"] for s in scores) == 10
    finally:
        conn.close()
        server.shutdown()
        server.server_close()
    return np.array(out[len(out) // 10:]) * 1e3  # the first tenth warms up


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--requests", type=int, default=2000)
    args = ap.parse_args()
    view, windows = build(args.nodes, args.gpus)
    scorer = Scorer(view)
    for node, dev, ts, st in windows:
        scorer.fold(node, dev, ts, st)
    names = list(view.nodes)
    now = lambda: T0 + STEP  # noqa: E731 — the windows' own time: fresh
    with Steal() as steal:
        ours = measure(ExtenderService(scorer, clock=now), names, args.requests)
        base = measure(NaiveService(scorer, clock=now), names, max(200, args.requests // 10))
    p50, p99 = np.median(ours), np.percentile(ours, 99)
    print(f"POST /prioritize, {args.nodes} nodes × {args.gpus} GPUs, keep-alive, {len(ours)} requests")
    print(f"  cuagent extender:       p50 {p50:.2f} ms  p99 {p99:.2f} ms  max {ours.max():.2f} ms"
          f"  | target p99 <= 5 ms: {'met' if p99 <= 5 else 'NOT met'}")
    print(f"  naive-loop extender:    p50 {np.median(base):.2f} ms  p99 {np.percentile(base, 99):.2f} ms")
    print(f"  ratio (naive / ours):   p50 {np.median(base) / p50:.1f}×  p99 {np.percentile(base, 99) / p99:.1f}×")
    print(steal.summary())


if __name__ == "__main__":
    main()
