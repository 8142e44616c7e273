"""The command-line face of the Prometheus exporter: ``cuagent run --metrics-listen`` and
``cuagent exporter``. Kept apart from :mod:`.prometheus` so that building the parser imports
no prometheus-client (``cuagent`` starts as fast as before).

Default ports: ``cuagent run`` serves ``/metrics`` on 7712, next to its feed (7710) and sync
(7711); ``cuagent exporter`` on 7722, next to the relay it usually fronts (7720/7721). Both are
outside 9100–9999, where node_exporter (9100), dcgm-exporter (9400) and the other exporters of
the Prometheus wiki's allocation list live, and off AMD's device-metrics-exporter (5000).
"""

from __future__ import annotations

import argparse
from typing import Any, Callable, Optional

from .. import config as config_mod
from ..duration import stop_after
from ..options import Option, listen_address, parse_listen, peer

DEFAULT_AGENT_PORT = 7712
DEFAULT_EXPORTER_PORT = 7722

CONNECT = Option("connect", str, None, "an agent or relay (repeat); tcp sync defaults to feed port + 1",
                 metavar="FEED[,SYNC]", check=peer)


def add_metrics_flags(run: argparse.ArgumentParser) -> None:
    """``cuagent run``'s flags for serving /metrics from the agent's own process; they are keys
    of the --config file too (config.METRICS_OPTIONS)."""
    g = run.add_argument_group("Prometheus /metrics")
    alone = f"0.0.0.0:{DEFAULT_AGENT_PORT}"
    config_mod.METRICS_LISTEN.add_to(g, nargs="?", const=alone,
                                     help=config_mod.METRICS_LISTEN.help_text() + f" (the flag alone: {alone})")
    config_mod.METRICS_PER_UNIT.add_to(g)
    config_mod.METRICS_PER_PROCESS.add_to(g)


def start_agent_metrics(cfg: config_mod.RunConfig, agent: Any) -> Optional[Any]:
    """The running /metrics server of ``cuagent run`` (None without metrics_listen).
    A port that cannot be bound is a ValueError naming it."""
    if cfg.metrics_listen is None:
        return None
    from .prometheus import serve_agent

    listen = parse_listen(cfg.metrics_listen)
    try:
        return serve_agent(agent, listen, per_unit=cfg.metrics_per_unit, per_process=cfg.metrics_per_process)
    except OSError as e:
        raise ValueError(f"--metrics-listen {listen[0]}:{listen[1]}: {e.strerror or e}") from None


def add_exporter_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``cuagent exporter`` subcommand (the caller adds the CURVE client flags)."""
    p: argparse.ArgumentParser = sub.add_parser(
        "exporter", help="Prometheus /metrics for any agents or relays",
        description="Follow agents or relays (the client library: snapshot, gaps, restarts) and serve "
        "Prometheus metrics for every node behind them, each series labelled with its node.")
    CONNECT.add_to(p, action="append", required=True)
    p.add_argument("--listen", type=listen_address, default=("0.0.0.0", DEFAULT_EXPORTER_PORT),
                   metavar="HOST:PORT", help=f"serve http://HOST:PORT/metrics (default 0.0.0.0:{DEFAULT_EXPORTER_PORT})")
    p.add_argument("--per-unit", action="store_true", help="also one series per SM/CU and counter")
    p.add_argument("--per-process", action="store_true", help="also one series per GPU process")
    config_mod.DURATION_S.add_to(p)  # the range every long-running command takes
    config_mod.LOG_LEVEL.add_to(p, default="info")
    return p


def run_exporter(args: argparse.Namespace, curve: Any, install_stop: Callable[[Callable[[], None]], None]) -> int:
    from .prometheus import FeedExporter

    try:
        exporter = FeedExporter(args.connect, args.listen, curve=curve, per_unit=args.per_unit,
                                per_process=args.per_process)
    except OSError as e:
        raise ValueError(f"--listen {args.listen[0]}:{args.listen[1]}: {e.strerror or e}") from None
    install_stop(exporter.stop)
    try:
        stop_after(args.duration, exporter.stop)
        exporter.run()
    finally:
        exporter.close()
    return 0
