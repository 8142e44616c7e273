"""``cuagent fleet``: a synthetic fleet of nodes on one feed (:mod:`.fleet_feed`), for
load-testing relays, clients and schedulers.

    cuagent fleet --nodes 2000 --gpus 8 --rate-hz 10 --feed tcp://*:7710 --sync tcp://*:7711
    cuagent relay --connect tcp://127.0.0.1:7710      # then follow it like any agent or relay
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from .. import config as config_mod
from .. import wire
from ..backends import mock as mock_backend
from ..options import Option, OptionError, bind_endpoint
from . import fleet_feed, fleet_recording

log = logging.getLogger("cuagent.fleet")

NODES = Option("nodes", int, 100, "nodes to simulate", min=1, max=100_000)
GPUS = Option("gpus", int, 8, "GPUs per node", min=1, max=64)
RATE_HZ = Option("rate_hz", float, 10.0, "state windows per second per GPU (the agent's 100 ms windows: 10)",
                 min=0.1, max=100.0, unit="Hz")
FIRST = Option("first", int, 0, "index of the first node (several fleets side by side: disjoint ranges)",
               min=0, max=1_000_000)
PROFILE = Option("profile", str, "sm", "sm: the mock's per-SM levels (~5.9 KB per H100 window); device: "
                 "NVML-like, device and partition counters only (~0.3 KB)", choices=fleet_recording.PROFILES)


def _name(text: str) -> str:
    # Room for "-" and the index: node names are at most 64 characters (PROTOCOL.md §2).
    if not wire.NODE_RE.fullmatch(text) or len(text) > 56:
        raise OptionError("expected 1 to 56 characters of [A-Za-z0-9._-]")
    return text


NAME = Option("name", str, "fleet", "node names are NAME-00000, NAME-00001, ...; the fleet's name in ping replies",
              metavar="NAME", check=_name)
HB_INTERVAL_S = Option("hb_interval_s", float, 1.0, "heartbeat interval per node (PROTOCOL.md §3.3)",
                       min=0.01, max=3600.0, unit="s")
TOPO_INTERVAL_S = Option("topo_interval_s", float, 10.0, "topo re-publish interval per node",
                         min=0.01, max=86400.0, unit="s")
SNDHWM = Option("sndhwm", int, fleet_feed.DEFAULT_SNDHWM, "messages queued per subscriber before the feed drops",
                min=1, max=10_000_000)
# The agent's own setting (`cuagent run --summary-every`): the same flag, range and default.
SUMMARY_EVERY = config_mod.options()["summary_every"]
RECORD_WINDOWS = Option("record_windows", int, 10, "windows recorded per GPU and replayed in turn",
                        min=1, max=1000)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("fleet", help="publish a synthetic fleet of many nodes from one process (load tests)",
                       description="Record a mock engine's frames once, then publish them for many nodes, each with "
                       "its own epoch, seqs and heartbeats, nodes spread across the period, and answer snapshot/ping "
                       "on the sync socket as an agent does. Offered and achieved rates: `cuagent snapshot --ping`.")
    NODES.add_to(p, default=NODES.default)
    GPUS.add_to(p, default=GPUS.default)
    RATE_HZ.add_to(p, default=RATE_HZ.default)
    p.add_argument("--feed", type=Option("feed", str, check=bind_endpoint).from_text, default="tcp://*:7710",
                   metavar="ENDPOINT", help="feed (XPUB) endpoint (default tcp://*:7710)")
    p.add_argument("--sync", type=Option("sync", str, check=bind_endpoint).from_text, default="tcp://*:7711",
                   metavar="ENDPOINT", help="sync (ROUTER) endpoint (default tcp://*:7711)")
    NAME.add_to(p, default=NAME.default)
    FIRST.add_to(p, default=FIRST.default)
    PROFILE.add_to(p, default=PROFILE.default)
    mock_backend.MOCK_DEVICES.add_to(p, help="mock devices recorded, cycled over each node's GPUs (default "
                                     + ",".join(fleet_recording.DEFAULT_DEVICES) + ")")
    RECORD_WINDOWS.add_to(p, default=RECORD_WINDOWS.default)
    HB_INTERVAL_S.add_to(p, default=HB_INTERVAL_S.default)
    TOPO_INTERVAL_S.add_to(p, default=TOPO_INTERVAL_S.default)
    SNDHWM.add_to(p, default=SNDHWM.default)
    SUMMARY_EVERY.add_to(p, default=SUMMARY_EVERY.default)
    config_mod.SEED.add_to(p, default=1)
    config_mod.DURATION_S.add_to(p)
    config_mod.LOG_LEVEL.add_to(p, default="info")
    p.add_argument("--stats", action="store_true", help="print the fleet's figures as one JSON line at exit")
    p.set_defaults(func=run_cli)
    return p


def run_cli(args: argparse.Namespace) -> int:
    logging.basicConfig(level=getattr(logging, args.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    config = fleet_feed.FleetConfig(nodes=args.nodes, gpus=args.gpus, rate_hz=args.rate_hz, feed=args.feed,
                                    sync=args.sync, name=args.name, first=args.first, hb_interval_s=args.hb_interval_s,
                                    topo_interval_s=args.topo_interval_s, sndhwm=args.sndhwm,
                                    summary_every=args.summary_every)
    recording = fleet_recording.record(args.profile, args.gpus, args.mock_devices or fleet_recording.DEFAULT_DEVICES,
                                       window_ms=1000.0 / args.rate_hz, windows=args.record_windows, seed=args.seed)
    try:
        feed = fleet_feed.FleetFeed(recording, config)
    except OSError as e:
        raise ValueError(str(e)) from None

    from .. import stop_signals
    from ..duration import stop_after

    stop_signals.install(feed.stop)

    try:
        stop_after(args.duration, feed.stop)
        feed.run()
    finally:
        feed.close()
    if args.stats:
        print(json.dumps(feed.stats.as_map(feed.offered_msgs_per_s)), flush=True)
    return 0
