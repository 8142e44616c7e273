"""`cuagent run`'s flags and the --config file are one set of settings: every flag is a key
(README and deploy/cuagent.toml promise it; the systemd unit passes nothing but --config),
with the same checks, and a flag given on the command line wins over the file."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from cuagent import config as config_mod
from cuagent.cli import build_parser
from feed_support import WAIT_S, Proc, _env, wait_until


def run_flags() -> dict[str, argparse.Action]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a for a in sub.choices["run"]._actions if a.option_strings and a.dest != "help"}


def test_every_run_flag_is_a_config_key():
    flags = run_flags()
    # --config (a file naming another file is refused, below) and --check (a file saying
    # check = true would turn the service into a check that exits).
    assert set(flags) - set(config_mod.options()) == {"config", "check"}, "flags with no key in the --config file"
    assert set(config_mod.options()) <= set(flags), "keys with no flag"


def test_the_one_flag_that_is_no_key_says_why(tmp_path: Path):
    path = tmp_path / "agent.toml"
    path.write_text('config = "/etc/cuagent/other.toml"\n')
    r = subprocess.run([sys.executable, "-m", "cuagent.cli", "run", "--driver", "mock", "--config", str(path)],
                       capture_output=True, text=True, timeout=30, env=_env())
    (line,) = r.stderr.splitlines()
    assert r.returncode == 2 and line == (f"cuagent run: error: config file {path}: config: a config file cannot "
                                          "name another one: give --config on the command line")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def _scrape_when_ready(port: int, proc: Proc) -> str:
    def ready() -> bool:
        try:
            return "cuagent_sm_active_ratio" in _metrics(port)
        except OSError:
            return False
    wait_until(ready, what=f"a first window on /metrics:\n{proc.log()}")
    return _metrics(port)


def test_metrics_settings_come_from_the_config_file(tmp_path: Path):
    """The operator's case: Prometheus turned on in the file the systemd unit passes, per-SM
    series included; then the same file with --no-metrics-per-unit on the command line."""
    feed, sync = f"ipc://{tmp_path}/f", f"ipc://{tmp_path}/s"
    config = tmp_path / "agent.toml"
    for extra, per_unit in (([], True), (["--no-metrics-per-unit"], False)):
        port = _free_port()
        config.write_text(f'metrics_listen = "127.0.0.1:{port}"\nmetrics_per_unit = true\n'
                          "metrics_per_process = true\n")
        proc = Proc(["run", "--config", str(config), "--driver", "mock", "--node", "cfg", "--feed", feed, "--sync", sync,
                     "--rate-hz", "200", "--publish-interval-ms", "50", *extra], feed, sync, tmp_path / "agent.log")
        try:
            proc.wait_ping(WAIT_S)
            text = _scrape_when_ready(port, proc)
        finally:
            assert proc.stop() == 0, proc.log()
        unit_series = [line for line in text.splitlines() if line.startswith("cuagent_unit_") and 'unit="' in line]
        assert bool(unit_series) == per_unit, (extra, text[:2000])
