"""The ``cuagent`` command: run (the node agent), relay, exporter, top, demo, watch, snapshot,
keys, profiling, extender, simulate, fleet.

Every number and endpoint a subcommand takes is declared as an :class:`~cuagent.options.Option`
with its range; a value outside it ends the command with exit status 2 and one line naming
the value and the range."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from . import __version__, ipv6, slow_path, stop_signals, wire
from . import config as config_mod
from .curve import HANDSHAKE_EVENTS, ClientKeys, ServerKeys, monitor_events, no_reply_hint, watch
from .duration import stop_after
from .exporters import prometheus_cli
from .options import OneLineParser, Option, OptionError, bind_endpoint, peer
from .scheduling import agent_options as k8s_options

if TYPE_CHECKING:
    from .engine import Engine  # make_engine imports it when it runs (engine loads _core)

log = logging.getLogger("cuagent")

DEFAULT_ENDPOINT = "tcp://127.0.0.1:7710"
# `cuagent watch` says on stderr that nothing came, once, after this long without a message
# (a wrong port or a stopped agent is otherwise a silent terminal).
WATCH_QUIET_NOTICE_S = 3.0

# The settings of the other subcommands (cuagent run's are config.options()).
DURATION = config_mod.DURATION_S
SNDHWM = next(o for o in config_mod.COMMON_OPTIONS if o.name == "sndhwm")
PEER = Option("endpoint", str, metavar="FEED[,SYNC]", check=peer)
PEER_HELP = (f"an agent or relay: tcp://HOST:PORT (sync at PORT + 1) or FEED,SYNC "
             f"(default {DEFAULT_ENDPOINT})")
RELAY_UPSTREAM = Option("connect", str, None, "an upstream agent or relay (repeat); tcp sync defaults to "
                        "feed port + 1", metavar="FEED[,SYNC]", check=peer)
SUMMARY_INTERVAL = Option("summary_interval_s", float, 0.0, "forward a node's summary (cua1/sum/) only when its "
                          "window ends at least this long after the last one forwarded; 0 forwards all",
                          min=0.0, max=86400.0, unit="s", metavar="S")
FORWARDER = Option("forwarder", str, "native", "how to forward: native (C++, on pyzmq's libzmq; falls back to "
                   "python, with a warning, where that is not usable) or python", choices=("native", "python"))
RELAY_KINDS = Option("kinds", list, None, "carry only these kinds (topo,state,hb,event,sum; topo and hb always): "
                     "subscribe upstream to, join, keep and serve only them. A summaries tier: --kinds "
                     "topo,hb,sum,event, which then never takes in a state message (default: all)",
                     metavar="KIND[,KIND...]")
BIND = Option("endpoint", str, metavar="ENDPOINT", check=bind_endpoint)
COUNT = Option("count", int, None, "stop after this many messages", min=1, max=10**9)
TOP_DEVICE = Option("device", list, None, "draw these devices in full, the others compact; with --plain (or "
                    "no terminal), print only these (comma-separated or repeated): a device id or its first 4+ "
                    "characters, its index, NODE/ID or NODE/INDEX",
                    metavar="ID")
TIMEOUT = Option("timeout", float, 3.0, "seconds to wait for the reply", min=0.0, min_open=True,
                 max=3600.0, unit="s")


def _prefix(text: str) -> str:
    if len(text) > 256:  # what an agent accepts in a snapshot request (sockets.parse_snapshot_prefix)
        raise OptionError(f"{len(text)} characters: expected at most 256")
    return text


PREFIX = Option("prefix", str, None, metavar="PREFIX", check=_prefix)


class CliError(Exception):
    pass


# --------------------------------------------------------------------------- helpers


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def to_jsonable(obj: Any) -> Any:
    """Decoded wire content as JSON: arrays as lists, dataclasses/namedtuples as maps."""
    if isinstance(obj, wire.Summary):  # records as maps, absent values as null
        return {"layout": obj.layout, "devices": obj.rows()}
    if isinstance(obj, np.ndarray):
        return [round(float(x), 6) for x in obj] if obj.dtype.kind == "f" else obj.tolist()
    if isinstance(obj, bytes):
        return obj.hex()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple) and hasattr(obj, "_asdict"):
        return {k: to_jsonable(v) for k, v in obj._asdict().items()}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def make_engine(cfg: config_mod.RunConfig) -> Engine:
    """The engine the config asks for. ``auto`` takes the first real backend that works (in
    the registry's order) and never falls back to the mock: a GPU server must not publish
    simulated data."""
    from .backends import registry
    from .engine import Engine

    common: dict[str, Any] = dict(rate_hz=cfg.rate_hz, window_ms=cfg.publish_interval_ms, seed=cfg.seed)
    chosen = registry.auto_backends() if cfg.driver == "auto" else (registry.get(cfg.driver),)
    failures = []
    for backend in chosen:
        name = backend.name
        try:
            devices, options = cfg.driver_args(name)
            engine = Engine(driver=name, devices=devices, **common, **options)
        except Exception as e:  # noqa: BLE001 — each backend's reason goes into the message
            reason = backend.flag_text(str(e))  # the drivers' messages often start with their name already
            failures.append(reason if reason.startswith(f"{name}:") else f"{name}: {reason}")
            continue
        if not engine.topology():
            failures.append(f"{name}: no devices found")
            continue
        return engine
    if cfg.driver != "auto" and not chosen[0].auto:  # a simulation or plugin asked for by name
        raise CliError(failures[0])
    hint = " (use --driver mock to run a simulated GPU)" if cfg.driver == "auto" else ""
    raise CliError("no GPU backend could start: " + "; ".join(failures or ["none is registered"]) + hint)


# --------------------------------------------------------------------------- commands


def cmd_run(args: argparse.Namespace) -> int:
    from .node.agent import Agent, AgentConfig

    file_values = config_mod.load_file(args.config) if args.config else {}
    flags = {name: getattr(args, name) for name in config_mod.options()}
    cfg = config_mod.build(file_values, flags)
    _setup_logging(cfg.log_level)
    node = cfg.node_name()
    curve = _server_keys(cfg.curve_secret_key, cfg.curve_allow)
    agent_cfg = AgentConfig(
        node=node, feed=cfg.feed, sync=cfg.sync, publish_interval_ms=cfg.publish_interval_ms,
        topo_interval_s=cfg.topo_interval_s, sndhwm=cfg.sndhwm,
        curve=curve, summary_every=cfg.summary_every,
    )
    # A check opens the backend but never the profiling control socket: that is the running
    # agent's (run_check says whether it is free).
    engine = make_engine(dataclasses.replace(cfg, backend_settings={**cfg.backend_settings, "profiling_socket": None})
                         if args.check else cfg)
    backend = engine.driver_name
    if args.check:
        from . import run_check

        try:
            print("\n".join(run_check.run(cfg, backend, list(engine.topology()), curve, args.config)))
        except OSError as e:
            raise CliError(str(e)) from None
        finally:
            engine.stop()
        return 0
    # A rebuilt engine (after a partition layout change) uses the backend that was chosen at
    # start, with the same options, never another one `auto` might now find.
    rebuild_cfg = dataclasses.replace(cfg, driver=backend)
    driver_options = cfg.driver_args(backend)[1]
    extras = slow_path.for_backend(backend, driver_options, cfg.process_interval_s, cfg.topology_poll_s)
    pods, on_topology = k8s_options.build(cfg, backend, driver_options)
    try:
        agent = Agent(engine, agent_cfg, slow_path=extras, rebuild_engine=lambda: make_engine(rebuild_cfg),
                      pods=pods, on_topology=on_topology)
    except OSError as e:
        extras.close()
        if pods is not None:
            pods.close()
        raise CliError(str(e)) from None
    try:
        metrics = prometheus_cli.start_agent_metrics(cfg, agent)
    except ValueError:
        agent.close()
        raise
    stop_signals.install(agent.stop)
    engine.start()
    log.info("cuagent %s run: settings from %s", __version__, args.config or "defaults and flags (no --config)")
    try:
        stop_after(cfg.duration, agent.stop)
        agent.run()
    finally:
        # Sockets first: clients and scrapers see the agent go at once, whatever the engine does.
        agent.close()
        if metrics is not None:
            metrics.close()
        from . import profiling

        profiling.stop_serving()  # its file goes with it
        _stop_engine(agent.engine)  # the engine it runs now: a layout change may have replaced it
    return 0


ENGINE_STOP_WAIT_S = 3.0  # how long a stop waits for the sampler before the process ends without it


def _stop_engine(engine: Any) -> None:
    """Stops the engine's threads. A read stuck in the vendor library (a GPU off the bus can
    hold NVML for tens of seconds) holds the sampler, and a stop waiting for it would outlast
    systemd's and Kubernetes' stop timeouts, to be SIGKILLed with nothing said: after
    ENGINE_STOP_WAIT_S the process ends without it, saying so."""
    done = threading.Event()

    def stop() -> None:
        engine.stop()  # (releases the GIL while it joins the sampler)
        done.set()

    threading.Thread(target=stop, name="cuagent-engine-stop", daemon=True).start()
    if done.wait(ENGINE_STOP_WAIT_S):
        return
    log.warning("the sampler is still in a backend read after %g s (a GPU not answering?): exiting "
                "without waiting for it", ENGINE_STOP_WAIT_S)
    logging.shutdown()
    sys.stdout.flush()
    os._exit(0)  # a C++ thread still in the read would hold up the interpreter's exit


def cmd_relay(args: argparse.Namespace) -> int:
    from .node.relay import Relay, RelayConfig

    _setup_logging(args.log_level)
    import socket

    name = args.name or wire.sanitize_node(socket.gethostname() + "-relay")
    server = _server_keys(args.curve_secret_key, args.curve_allow)
    try:
        relay = Relay(RelayConfig(args.connect, name, args.feed, args.sync, args.sndhwm,
                                  curve=server, upstream_curve=_client_keys(args), stale_after_s=args.stale_after_s,
                                  forget_after_s=args.forget_after_s,
                                  summary_interval_s=args.summary_interval_s, forwarder=args.forwarder,
                                  kinds=args.kinds or wire.KINDS))
    except (OSError, ValueError) as e:
        raise CliError(str(e)) from None
    stop_signals.install(relay.stop)
    log.info("cuagent %s relay", __version__)
    try:
        stop_after(args.duration, relay.stop)
        relay.run()
    finally:
        relay.close()
    return 1 if relay.failure else 0  # the failure was logged where it happened


def cmd_exporter(args: argparse.Namespace) -> int:
    _setup_logging(args.log_level)
    return prometheus_cli.run_exporter(args, _client_keys(args), stop_signals.install)


def cmd_top(args: argparse.Namespace) -> int:
    from .exporters.top import run_top

    _setup_logging(args.log_level)
    from .client import Client

    endpoints = args.endpoints or [DEFAULT_ENDPOINT]
    client = Client(endpoints, curve=_client_keys(args))
    try:
        return run_top(endpoints, duration=args.duration, plain=args.plain or None, client=client,
                       selectors=args.device or ())
    finally:
        client.close()


def cmd_demo(args: argparse.Namespace) -> int:
    """A mock agent on private ipc endpoints, plus top, in one process."""
    from .node.agent import Agent, AgentConfig
    from .exporters.top import run_top

    _setup_logging(args.log_level)
    with tempfile.TemporaryDirectory(prefix="cuagent-demo-") as tmp:
        cfg = config_mod.build({}, {
            "driver": "mock", "mock_devices": args.mock_devices or DEMO_DEVICES, "mock_faults": args.mock_faults,
            "seed": args.seed, "node": "demo",
            "feed": f"ipc://{Path(tmp) / 'feed'}", "sync": f"ipc://{Path(tmp) / 'sync'}",
            "rate_hz": args.rate_hz, "publish_interval_ms": args.publish_interval_ms,
        })
        engine = make_engine(cfg)
        agent = Agent(engine, AgentConfig(node="demo", feed=cfg.feed, sync=cfg.sync,
                                          publish_interval_ms=cfg.publish_interval_ms))
        engine.start()
        thread = threading.Thread(target=agent.run, name="cuagent-demo-agent", daemon=True)
        thread.start()
        try:
            run_top([f"{cfg.feed},{cfg.sync}"], duration=args.duration, plain=args.plain or None,
                    selectors=args.device or ())
        finally:
            agent.stop()
            thread.join(timeout=5)
            engine.stop()
            agent.close()
    return 0


DEMO_DEVICES = ["h100-sxm:fragmented", "mi300x:training"]


def cmd_watch(args: argparse.Namespace) -> int:
    import zmq

    from .client import parse_endpoint

    ep = parse_endpoint(args.endpoint)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    keys = _client_keys(args)
    if keys is not None:
        keys.apply(sub)
    default = [wire.kind_prefix("sum")] if args.summary else [wire.PREFIX]
    for prefix in args.prefix or default:
        sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
    ipv6.enable_for(sub, ep.feed)
    sub.connect(ep.feed)
    started = time.monotonic()
    end = None if args.duration is None else started + args.duration
    printed = 0
    # stdout carries only JSON lines; that nothing is coming goes to stderr, once while
    # waiting and once at the end, naming where it listened.
    source = ep.feed + (f" under {', '.join(args.prefix)}" if args.prefix else "")
    noticed = False
    try:
        # SIGTERM and SIGHUP end it as Ctrl-C does: its closing line is still written.
        with stop_signals.caught() as stopped:
            while not stopped() and (end is None or time.monotonic() < end) \
                    and (args.count is None or printed < args.count):
                if not printed and not noticed and time.monotonic() - started >= WATCH_QUIET_NOTICE_S:
                    print(f"cuagent watch: no message from {source} yet (is an agent or relay running there?)",
                          file=sys.stderr, flush=True)
                    noticed = True
                timeout = 250 if end is None else max(0, min(250, int((end - time.monotonic()) * 1000)))
                if not sub.poll(timeout):
                    continue
                frames = sub.recv_multipart()
                try:
                    topic, topic_str, header, body = wire.decode_envelope(frames)
                    decoded = wire.decode_body(topic.kind, body)
                    line = {"topic": topic_str, "header": header.to_map(), "body": to_jsonable(decoded)}
                except wire.ProtocolError as e:
                    line = {"error": str(e), "topic": frames[0].decode("utf-8", "replace") if frames else None}
                print(json.dumps(line), flush=True)
                printed += 1
    except KeyboardInterrupt:
        pass
    finally:
        sub.close(0)
    if not printed:
        print(f"cuagent watch: no message from {source} in {time.monotonic() - started:.0f} s "
              "(is an agent or relay running there?)", file=sys.stderr, flush=True)
    return 0


def sync_request(sync_endpoint: str, request: bytes, timeout: float, curve: Optional[ClientKeys] = None) -> bytes:
    import zmq

    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if curve is not None:
        curve.apply(sock)
    ipv6.enable_for(sock, sync_endpoint)
    # If no reply comes, its handshake events say why: a server refusing a CURVE key says
    # nothing else to the client.
    monitor = watch(sock, HANDSHAKE_EVENTS)
    sock.connect(sync_endpoint)
    try:
        sock.send(request)
        if not sock.poll(int(timeout * 1000)):
            why = no_reply_hint(monitor_events(monitor), curve is not None)
            raise CliError(f"no reply from {sync_endpoint} within {timeout:g} s ({why})")
        return sock.recv()
    finally:
        sock.disable_monitor()
        monitor.close(0)
        sock.close(0)


def cmd_snapshot(args: argparse.Namespace) -> int:
    from .client import parse_endpoint

    ep = parse_endpoint(args.endpoint)
    keys = _client_keys(args)
    if args.ping:
        print(json.dumps(to_jsonable(wire.decode_ping_reply(sync_request(ep.sync, wire.ping_request(), args.timeout, keys)))))
        return 0
    if args.summary:
        print(json.dumps(_summary_snapshot(ep.sync, args.timeout, keys), indent=None if args.compact else 1))
        return 0
    snap = wire.decode_snapshot_reply(
        sync_request(ep.sync, wire.snapshot_request(args.prefix), args.timeout, keys))
    devices: dict[tuple[str, str], wire.Device] = {}
    messages = []
    for frames in sorted(snap.messages, key=lambda f: not f[0].startswith(wire.kind_prefix("topo").encode())):
        topic, topic_str, header, body = wire.decode_envelope(frames)
        if topic.kind == "topo":
            decoded = wire.decode_topo_body(body)
            devices.update({(topic.node, d.id): d for d in decoded.devices})
        else:
            decoded = wire.decode_body(topic.kind, body, devices.get((topic.node, topic.device or "")))
        messages.append({"topic": topic_str, "header": header.to_map(), "body": to_jsonable(decoded)})
    out = {"epoch": snap.epoch, "seqs": snap.seqs, "messages": messages, **to_jsonable(snap.extra)}
    print(json.dumps(out, indent=None if args.compact else 1))
    return 0


def _summary_snapshot(sync: str, timeout: float, keys: Optional[ClientKeys]) -> dict[str, Any]:
    """Every node's latest summary (§3.5), each record named by its device id from the topo of
    the same gen (null where that topo is not held)."""
    replies = [wire.decode_snapshot_reply(sync_request(sync, wire.snapshot_request(wire.kind_prefix(kind)), timeout, keys))
               for kind in ("topo", "sum")]
    ids: dict[tuple[str, int], list[str]] = {}
    nodes: dict[str, Any] = {}
    for kind, snap in zip(("topo", "sum"), replies):
        for frames in snap.messages:
            topic, _, header, body = wire.decode_envelope(frames)
            if kind == "topo":
                ids[(topic.node, header.gen)] = [d.id for d in wire.decode_topo_body(body).devices]
                continue
            summary = wire.decode_summary_body(body)
            names = ids.get((topic.node, header.gen))
            if names is not None and len(names) != len(summary):
                names = None
            rows = [{"id": names[i] if names else None, **row} for i, row in enumerate(summary.rows())]
            nodes[topic.node] = {"ts": header.ts, "seq": header.seq, "gen": header.gen, "devices": rows}
    return {"nodes": dict(sorted(nodes.items())), **to_jsonable(replies[1].extra)}


def cmd_keys(args: argparse.Namespace) -> int:
    from .curve import create_keys

    for name in args.names:
        public, secret = create_keys(args.dir, name)
        print(f"{public} (public: copy it to the peers that admit or trust {name})")
        print(f"{secret} (secret, mode 0600: stays with {name})")
    return 0


def cmd_extender(args: argparse.Namespace) -> int:
    from .scheduling import extender

    _setup_logging(args.log_level)
    return extender.run_cli(args, _client_keys(args))


# --------------------------------------------------------------------------- parser


def _server_keys(secret_key_file: Optional[str], allow_dir: Optional[str]) -> Optional[ServerKeys]:
    """CURVE server keys when either option was given (both are needed). Tested against None,
    not truthiness: an empty path (an unset variable in a unit file) must fail, not turn
    encryption off."""
    if secret_key_file is None and allow_dir is None:
        return None
    if secret_key_file is None or allow_dir is None:
        raise CliError("CURVE needs both --curve-secret-key and --curve-allow")
    return ServerKeys.load(secret_key_file, allow_dir)


def _client_keys(args: argparse.Namespace) -> Optional[ClientKeys]:
    return ClientKeys.from_args(getattr(args, "curve_client_key", None), getattr(args, "curve_server_key", None))


def _curve_client_flags(p: argparse.ArgumentParser, upstream: bool = False) -> None:
    whose = "upstream agents/relays" if upstream else "the agent or relay"
    g = p.add_argument_group("CURVE client (PROTOCOL.md §6)")
    g.add_argument("--curve-client-key", metavar="FILE",
                   help=f"this client's zmq.auth secret key file (.key_secret), admitted by {whose}")
    g.add_argument("--curve-server-key", metavar="FILE", help=f"public key file (.key) of {whose}")


def _curve_server_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("CURVE server (PROTOCOL.md §6)")
    g.add_argument("--curve-secret-key", metavar="FILE",
                   help="this server's zmq.auth secret key file (.key_secret); feed and sync become CURVE servers")
    g.add_argument("--curve-allow", metavar="DIR",
                   help="directory of admitted clients' public keys (*.key, read at start); others receive nothing")


def build_parser() -> argparse.ArgumentParser:
    from .backends import mock as mock_backend
    from .backends import registry

    parser = OneLineParser(
        prog="cuagent",
        description="Node-level GPU telemetry: per-SM/CU and per-partition state over ZeroMQ "
        "(wire protocol: PROTOCOL.md). Start with `cuagent demo`.",
    )
    parser.add_argument("--version", action="version", version=f"cuagent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the node agent", description=(
        "Sample the GPUs and publish topo/state/hb/event/sum on the feed (PUB) and answer snapshots "
        "on sync (ROUTER). Settings: defaults < --config file < flags."))
    run.add_argument("--config", metavar="FILE", help="TOML file whose keys are the flags below with underscores "
                     "(every one but --config and --check; deploy/cuagent.toml lists them); a flag given here wins")
    run.add_argument("--check", action="store_true",
                     help="check the settings, open the backend and bind every endpoint as a run would, print "
                     "what each device will report, and exit (0, or 2 with the error a run would end with)")
    settings = config_mod.options()
    slow = ("process_interval_s", "topology_poll_s")
    kubernetes = ("pod_resources_socket", "nfd_features_dir")
    curve = ("curve_secret_key", "curve_allow")
    metrics = tuple(o.name for o in config_mod.METRICS_OPTIONS)  # prometheus_cli adds them
    for option in config_mod.COMMON_OPTIONS:
        if option.name not in slow + kubernetes + curve + metrics:
            settings[option.name].add_to(run)
    added: set[str] = set()
    for backend in registry.all_backends().values():
        own = [o for o in backend.options if o.name not in added]  # a shared setting: under its first backend
        if own:
            group = run.add_argument_group(f"--driver {backend.name}", backend.help or None)
            for option in own:
                option.add_to(group)
                added.add(option.name)
    for title, names in (("slow path (backends that list processes or partitions)", slow),
                         ("Kubernetes", kubernetes),
                         ("CURVE server (PROTOCOL.md §6)", curve)):
        group = run.add_argument_group(title)
        for name in names:
            settings[name].add_to(group)
    prometheus_cli.add_metrics_flags(run)
    run.set_defaults(func=cmd_run)

    relay = sub.add_parser("relay", help="forward many agents' feeds, answer snapshots for all",
                           description="XSUB->XPUB forwarding (frames untouched, headers read) plus a sync "
                           "socket answering snapshots from the latest frames it forwarded. Relays stack.")
    RELAY_UPSTREAM.add_to(relay, action="append", required=True)
    BIND.add_to(relay, "--feed", default="tcp://*:7720",
                help="PUB endpoint the nodes' messages are forwarded on (default tcp://*:7720)")
    BIND.add_to(relay, "--sync", default="tcp://*:7721",
                help="ROUTER endpoint answering snapshots and pings for every node (default tcp://*:7721)")
    relay.add_argument("--name", help="relay name in ping replies (default: <host>-relay)")
    SNDHWM.add_to(relay, default=SNDHWM.default)
    # Its range is RelayConfig's to check (relay.py): > 0 and < 1e6 s.
    relay.add_argument("--stale-after-s", type=float, default=3.0, metavar="S",
                       help="withhold a node from snapshots, and announce node_stale, after S s without "
                            "its heartbeat [a number > 0 and < 1e6 s] (default 3, as PROTOCOL.md §3.3)")
    relay.add_argument("--forget-after-s", type=float, default=None, metavar="S",
                       help="drop a node from the relay's table, and announce node_gone, after S s without "
                            "hearing anything of it [a number > --stale-after-s and < 1e6 s] (default 300, or "
                            "twice --stale-after-s if that is longer)")
    SUMMARY_INTERVAL.add_to(relay, default=SUMMARY_INTERVAL.default)
    FORWARDER.add_to(relay, default=FORWARDER.default)
    RELAY_KINDS.add_to(relay)
    DURATION.add_to(relay)
    config_mod.LOG_LEVEL.add_to(relay, default="info")
    _curve_server_flags(relay)
    _curve_client_flags(relay, upstream=True)
    relay.set_defaults(func=cmd_relay)

    exporter = prometheus_cli.add_exporter_parser(sub)
    _curve_client_flags(exporter, upstream=True)
    exporter.set_defaults(func=cmd_exporter)

    def viewer(p: argparse.ArgumentParser) -> None:
        DURATION.add_to(p)
        p.add_argument("--plain", action="store_true", help="plain text lines even on a terminal")
        config_mod.LOG_LEVEL.add_to(p, default="warning")

    top = sub.add_parser("top", help="live terminal view of agents or relays",
                         description="One panel per device: a heat map of its units (AMD, mock); on NVIDIA "
                         "the probed GPC layout or the MIG instances, the kHz band of CUPTI (idlest/mean/busiest "
                         "SM per window), processes, counters. When the panels do not fit the terminal's height, "
                         "each device is drawn in two or three lines (compact); --device draws the devices it "
                         "names in full; a last line counts the devices the terminal has no room for.")
    PEER.add_to(top, "endpoints", nargs="*", help="agents or relays, each tcp://HOST:PORT (sync at PORT + 1) "
                "or FEED,SYNC, in one view (default " + DEFAULT_ENDPOINT + ")")
    TOP_DEVICE.add_to(top)
    viewer(top)
    _curve_client_flags(top)
    top.set_defaults(func=cmd_top)

    demo = sub.add_parser("demo", help="a simulated agent plus top, in one command")
    mock_backend.MOCK_DEVICES.add_to(demo, help="simulated devices (default " + ",".join(DEMO_DEVICES) + ")")
    mock_backend.MOCK_FAULTS.add_to(demo)
    config_mod.SEED.add_to(demo, default=1)
    config_mod.RATE_HZ.add_to(demo, default=config_mod.RATE_HZ.default)
    config_mod.PUBLISH_INTERVAL_MS.add_to(demo, default=config_mod.PUBLISH_INTERVAL_MS.default)
    TOP_DEVICE.add_to(demo)
    viewer(demo)
    demo.set_defaults(func=cmd_demo)

    watch = sub.add_parser("watch", help="print decoded feed messages, one JSON per line")
    PEER.add_to(watch, "endpoint", default=DEFAULT_ENDPOINT, nargs="?", help=PEER_HELP)
    PREFIX.add_to(watch, action="append", help="topic prefix (repeat; default cua1/)")
    DURATION.add_to(watch)
    COUNT.add_to(watch)
    watch.add_argument("--summary", action="store_true",
                       help="node summaries only (cua1/sum/, PROTOCOL.md §3.5) unless --prefix says otherwise")
    _curve_client_flags(watch)
    watch.set_defaults(func=cmd_watch)

    snap = sub.add_parser("snapshot", help="one-shot JSON dump of a node or relay (sync socket)")
    PEER.add_to(snap, "endpoint", default=DEFAULT_ENDPOINT, nargs="?", help=PEER_HELP)
    PREFIX.add_to(snap, default=wire.PREFIX)
    snap.add_argument("--ping", action="store_true", help="send ping instead of snapshot")
    snap.add_argument("--summary", action="store_true",
                      help="every node's latest summary (PROTOCOL.md §3.5), records named by device id")
    TIMEOUT.add_to(snap, default=TIMEOUT.default)
    snap.add_argument("--compact", action="store_true", help="one line")
    _curve_client_flags(snap)
    snap.set_defaults(func=cmd_snapshot)

    keys = sub.add_parser("keys", help="make CURVE key pairs (NAME.key public, NAME.key_secret mode 0600)",
                          description="Write a zmq.auth key pair per NAME into DIR (created 0700 if missing). "
                          "Existing keys are never replaced.")
    keys.add_argument("dir", metavar="DIR")
    keys.add_argument("names", nargs="+", metavar="NAME")
    keys.set_defaults(func=cmd_keys)

    # Listed here for `cuagent --help`; main() hands its arguments to profiling.cli, which has
    # its own parser (and --help), before this parser sees them.
    sub.add_parser("profiling", help="release (pause) or retake (resume) a running agent's CUPTI counters, "
                   "e.g. for an ncu or nsys session (cuagent profiling --help)", add_help=False)

    from .scheduling import extender as _extender
    _extender.add_parser(sub, _curve_client_flags).set_defaults(func=cmd_extender)
    from .simulate import cli as _simulate  # `cuagent simulate` (issue 13): its parser sets its own func
    _simulate.add_parser(sub)
    from .simulate import fleet_cli as _fleet  # `cuagent fleet` (issue 14): a synthetic fleet on one feed
    _fleet.add_parser(sub)
    return parser


# Open files a serving command asks for, within the hard limit: the soft default (often 1024)
# is soon met by connections held open at once, and libzmq aborts the process where an ipc://
# listener cannot accept for want of a descriptor (src/ipc_listener.cpp). Servers like nginx
# and Prometheus raise it so too.
OPEN_FILES_WANTED = 65536
SERVING = ("run", "relay", "exporter", "extender", "fleet")


def raise_open_file_limit(wanted: int = OPEN_FILES_WANTED) -> None:
    """The soft RLIMIT_NOFILE up to ``wanted``, as far as the hard limit allows."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):  # a sandbox that forbids it: the soft limit stays
            pass


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["profiling"]:  # release/retake the CUPTI counters (cuagent.profiling)
        from . import profiling
        return profiling.cli(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command in SERVING:
        raise_open_file_limit()
    try:
        return int(args.func(args) or 0)
    except (CliError, config_mod.ConfigError, wire.ProtocolError, ValueError) as e:
        print(f"cuagent {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `cuagent watch | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
