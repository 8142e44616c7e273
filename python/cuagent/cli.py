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
from . import protocol

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

    common = dict(rate_hz=cfg.rate_hz, window_ms=cfg.publish_interval_ms, seed=cfg.seed)
    if cfg.driver == "mock":
        try:
            from . import MockDevice  # type: ignore[attr-defined]
        except ImportError:
            from .mock import MockDevice  # type: ignore[no-redef]
        devices = [MockDevice(preset, scenario=scenario) for preset, scenario in cfg.mock_devices]
        return Engine(driver="mock", devices=devices, **common)
    names = config_mod.REAL_DRIVERS if cfg.driver == "auto" else (cfg.driver,)
    failures = []
    for name in names:
        try:
            engine = Engine(driver=name, **common)
        except Exception as e:  # noqa: BLE001 — each backend's reason goes into the message
            failures.append(f"{name}: {e}")
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
    }
    cfg = config_mod.build(file_values, flags)
    _setup_logging(cfg.log_level)
    node = cfg.node_name()
    agent_cfg = AgentConfig(
        node=node, feed=cfg.feed, sync=cfg.sync, publish_interval_ms=cfg.publish_interval_ms,
        topo_interval_s=cfg.topo_interval_s, sndhwm=cfg.sndhwm, align_to_windows=not args.publish_timer,
    )
    engine = make_engine(cfg)
    try:
        agent = Agent(engine, agent_cfg)
    except OSError as e:
        raise CliError(str(e)) from None
    _install_stop_signals(agent.stop)
    engine.start()
    try:
        if args.duration is not None:
            threading.Timer(args.duration, agent.stop).start()
        agent.run()
    finally:
        engine.stop()
        agent.close()
    return 0


def cmd_relay(args: argparse.Namespace) -> int:
    from .relay import Relay, RelayConfig

    _setup_logging(args.log_level)
    import socket

    name = args.name or protocol.sanitize_node(socket.gethostname() + "-relay")
    try:
        relay = Relay(RelayConfig(args.connect, name, args.feed, args.sync, args.sndhwm))
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
    return run_top(args.endpoints or [DEFAULT_ENDPOINT], duration=args.duration, plain=args.plain or None)


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
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
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


def sync_request(sync_endpoint: str, request: dict, timeout: float) -> bytes:
    import zmq

    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
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
    if args.ping:
        print(json.dumps(to_jsonable(protocol.unpack(sync_request(ep.sync, {"op": "ping"}, args.timeout)))))
        return 0
    snap = protocol.decode_snapshot_reply(sync_request(ep.sync, {"op": "snapshot", "prefix": args.prefix}, args.timeout))
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


# --------------------------------------------------------------------------- parser


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
    relay.set_defaults(func=cmd_relay)

    def viewer(p: argparse.ArgumentParser) -> None:
        p.add_argument("--duration", type=float, help="end after this many seconds")
        p.add_argument("--plain", action="store_true", help="plain text lines even on a terminal")
        p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])

    top = sub.add_parser("top", help="live terminal view of agents or relays")
    top.add_argument("endpoints", nargs="*", metavar="FEED[,SYNC]", help=f"default {DEFAULT_ENDPOINT}")
    viewer(top)
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
    watch.set_defaults(func=cmd_watch)

    snap = sub.add_parser("snapshot", help="one-shot JSON dump of a node or relay (sync socket)")
    snap.add_argument("endpoint", nargs="?", default=DEFAULT_ENDPOINT, metavar="FEED[,SYNC]")
    snap.add_argument("--prefix", default=protocol.PREFIX)
    snap.add_argument("--ping", action="store_true", help="send ping instead of snapshot")
    snap.add_argument("--timeout", type=float, default=3.0)
    snap.add_argument("--compact", action="store_true", help="one line")
    snap.set_defaults(func=cmd_snapshot)
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
