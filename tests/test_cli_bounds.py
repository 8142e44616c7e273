"""Every number and endpoint of every subcommand has a range: a value outside it ends the
command with exit status 2 and one line naming the value and the range, never a traceback,
never a quiet start that does something else. One table; each `run` row is tried both as a
flag and as a key of the --config file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from feed_support import _env

# (command, key, bad value as typed, what the one error line must say)
BOUNDS = [
    ("run", "seed", "1180591620717411303424", "an integer from 0 to 18446744073709551615"),
    ("run", "seed", "-1", "an integer from 0 to 18446744073709551615"),
    ("run", "sndhwm", "1099511627776", "an integer from 1 to 1000000"),
    ("run", "sndhwm", "0", "an integer from 1 to 1000000"),
    ("run", "topo_interval_s", "1e-9", "a number from 0.01 to 86400 s"),
    ("run", "topo_interval_s", "nan", "a number from 0.01 to 86400 s"),
    ("run", "rate_hz", "0", "a number from 0.01 to 100000 Hz"),
    ("run", "rate_hz", "inf", "a number from 0.01 to 100000 Hz"),
    ("run", "publish_interval_ms", "0.5", "a number from 1 to 600000 ms"),
    ("run", "publish_interval_ms", "1e12", "a number from 1 to 600000 ms"),
    ("run", "duration", "-1", "a number > 0 and <= 31536000 s"),
    ("run", "duration", "0", "a number > 0 and <= 31536000 s"),
    ("run", "process_interval_s", "0", "a number from 0.1 to 3600 s"),
    ("run", "topology_poll_s", "nan", "a number from 0.1 to 3600 s"),
    ("run", "seed", "three", "is not an integer"),
    ("run", "rate_hz", "fast", "is not a number"),
    ("run", "feed", "tcp://127.0.0.1:99999", "port '99999' is out of range: expected 1 to 65535, or * (or 0)"),
    ("run", "sync", "tcp://*:-1", "port '-1' is out of range"),
    ("run", "feed", "tcp://:7710", "expected tcp://HOST:PORT"),
    ("run", "feed", "tcp://127.0.0.1", "expected tcp://HOST:PORT"),
    ("run", "feed", "udp://127.0.0.1:7710", "transport 'udp' is not supported: expected tcp:// or ipc://"),
    ("run", "sync", "ipc://", "empty ipc path"),
    ("run", "sync", "ipc:///" + "x" * 120, "expected at most 107"),
    ("run", "feed", "inproc://feed", "reachable only inside one process"),
    ("run", "node", "bad node!", "expected a node name matching"),
    ("run", "driver", "cuda", "expected one of auto, amdsmi, mock, nvml, rocm_smi"),
    ("run", "log_level", "loud", "is not one of debug, info, warning, error"),
    ("run", "nvml_library", "", "empty: expected a path"),
    ("run", "nvml_sm_layout", "guess", "is not one of off, probe"),
    ("run", "nvml_probe_cache", "", "empty: expected a path"),
    ("run", "mock_devices", "h100-sxm:", "expected PRESET[:SCENARIO]"),
    ("run", "mock_faults", "0:lost@5", "needs a unit: s or ms"),
    ("run", "mock_faults", "0:lost@2s..1s", "must be after the loss"),
    ("run", "mock_faults", "0:errors=1.5", "expected a probability > 0 and <= 1"),
    ("run", "mock_faults", "0:slow=300ms", "expected slow=STALL/PERIOD"),
    ("run", "mock_faults", "0:slow=90s/1s", "expected > 0 and <= 60 s"),
    ("run", "mock_faults", "gpu0:lost@1s", "is not an index (0, 1, ...) or *"),
    ("run", "mock_faults", "0:melt@1s", "unknown fault 'melt@1s'"),
    ("run", "metrics_listen", "nowhere", "expected HOST:PORT with PORT from 0 to 65535"),
    ("run", "metrics_listen", "127.0.0.1:65536", "expected HOST:PORT with PORT from 0 to 65535"),
    ("relay", "sndhwm", "0", "an integer from 1 to 1000000"),
    ("relay", "duration", "-1", "a number > 0 and <= 31536000 s"),
    ("relay", "connect", "tcp://gpu01:99999", "port '99999' is out of range: expected 1 to 65535"),
    ("relay", "connect", "tcp://*:7710", "cannot connect to host '*'"),
    ("relay", "feed", "tcp://*:65536", "port '65536' is out of range"),
    ("relay", "summary_interval_s", "-1", "a number from 0 to 86400 s"),
    ("relay", "summary_interval_s", "nan", "a number from 0 to 86400 s"),
    ("relay", "forwarder", "zmq", "is not one of native, python"),
    ("relay", "kinds", "topo,hb,states", "'states' is not a kind: expected a comma-separated list of "
     "topo,state,hb,event,sum with topo and hb"),
    ("relay", "kinds", "sum,event", "lacks topo,hb: a relay needs topo and hb (hb for staleness, topo for joins)"),
    ("relay", "kinds", "topo,,hb", "item '' is not a non-empty string"),
    ("extender", "horizon_s", "inf", "a number from 0.1 to 86400 s"),
    ("extender", "max_age_s", "-3", "a number from 0.1 to 3600 s"),
    ("extender", "duration", "-1", "a number > 0 and <= 31536000 s"),
    ("extender", "connect", "tcp://*:7710", "cannot connect to host '*'"),
    ("exporter", "duration", "-1", "a number > 0 and <= 31536000 s"),
    ("exporter", "duration", "0", "a number > 0 and <= 31536000 s"),
    ("exporter", "duration", "nan", "a number > 0 and <= 31536000 s"),
    ("exporter", "duration", "inf", "a number > 0 and <= 31536000 s"),
    ("exporter", "connect", "tcp://*:7710", "cannot connect to host '*'"),
    ("top", "duration", "nan", "a number > 0 and <= 31536000 s"),
    ("top", "device", "", "is not a non-empty string"),
    ("top", "", "tcp://gpu01:65535", "sync endpoint 'tcp://gpu01:65536': port '65536' is out of range"),
    ("watch", "count", "0", "an integer from 1 to 1000000000"),
    ("watch", "duration", "-5", "a number > 0 and <= 31536000 s"),
    ("watch", "prefix", "c" * 257, "257 characters: expected at most 256"),
    ("snapshot", "timeout", "0", "a number > 0 and <= 3600 s"),
    ("snapshot", "timeout", "1e9", "a number > 0 and <= 3600 s"),
    ("snapshot", "", "ipc://,ipc:///tmp/s", "feed endpoint 'ipc://': empty ipc path"),
    # What is wrong with the feed endpoint itself, not that a sync endpoint is missing.
    ("snapshot", "", "gpu01:7710", "no transport: expected tcp://HOST:PORT or ipc://PATH"),
    ("snapshot", "", "tcp://127.0.0.1", "no port: expected tcp://HOST:PORT"),
    ("watch", "", "localhost:7710", "no transport: expected tcp://HOST:PORT or ipc://PATH"),
    ("demo", "seed", "-1", "an integer from 0 to 18446744073709551615"),
    ("demo", "rate_hz", "1e9", "a number from 0.01 to 100000 Hz"),
    ("demo", "publish_interval_ms", "0", "a number from 1 to 600000 ms"),
    ("demo", "mock_faults", "0:errors=0", "expected a probability > 0 and <= 1"),
]

# Values that only a TOML file can give with the wrong type.
TOML_ONLY = [
    ("seed", '"3"', 'seed = "3" is not an integer'),
    ("rate_hz", "true", "rate_hz = true is not a number"),
    ("topo_interval_s", "[1]", "is not a number"),
    ("feed", "7710", "feed = 7710 is not a string"),
    ("mock_faults", "[1]", "mock_faults = [1] is not a non-empty string"),
    ("mock_faults", '["0:lost@1s", ""]', "item '' is not a non-empty string"),
    ("metrics_per_unit", "1", "metrics_per_unit = 1 is not true or false"),
    ("metrics_per_process", '"yes"', 'metrics_per_process = "yes" is not true or false'),
    ("metrics_listen", "7712", "metrics_listen = 7712 is not a string"),
    ("config", '"other.toml"', "config: a config file cannot name another one: give --config on the command line"),
]

# Enough for the command to get as far as it would (it must fail before binding anything).
BASE = {
    "run": ["run", "--driver", "mock", "--duration", "5"],
    "relay": ["relay", "--connect", "ipc:///nonexistent/up,ipc:///nonexistent/up-sync", "--duration", "5"],
    "top": ["top", "--duration", "5"],
    "watch": ["watch", "--duration", "5"],
    "snapshot": ["snapshot", "--timeout", "0.2"],
    "demo": ["demo", "--duration", "5"],
    "exporter": ["exporter", "--connect", "ipc:///nonexistent/f,ipc:///nonexistent/s", "--listen", "127.0.0.1:0",
                 "--duration", "5"],
    "extender": ["extender", "--connect", "ipc:///nonexistent/f,ipc:///nonexistent/s", "--listen", "127.0.0.1:0",
                 "--duration", "5"],
}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cuagent.cli", *args], capture_output=True, text=True,
                          timeout=30, env=_env())


def one_error_line(r: subprocess.CompletedProcess, command: str = "") -> str:
    assert r.returncode == 2, f"exit {r.returncode}\n{r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"cuagent {command}: error: " if command else "cuagent"), lines[0]
    return lines[0]


def toml_literal(text: str) -> str:
    """The bad value as a TOML file writes it: numbers (nan and inf included) bare, the rest quoted."""
    try:
        float(text)
        return text
    except ValueError:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ids(row: tuple) -> str:
    return f"{row[0]}-{row[1] or 'endpoint'}-{row[2][:24]}"


@pytest.mark.parametrize("command, key, value, expected", BOUNDS, ids=[_ids(r) for r in BOUNDS])
def test_out_of_range_flag(command, key, value, expected, tmp_path):
    flag = [f"--{key.replace('_', '-')}", value] if key else [value]
    line = one_error_line(cli(*BASE[command], *flag), command)
    assert expected in line, line
    assert (value[:40] if value else "''") in line, line  # the value is named
    if key:
        assert f"--{key.replace('_', '-')}" in line, line


@pytest.mark.parametrize("command, key, value, expected", [r for r in BOUNDS if r[0] == "run"],
                         ids=[_ids(r) for r in BOUNDS if r[0] == "run"])
def test_out_of_range_toml_key(command, key, value, expected, tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text(f"{key} = {toml_literal(value)}\n")
    line = one_error_line(cli(*BASE[command], "--config", str(path)), command)
    assert expected in line and f"config file {path}: {key} = " in line, line


@pytest.mark.parametrize("key, literal, expected", TOML_ONLY, ids=[r[0] for r in TOML_ONLY])
def test_wrong_type_in_toml(key, literal, expected, tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text(f"{key} = {literal}\n")
    line = one_error_line(cli(*BASE["run"], "--config", str(path)), "run")
    assert expected in line, line


def test_settings_that_contradict_each_other(tmp_path: Path):
    for args, expected in [
        (["--publish-interval-ms", "5", "--rate-hz", "100"], "expected at least 10 ms"),
        (["--mock-faults", "2:lost@1s"], "there are 1 mock device(s), indices 0 to 0"),
        (["--mock-faults", "*:lost@1s,0:lost@2s"], "mock device 0 is given a 'lost' fault twice"),
        (["--driver", "auto", "--mock-faults", "0:lost@1s"], "mock_faults needs driver mock"),
        (["--metrics-per-unit"], "metrics_per_unit needs metrics_listen"),
    ]:
        line = one_error_line(cli(*BASE["run"], *args), "run")
        assert expected in line, line


def test_argparse_mistakes_are_one_line_too():
    line = one_error_line(cli("run", "--no-such-flag"))
    assert "unrecognized arguments: --no-such-flag" in line and "--help" in line
    line = one_error_line(cli("run", "--rate-hz"), "run")
    assert "argument --rate-hz: expected one argument" in line
