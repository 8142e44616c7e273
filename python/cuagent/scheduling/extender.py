"""``cuagent extender``: the kube-scheduler extender API over HTTP, fed by a cuagent Client.

kube-scheduler POSTs JSON to ``<urlPrefix>/<verb>``. The shapes are Go structs without json
tags (k8s.io/kube-scheduler/extender/v1), so the field names are Go's:

- in: ``{"Pod": <v1.Pod>, "Nodes": <v1.NodeList>|null, "NodeNames": [str]|null}``; with
  ``nodeCacheCapable: true`` only ``NodeNames`` is sent;
- ``prioritize`` out: ``[{"Host": str, "Score": 0..10}]`` (MaxExtenderPriority is 10);
- ``filter`` out: ``{"Nodes": …|null, "NodeNames": […]|null, "FailedNodes": {node: reason},
  "FailedAndUnresolvableNodes": {}, "Error": ""}``.

``prioritize`` is always on. ``filter`` only with ``--filter``: a filter that times out or
errs fails the pod's scheduling, while a prioritize that does is ignored (``ignorable``).
The filter fails only nodes whose fresh data shows the request cannot fit; a node without
data passes. Stale data gives every node score 0 and one log line, never an error.

``POST /recommend`` answers custom schedulers: ``{"request": {...}}`` (fields of
:class:`~cuagent.scheduling.request.Request`) or ``{"pod": <v1.Pod>}``, optional
``"nodes": [...]`` and ``"limit"``; it returns ranked nodes, GPUs and partitions with the
measures behind each score. ``GET /healthz`` (serving) and ``GET /readyz`` (joined every
feed endpoint) are for probes.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Callable, Optional

import zmq

from ..duration import stop_after
from ..options import OneLineParser
from ..polling import poll_timeout_ms
from ..feed.freshness import STALE_AFTER_S
from .. import __version__, stop_signals
from ..http_bounds import HANDLER_TIMEOUT, BoundedServer
from .request import Request, RequestError, pod_request
from .scorer import Ranking, Scorer, Weights

log = logging.getLogger("cuagent.extender")

MAX_PRIORITY = 10  # kube-scheduler's MaxExtenderPriority
# A body's size. kube-scheduler sends node names (nodeCacheCapable, as deploy/ configures it):
# 5,000 nodes are ~100 KB. Parsing JSON takes ~27 times its size, so a 20 MB body got the
# extender OOM-killed under its 512Mi limit; and json.loads holds the GIL, so while it parses
# every other request waits. So at most MAX_CONNECTIONS bodies are held (128 MiB) and
# PARSE_BUDGET_BYTES of them parsed at once (32 bodies of 500 KB parsed together took 539 MiB).
MAX_BODY_BYTES = 4 * 1024 * 1024  # ~500 whole v1.Nodes: beyond, kube-scheduler must send names
PARSE_BUDGET_BYTES = 8 * 1024 * 1024  # bodies parsed at once, in all (~220 MB of Python objects)


class _ParseBudget:
    """Bytes of request bodies being parsed and answered at once: a body waits while the
    others would take the budget past its size (one alone always goes)."""

    def __init__(self, budget: int) -> None:
        self.budget, self.in_use = budget, 0
        self.changed = threading.Condition()

    def take(self, n: int) -> None:
        with self.changed:
            self.changed.wait_for(lambda: self.in_use == 0 or self.in_use + n <= self.budget)
            self.in_use += n

    def give(self, n: int) -> None:
        with self.changed:
            self.in_use -= n
            self.changed.notify_all()


_PARSING = _ParseBudget(PARSE_BUDGET_BYTES)
STALE_LOG_EVERY_S = 60.0


class BadRequest(ValueError):
    """Answered with HTTP 400 and the reason."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: Python's json takes them, Go's never


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: no float64 holds it, and Go's encoder never writes it
        raise ValueError(f"{text[:64]} is out of a float64's range")
    return value


def parse_json(body: bytes) -> Any:
    """The body as JSON, strictly (no NaN or Infinity, which would also come back in a /filter
    answer that no Go client could read), or BadRequest saying why."""
    try:
        return json.loads(body, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"body is not JSON: {e}") from None
    except RecursionError:
        raise BadRequest("body is not JSON cuagent reads: nested too deep") from None


def parse_extender_args(body: bytes) -> tuple[dict[str, Any], list[str], Optional[dict[str, Any]]]:
    """(pod, node names, NodeList or None) from an ExtenderArgs body."""
    m = parse_json(body)
    if not isinstance(m, dict):
        raise BadRequest(f"ExtenderArgs must be a JSON object, got {type(m).__name__}")
    pod = m.get("Pod")
    if not isinstance(pod, dict):
        raise BadRequest("ExtenderArgs.Pod: missing or not an object")
    names, nodes = m.get("NodeNames"), m.get("Nodes")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise BadRequest("ExtenderArgs.NodeNames: expected a list of strings or null")
        return pod, names, None
    if nodes is None:
        raise BadRequest("ExtenderArgs: neither NodeNames nor Nodes given")
    items = nodes.get("items") if isinstance(nodes, dict) else None
    if items is None and isinstance(nodes, dict):
        items = []  # an empty NodeList marshals its nil items as null
    if not isinstance(items, list):
        raise BadRequest("ExtenderArgs.Nodes.items: expected a list")
    out = []
    for i, item in enumerate(items):
        meta = item.get("metadata") if isinstance(item, dict) else None
        name = meta.get("name") if isinstance(meta, dict) else None
        if not isinstance(name, str):
            raise BadRequest(f"ExtenderArgs.Nodes.items[{i}].metadata.name: missing")
        out.append(name)
    return pod, out, nodes


class ExtenderService:
    """The extender's answers, independent of HTTP. Thread-safe through ``lock``, which the
    feed loop holds while it applies updates to the view."""

    def __init__(self, scorer: Scorer, filter_enabled: bool = False, lock: Optional[threading.Lock] = None,
                 ready: Callable[[], bool] = lambda: True, clock: Callable[[], int] = time.time_ns) -> None:
        self.scorer = scorer
        self.filter_enabled = filter_enabled
        self.lock = lock or threading.Lock()
        self.ready = ready
        self.clock = clock
        self._stale_logged = 0.0
        self.counts = {"prioritize": 0, "filter": 0, "recommend": 0, "bad_request": 0, "stale": 0}

    def _rank(self, request: Request, names: Optional[list[str]]) -> Ranking:
        with self.lock:
            ranking = self.scorer.rank(request, self.clock(), names)
        if ranking.stale and (names is None or names):
            self.counts["stale"] += 1
            now = time.monotonic()
            if now - self._stale_logged >= STALE_LOG_EVERY_S:
                self._stale_logged = now
                log.warning("no fresh cuagent data for any of the %s candidate node(s): every score is 0 "
                            "(is the feed reachable? are the nodes' agents named as their Kubernetes nodes?)",
                            "all" if names is None else len(names))
        return ranking

    @staticmethod
    def _request(pod: dict[str, Any]) -> Optional[Request]:
        try:
            return pod_request(pod)
        except RequestError as e:
            raise BadRequest(f"Pod: {e}") from None
        except (TypeError, AttributeError, ValueError, OverflowError) as e:
            # A v1.Pod whose fields are of other types than Kubernetes gives them.
            raise BadRequest(f"Pod: not a v1.Pod cuagent can read ({type(e).__name__}: {e})") from None

    def prioritize(self, body: bytes) -> list[dict[str, Any]]:
        pod, names, _nodes = parse_extender_args(body)
        self.counts["prioritize"] += 1
        request = self._request(pod)
        if request is None:  # no GPU asked for: no opinion
            return [{"Host": n, "Score": 0} for n in names]
        scores = self._rank(request, names).extender_scores(MAX_PRIORITY)
        return [{"Host": n, "Score": scores.get(n, 0)} for n in names]

    def filter(self, body: bytes) -> dict[str, Any]:
        pod, names, nodes = parse_extender_args(body)
        self.counts["filter"] += 1
        request = self._request(pod)
        failed: dict[str, str] = {}
        if request is not None:
            ranking = self._rank(request, names)
            for n in names:
                # Only a node whose fresh data shows no room fails: no data is no evidence.
                if n in ranking.fresh and ranking.score(n) <= 0:
                    failed[n] = (f"cuagent: fewer than {request.count} "
                                 f"{'MIG ' + request.mig_profile + ' partition' if request.mig_profile else 'GPU'}(s) "
                                 "with room for the request")
        passed = [n for n in names if n not in failed]
        out: dict[str, Any] = {"Nodes": None, "NodeNames": None, "FailedNodes": failed,
                               "FailedAndUnresolvableNodes": {}, "Error": ""}
        if nodes is None:
            out["NodeNames"] = passed
        else:
            keep = set(passed)
            out["Nodes"] = dict(nodes, items=[i for i in nodes.get("items") or [] if i["metadata"]["name"] in keep])
        return out

    def recommend(self, body: bytes) -> dict[str, Any]:
        m = parse_json(body)
        if not isinstance(m, dict):
            raise BadRequest("expected a JSON object with 'request' or 'pod'")
        unknown = sorted(set(m) - {"request", "pod", "nodes", "limit"})
        if unknown:
            raise BadRequest(f"unknown field(s) {unknown}; known: limit, nodes, pod, request")
        if ("request" in m) == ("pod" in m):
            raise BadRequest("give exactly one of 'request' (cuagent fields) or 'pod' (a v1.Pod)")
        if "request" in m:
            try:
                request: Optional[Request] = Request.from_json(m["request"])
            except (RequestError, TypeError, ValueError, OverflowError) as e:
                raise BadRequest(f"request: {e}") from None
        else:
            request = self._request(m["pod"])
            if request is None:
                raise BadRequest("pod: asks for no GPU resource")
        assert request is not None
        names = m.get("nodes")
        if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
            raise BadRequest("nodes: expected a list of node names")
        limit = m.get("limit", 20)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise BadRequest(f"limit: expected an integer >= 1, got {limit!r}")
        self.counts["recommend"] += 1
        with self.lock:
            ranking = self._rank_unlocked(request, names)
            devices = ranking.devices(limit=limit)
            partitions = ranking.partitions(limit=limit)
        return {
            "request": request.to_json(),
            "stale": ranking.stale,
            "nodes": [{"node": n.node, "score": round(n.score, 6), "devices": list(n.devices)}
                      for n in ranking.nodes[:limit]],
            "devices": [{**d._asdict(), "idle_groups": None if d.idle_groups is None else list(d.idle_groups),
                         "score": round(d.score, 6)}
                        for d in devices],
            "partitions": [{**p._asdict(), "score": round(p.score, 6)} for p in partitions],
        }

    def _rank_unlocked(self, request: Request, names: Optional[list[str]]) -> Ranking:
        return self.scorer.rank(request, self.clock(), names)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as kube-scheduler's Go client uses it
    timeout = HANDLER_TIMEOUT  # a request's bytes must keep coming (between requests: KEEPALIVE_IDLE_S)
    # Headers and body go out as two writes: without TCP_NODELAY, Nagle holds the body until
    # the client's delayed ACK (40 ms on Linux) — ten times the whole answer's budget.
    disable_nagle_algorithm = True
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 — the base class's name
        log.debug("%s %s", self.address_string(), format % args)

    def handle(self) -> None:
        """BaseHTTPRequestHandler's loop, with the wait for each next request the server's
        (longer than Go's idle keep-alive: the client closes an idle connection first)."""
        self.close_connection = True
        self.handle_one_request()
        while not self.close_connection and self.server.next_request_begins(self.connection, self.rfile):
            self.handle_one_request()

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, reason: str) -> None:
        self.server.service.counts["bad_request"] += status == 400
        log.info("%s %s -> %d: %s", self.command, self.path, status, reason)
        self._send(status, {"error": reason})

    def do_GET(self) -> None:  # noqa: N802 — http.server's naming
        service = self.server.service
        if self.path == "/healthz":
            self._send(200, {"ok": True, "counts": service.counts})
        elif self.path == "/readyz":
            ready = service.ready()
            self._send(200 if ready else 503, {"ready": ready})
        else:
            self._error(404, f"no such endpoint {self.path!r} (GET: /healthz, /readyz)")

    def do_POST(self) -> None:  # noqa: N802
        service = self.server.service
        length_s = self.headers.get("Content-Length")
        if length_s is None or not (length_s.isascii() and length_s.isdigit()):
            self.close_connection = True
            self._error(411, "a Content-Length header is required")
            return
        length = int(length_s)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._error(413, f"body of {length} bytes exceeds {MAX_BODY_BYTES}")
            return
        body = self.rfile.read(length)  # (a slow sender holds only its own thread meanwhile)
        _PARSING.take(len(body))  # (memory: a parse takes ~27 times the body; and the GIL)
        try:
            self._route(service, body)
        finally:
            _PARSING.give(len(body))

    def _route(self, service: "ExtenderService", body: bytes) -> None:
        routes: dict[str, Callable[[bytes], Any]] = {"/prioritize": service.prioritize, "/recommend": service.recommend}
        if service.filter_enabled:
            routes["/filter"] = service.filter
        handler = routes.get(self.path)
        if handler is None:
            hint = " (filter is off: start with --filter)" if self.path == "/filter" else ""
            self._error(404, f"no such endpoint {self.path!r}{hint}")
            return
        try:
            result = handler(body)
        except BadRequest as e:
            self._error(400, str(e))
            return
        except Exception as e:  # noqa: BLE001 — one bad request must never stop the service
            log.exception("%s failed", self.path)
            self._error(500, f"internal error: {e}")
            return
        self._send(200, result)


class _Server(BoundedServer, HTTPServer):
    """At most MAX_CONNECTIONS at once, each on its own thread (http_bounds)."""

    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], service: ExtenderService) -> None:
        self.service = service
        super().__init__(address, _Handler)


class Extender:
    """A :class:`~cuagent.client.Client` and an HTTP server around one :class:`ExtenderService`.

    :meth:`start` serves HTTP from background threads; :meth:`run` follows the feed in the
    calling thread until :meth:`stop`."""

    def __init__(self, client: Any, listen: tuple[str, int] = ("0.0.0.0", 8888), filter_enabled: bool = False,
                 horizon_s: float = 10.0, max_age_s: float = STALE_AFTER_S, weights: Weights = Weights()) -> None:
        self.client = client
        self.scorer = Scorer(client.view, horizon_s=horizon_s, max_age_s=max_age_s, weights=weights)
        client.on_update(self.scorer.observe)
        self.lock = threading.Lock()
        self.service = ExtenderService(self.scorer, filter_enabled, self.lock, ready=lambda: client.ready)
        self.httpd = _Server(listen, self.service)
        self._stop = threading.Event()
        self._http_thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        if isinstance(host, bytes):
            host = host.decode()
        return f"http://{host}:{port}"

    def start(self) -> "Extender":
        self._http_thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                             name="cuagent-extender-http", daemon=True)
        self._http_thread.start()
        log.info("extender listening on %s (filter %s), following %s; cuagent %s", self.url,
                 "on" if self.service.filter_enabled else "off", ", ".join(e.sync for e in self.client.endpoints),
                 __version__)
        return self

    def run(self) -> None:
        client = self.client
        while not self._stop.is_set():
            poller = zmq.Poller()
            for sock in client.poll_sockets():
                poller.register(sock, zmq.POLLIN)
            try:
                poller.poll(poll_timeout_ms(min(0.1, client.next_deadline())))
            except zmq.ZMQError as e:
                if e.errno != errno.EINTR:
                    raise
            with self.lock:
                client.process()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.client.close()


# --------------------------------------------------------------------------- command line


def add_parser(sub: argparse._SubParsersAction[OneLineParser], curve_client_flags: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    """The ``cuagent extender`` subcommand (cli.py calls this with its subparsers)."""
    p = sub.add_parser("extender", help="kube-scheduler extender (prioritize, optional filter) fed by the feed",
                       description="Serve the kube-scheduler extender API (POST /prioritize, /filter with "
                       "--filter, /recommend for custom schedulers) from a cuagent feed (agents or a relay). "
                       "Node names are the agents' --node names, which default to the host (= Kubernetes node) name.")
    from ..config import DURATION_S
    from ..options import Option, listen_address, peer

    Option("connect", str, None, "an agent or relay to follow (repeat); tcp sync defaults to feed port + 1",
           metavar="FEED[,SYNC]", check=peer).add_to(p, action="append", required=True)
    p.add_argument("--listen", default="0.0.0.0:8888", type=listen_address, metavar="HOST:PORT",
                   help="HTTP address (default 0.0.0.0:8888)")
    p.add_argument("--filter", action="store_true",
                   help="also answer /filter (a filter timeout fails scheduling; prioritize timeouts are ignored)")
    # Bounds (cli.py's rule: a value outside them is one error line, exit 2).
    Option("horizon_s", float, 10.0, "time constant of the idle horizon", min=0.1, max=86_400.0,
           unit="s").add_to(p, default=10.0)
    Option("max_age_s", float, STALE_AFTER_S, "a device whose latest window is older (or older than three of its "
           "windows, where that is longer) scores 0", min=0.1, max=3600.0,
           unit="s").add_to(p, default=STALE_AFTER_S)
    DURATION_S.add_to(p)
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    curve_client_flags(p)
    return p


def run_cli(args: argparse.Namespace, client_keys: Any) -> int:
    """``cuagent extender``: returns the exit status; raises ValueError for bad flags."""
    from ..client import Client

    listen = args.listen
    for name in ("horizon_s", "max_age_s"):
        v = getattr(args, name)
        if not v > 0:
            raise ValueError(f"--{name.replace('_', '-')} must be > 0, got {v}")
    client = Client(args.connect, curve=client_keys)
    try:
        ext = Extender(client, listen, args.filter, args.horizon_s, args.max_age_s)
    except OSError as e:
        client.close()
        raise ValueError(f"--listen {listen[0]}:{listen[1]}: {e.strerror or e}") from None
    ext.start()
    stop_after(args.duration, ext.stop)
    stop_signals.install(ext.stop)
    try:
        ext.run()
    finally:
        ext.close()
        log.info("extender stopped; answered since start: %s",
                 ", ".join(f"{k} {v}" for k, v in ext.service.counts.items()))
    return 0
