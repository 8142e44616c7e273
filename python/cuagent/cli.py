"""The ``cuagent`` command: run (the node agent), relay, top, demo, watch, snapshot."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from . import config as config_mod
from . import protocol, slow_path
from .curve import ClientKeys, ServerKeys
from .scheduling import agent_options as k8s_options

log = logging.getLogger("cuagent")

DEFAULT_ENDPOINT = "tcp://127.0.0.1:7710"


class CliError(Exception):
    pass


# --------------------------------------------------------------------------- helpers


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _install_stop_signals(stop) -> None:
    """SIGINT/SIGTERM ask the loop to stop; the loop notices within one tick."""
    def handler(signum, _frame):
        log.info("received %s: stopping", signal.Signals(signum).name)
        stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def to_jsonable(obj: Any) -> Any:
    """Decoded wire content as JSON: arrays as lists, dataclasses/namedtuples as maps."""
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


def make_engine(cfg: config_mod.RunConfig) -> Any:
    """The engine the config asks for. ``auto`` takes the first real backend that works and
    never falls back to the mock: a GPU server must not publish simulated data."""
    from .engine import Engine

    common: dict[str, Any] = dict(rate_hz=cfg.rate_hz, window_ms=cfg.publish_interval_ms, seed=cfg.seed)
    if cfg.driver == "mock":
        # Looked up on the package, not cuagent.mock, so that a launcher can substitute it
        # (tests/fakes/mock_fault_agent.py gives the devices faults).
        from . import MockDevice
        devices = [MockDevice(preset, scenario=scenario) for preset, scenario in cfg.mock_devices]
        return Engine(driver="mock", devices=devices, **common)
    names = config_mod.REAL_DRIVERS if cfg.driver == "auto" else (cfg.driver,)
    failures = []
    for name in names:
        try:
            engine = Engine(driver=name, **common, **cfg.driver_options(name))
        except Exception as e:  # noqa: BLE001 — each backend's reason goes into the message
            reason = str(e)  # the drivers' messages already start with their name
            failures.append(reason if reason.startswith(f"{name}:") else f"{name}: {reason}")
            continue
        if not engine.topology():
            failures.append(f"{name}: no devices found")
            continue
        return engine
    hint = " (use --driver mock to run a simulated GPU)" if cfg.driver == "auto" else ""
    raise CliError("no GPU backend could start: " + "; ".join(failures) + hint)


# --------------------------------------------------------------------------- commands


def cmd_run(args: argparse.Namespace) -> int:
    from .agent import Agent, AgentConfig

    file_values = config_mod.load_file(args.config) if args.config else {}
    flags = {
        "driver": args.driver, "mock_devices": args.mock_devices, "seed": args.seed, "node": args.node,
        "feed": args.feed, "sync": args.sync, "rate_hz": args.rate_hz,
        "publish_interval_ms": args.publish_interval_ms, "topo_interval_s": args.topo_interval_s,
        "sndhwm": args.sndhwm, "log_level": args.log_level,
        "nvml_library": args.nvml_library, "rocm_smi_library": args.rocm_smi_library, "kfd_root": args.kfd_root,
        "process_interval_s": args.process_interval_s, "topology_poll_s": args.topology_poll_s,
        "curve_secret_key": args.curve_secret_key, "curve_allow": args.curve_allow,
        **k8s_options.flag_values(args),
    }
    cfg = config_mod.build(file_values, flags)
    _setup_logging(cfg.log_level)
    node = cfg.node_name()
    curve = _server_keys(cfg.curve_secret_key, cfg.curve_allow)
    agent_cfg = AgentConfig(
        node=node, feed=cfg.feed, sync=cfg.sync, publish_interval_ms=cfg.publish_interval_ms,
        topo_interval_s=cfg.topo_interval_s, sndhwm=cfg.sndhwm, align_to_windows=not args.publish_timer,
        curve=curve,
    )
    engine = make_engine(cfg)
    backend = engine.backend
    # A rebuilt engine (after a partition layout change) uses the backend that was chosen at
    # start, with the same options, never another one `auto` might now find.
    rebuild_cfg = dataclasses.replace(cfg, driver=backend)
    extras = slow_path.for_backend(backend, cfg.driver_options(backend), cfg.process_interval_s, cfg.topology_poll_s)
    pods, on_topology = k8s_options.build(cfg, backend, cfg.driver_options(backend))
    try:
        agent = Agent(engine, agent_cfg, slow_path=extras, rebuild_engine=lambda: make_engine(rebuild_cfg),
                      pods=pods, on_topology=on_topology)
    except OSError as e:
        extras.close()
        if pods is not None:
            pods.close()
        raise CliError(str(e)) from None
    _install_stop_signals(agent.stop)
    engine.start()
    try:
        if args.duration is not None:
            timer = threading.Timer(args.duration, agent.stop)
            timer.daemon = True
            timer.start()
        agent.run()
    finally:
        agent.engine.stop()  # the engine it runs now: a layout change may have replaced it
        agent.close()
    return 0


def cmd_relay(args: argparse.Namespace) -> int:
    from .relay import Relay, RelayConfig

    _setup_logging(args.log_level)
    import socket

    name = args.name or protocol.sanitize_node(socket.gethostname() + "-relay")
    server = _server_keys(args.curve_secret_key, args.curve_allow)
    try:
        relay = Relay(RelayConfig(args.connect, name, args.feed, args.sync, args.sndhwm,
                                  curve=server, upstream_curve=_client_keys(args)))
    except (OSError, ValueError) as e:
        raise CliError(str(e)) from None
    _install_stop_signals(relay.stop)
    try:
        if args.duration is not None:
            threading.Timer(args.duration, relay.stop).start()
        relay.run()
    finally:
        relay.close()
    return 0


def cmd_top(args: argparse.Namespace) -> int:
    from .top import run_top

    _setup_logging(args.log_level)
    from .client import Client

    endpoints = args.endpoints or [DEFAULT_ENDPOINT]
    client = Client(endpoints, curve=_client_keys(args))
    try:
        return run_top(endpoints, duration=args.duration, plain=args.plain or None, client=client)
    finally:
        client.close()


def cmd_demo(args: argparse.Namespace) -> int:
    """A mock agent on private ipc endpoints, plus top, in one process."""
    from .agent import Agent, AgentConfig
    from .top import run_top

    _setup_logging(args.log_level)
    with tempfile.TemporaryDirectory(prefix="cuagent-demo-") as tmp:
        cfg = config_mod.build({}, {
            "driver": "mock", "mock_devices": args.mock_devices, "seed": args.seed, "node": "demo",
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
            run_top([f"{cfg.feed},{cfg.sync}"], duration=args.duration, plain=args.plain or None)
        finally:
            agent.stop()
            thread.join(timeout=5)
            engine.stop()
            agent.close()
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    import zmq

    from .client import parse_endpoint

    ep = parse_endpoint(args.endpoint)
    ctx: zmq.Context = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    keys = _client_keys(args)
    if keys is not None:
        keys.apply(sub)
    for prefix in args.prefix or [protocol.PREFIX]:
        sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
    sub.connect(ep.feed)
    end = None if args.duration is None else time.monotonic() + args.duration
    printed = 0
    try:
        while (end is None or time.monotonic() < end) and (args.count is None or printed < args.count):
            timeout = 250 if end is None else max(0, min(250, int((end - time.monotonic()) * 1000)))
            if not sub.poll(timeout):
                continue
            frames = sub.recv_multipart()
            try:
                topic, topic_str, header, body = protocol.decode_envelope(frames)
                decoded = protocol.decode_body(topic.kind, body)
                line = {"topic": topic_str, "header": header.to_map(), "body": to_jsonable(decoded)}
            except protocol.ProtocolError as e:
                line = {"error": str(e), "topic": frames[0].decode("utf-8", "replace") if frames else None}
            print(json.dumps(line), flush=True)
            printed += 1
    except KeyboardInterrupt:
        pass
    finally:
        sub.close(0)
    return 0


def sync_request(sync_endpoint: str, request: dict, timeout: float, curve: Optional[ClientKeys] = None) -> bytes:
    import zmq

    sock: zmq.Socket = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if curve is not None:
        curve.apply(sock)
    sock.connect(sync_endpoint)
    try:
        sock.send(protocol.pack(request))
        if not sock.poll(int(timeout * 1000)):
            raise CliError(f"no reply from {sync_endpoint} within {timeout:g} s")
        return sock.recv()
    finally:
        sock.close(0)


def cmd_snapshot(args: argparse.Namespace) -> int:
    from .client import parse_endpoint

    ep = parse_endpoint(args.endpoint)
    keys = _client_keys(args)
    if args.ping:
        print(json.dumps(to_jsonable(protocol.unpack(sync_request(ep.sync, {"op": "ping"}, args.timeout, keys)))))
        return 0
    snap = protocol.decode_snapshot_reply(
        sync_request(ep.sync, {"op": "snapshot", "prefix": args.prefix}, args.timeout, keys))
    devices: dict[tuple[str, str], protocol.Device] = {}
    messages = []
    for frames in sorted(snap.messages, key=lambda f: not f[0].startswith(b"cua1/topo/")):
        topic, topic_str, header, body = protocol.decode_envelope(frames)
        if topic.kind == "topo":
            decoded = protocol.decode_topo_body(body)
            devices.update({(topic.node, d.id): d for d in decoded.devices})
        else:
            decoded = protocol.decode_body(topic.kind, body, devices.get((topic.node, topic.device or "")))
        messages.append({"topic": topic_str, "header": header.to_map(), "body": to_jsonable(decoded)})
    out = {"epoch": snap.epoch, "seqs": snap.seqs, "messages": messages, **to_jsonable(snap.extra)}
    print(json.dumps(out, indent=None if args.compact else 1))
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
    parser = argparse.ArgumentParser(
        prog="cuagent",
        description="Node-level GPU telemetry: per-SM/CU and per-partition state over ZeroMQ "
        "(wire protocol: PROTOCOL.md). Start with `cuagent demo`.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the node agent", description=(
        "Sample the GPUs and publish topo/state/hb/event on the feed (PUB) and answer snapshots "
        "on sync (ROUTER). Settings: defaults < --config file < flags."))
    run.add_argument("--config", metavar="FILE", help="TOML file with the same keys as the flags (underscores)")
    run.add_argument("--driver", choices=config_mod.DRIVERS, help="backend (default auto: the real GPU backend "
                     "present; never the mock, which must be asked for with --driver mock)")
    run.add_argument("--mock-devices", metavar="PRESET:SCENARIO,...",
                     help="simulated devices for --driver mock, e.g. h100-sxm:fragmented,mi300x:training")
    run.add_argument("--seed", type=int, help="mock seed (same seed, same data)")
    run.add_argument("--node", help="node name in topics (default: host name) [A-Za-z0-9._-]{1,64}")
    run.add_argument("--feed", metavar="ENDPOINT", help="PUB endpoint (default tcp://*:7710)")
    run.add_argument("--sync", metavar="ENDPOINT", help="ROUTER endpoint (default tcp://*:7711)")
    run.add_argument("--rate-hz", type=float, help="sampling rate (default 1000)")
    run.add_argument("--publish-interval-ms", type=float, help="state window and publish interval (default 100)")
    run.add_argument("--topo-interval-s", type=float, help="re-publish topo every this many seconds (default 10)")
    run.add_argument("--sndhwm", type=int, help="messages queued per subscriber before dropping (default 1000)")
    run.add_argument("--duration", type=float, help="stop after this many seconds")
    run.add_argument("--publish-timer", action="store_true", help=argparse.SUPPRESS)  # bench baseline only
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    backends = run.add_argument_group("real backends")
    backends.add_argument("--nvml-library", metavar="PATH",
                          help="libnvidia-ml to load (default: libnvidia-ml.so.1 from the loader's path)")
    backends.add_argument("--rocm-smi-library", metavar="PATH",
                          help="librocm_smi64 to load (default: the loader's path; env CUAGENT_ROCM_SMI_LIBRARY)")
    backends.add_argument("--kfd-root", metavar="PATH",
                          help="KFD sysfs directory for AMD topology (default /sys/class/kfd/kfd; env CUAGENT_KFD_ROOT)")
    backends.add_argument("--process-interval-s", type=float,
                          help="list a device's processes at most this often (default 1; NVML)")
    backends.add_argument("--topology-poll-s", type=float,
                          help="check the partition (MIG) layout this often; a change rebuilds the engine (default 5)")
    k8s_options.add_run_flags(run)
    _curve_server_flags(run)
    run.set_defaults(func=cmd_run)

    relay = sub.add_parser("relay", help="forward many agents' feeds, answer snapshots for all",
                           description="XSUB->XPUB forwarding (frames untouched) plus a sync socket "
                           "answering snapshots from its own cache. Relays stack.")
    relay.add_argument("--connect", action="append", required=True, metavar="FEED[,SYNC]",
                       help="an upstream agent or relay (repeat); tcp sync defaults to feed port + 1")
    relay.add_argument("--feed", default="tcp://*:7720", metavar="ENDPOINT")
    relay.add_argument("--sync", default="tcp://*:7721", metavar="ENDPOINT")
    relay.add_argument("--name", help="relay name in ping replies (default: <host>-relay)")
    relay.add_argument("--sndhwm", type=int, default=1000)
    relay.add_argument("--duration", type=float)
    relay.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    _curve_server_flags(relay)
    _curve_client_flags(relay, upstream=True)
    relay.set_defaults(func=cmd_relay)

    def viewer(p: argparse.ArgumentParser) -> None:
        p.add_argument("--duration", type=float, help="end after this many seconds")
        p.add_argument("--plain", action="store_true", help="plain text lines even on a terminal")
        p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])

    top = sub.add_parser("top", help="live terminal view of agents or relays")
    top.add_argument("endpoints", nargs="*", metavar="FEED[,SYNC]", help=f"default {DEFAULT_ENDPOINT}")
    viewer(top)
    _curve_client_flags(top)
    top.set_defaults(func=cmd_top)

    demo = sub.add_parser("demo", help="a simulated agent plus top, in one command")
    demo.add_argument("--mock-devices", default="h100-sxm:fragmented,mi300x:training", metavar="PRESET:SCENARIO,...")
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--rate-hz", type=float, default=1000.0)
    demo.add_argument("--publish-interval-ms", type=float, default=100.0)
    viewer(demo)
    demo.set_defaults(func=cmd_demo)

    watch = sub.add_parser("watch", help="print decoded feed messages, one JSON per line")
    watch.add_argument("endpoint", nargs="?", default=DEFAULT_ENDPOINT, metavar="FEED[,SYNC]")
    watch.add_argument("--prefix", action="append", help="topic prefix (repeat; default cua1/)")
    watch.add_argument("--duration", type=float)
    watch.add_argument("--count", type=int, help="stop after this many messages")
    _curve_client_flags(watch)
    watch.set_defaults(func=cmd_watch)

    snap = sub.add_parser("snapshot", help="one-shot JSON dump of a node or relay (sync socket)")
    snap.add_argument("endpoint", nargs="?", default=DEFAULT_ENDPOINT, metavar="FEED[,SYNC]")
    snap.add_argument("--prefix", default=protocol.PREFIX)
    snap.add_argument("--ping", action="store_true", help="send ping instead of snapshot")
    snap.add_argument("--timeout", type=float, default=3.0)
    snap.add_argument("--compact", action="store_true", help="one line")
    _curve_client_flags(snap)
    snap.set_defaults(func=cmd_snapshot)

    from .scheduling import extender as _extender
    _extender.add_parser(sub, _curve_client_flags).set_defaults(func=cmd_extender)
    from .simulate import cli as _simulate  # `cuagent simulate` (issue 13): its parser sets its own func
    _simulate.add_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CliError, config_mod.ConfigError, protocol.ProtocolError, ValueError) as e:
        print(f"cuagent {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `cuagent watch | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
