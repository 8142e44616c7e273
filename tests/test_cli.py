"""The viewer commands as a user runs them: top, demo, watch, snapshot (no terminal -> plain text)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from feed_support import WAIT_S, _env, start_agent


def cli(*args, timeout=WAIT_S + 10):
    return subprocess.run([sys.executable, "-m", "cuagent.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=_env())


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    proc = start_agent(tmp_path_factory.mktemp("cli"), "node-c", "h100-sxm:fragmented,mi300x:training")
    yield proc
    assert proc.stop() == 0


def test_top_prints_plain_lines_without_a_terminal(agent):
    r = cli("top", agent.endpoint, "--duration", "2.5")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any(line.startswith("node-c/mock-0 ") and "idle_units" in line and "states[" in line for line in lines), r.stdout
    assert any(line.startswith("node-c/mock-1 ") and "idle xcds" in line for line in lines), r.stdout
    # The status line counts gaps; an agent starved of CPU loses windows, so not always 0.
    assert "node-c: live" in r.stdout and re.search(r"gaps \d+", r.stdout), r.stdout


def test_top_plain_prints_only_the_devices_named_by_device(agent):
    r = cli("top", agent.endpoint, "--duration", "2.5", "--device", "1,node-c/9")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any(line.startswith("node-c/mock-1 ") and "idle xcds" in line for line in lines), r.stdout
    assert not any(line.startswith("node-c/mock-0 ") for line in lines), r.stdout
    assert "1 other device not shown (not selected by --device)" in lines, r.stdout
    assert "--device node-c/9: no such device (yet)" in lines, r.stdout


def test_watch_prints_one_json_per_message(agent):
    r = cli("watch", agent.endpoint, "--count", "5", "--duration", str(WAIT_S))
    assert r.returncode == 0, r.stderr
    msgs = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(msgs) == 5 and r.stderr == ""  # the "no message" notice is for a silent feed only
    for m in msgs:
        assert m["topic"].startswith("cua1/") and m["header"]["node"] == "node-c"
    states = [m for m in msgs if m["topic"].startswith("cua1/state/")]
    assert states and all(isinstance(s["body"]["levels"], dict) for s in states)


def test_snapshot_dumps_json(agent):
    r = cli("snapshot", agent.endpoint, "--compact")
    assert r.returncode == 0, r.stderr
    snap = json.loads(r.stdout)
    topo = [m for m in snap["messages"] if m["topic"] == "cua1/topo/node-c/"]
    assert len(topo) == 1 and [d["units"] for d in topo[0]["body"]["devices"]] == [132, 304]
    state = [m for m in snap["messages"] if m["topic"] == "cua1/state/node-c/mock-0/"]
    assert len(state[0]["body"]["levels"]["sm"]["state"]) == 132
    ping = json.loads(cli("snapshot", agent.endpoint, "--ping").stdout)
    assert ping["epoch"] == snap["epoch"] and ping["node"] == "node-c"


def test_snapshot_of_nothing_fails_clearly(tmp_path):
    r = cli("snapshot", f"ipc://{tmp_path}/none,ipc://{tmp_path}/none-sync", "--timeout", "0.3")
    assert r.returncode == 2 and "no reply from" in r.stderr


def test_demo_runs_agent_and_top_in_one_command():
    r = cli("demo", "--duration", "2.5", "--rate-hz", "200", "--publish-interval-ms", "50")
    assert r.returncode == 0, r.stderr
    assert "demo/mock-0 " in r.stdout and "demo/mock-1 " in r.stdout, r.stdout


def test_help_explains_the_commands():
    r = cli("--help")
    assert r.returncode == 0 and "demo" in r.stdout and "relay" in r.stdout
    r = cli("run", "--help")
    assert "--mock-devices" in r.stdout and "never the mock" in r.stdout


# --------------------------------------------------------------------------- saying that nothing came


def _free_tcp_endpoint() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def test_watch_of_nothing_says_so_on_stderr_and_keeps_stdout_json(tmp_path):
    endpoint = _free_tcp_endpoint()
    r = cli("watch", endpoint, "--duration", "1")
    assert r.returncode == 0 and r.stdout == "", (r.stdout, r.stderr)
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"cuagent watch: no message from {endpoint} in ") and "is an agent or relay running" in line


def test_watch_says_once_while_waiting_that_nothing_came_yet(tmp_path):
    """No --duration: it waits for ever; the notice comes once, then SIGINT ends it with the
    closing line (bounded waits on its stderr, no clock in the assertions)."""
    import signal
    import time

    endpoint = f"ipc://{tmp_path}/nobody"
    err = tmp_path / "watch.err"
    with open(err, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "cuagent.cli", "watch", f"{endpoint},{endpoint}-sync",
                                 "--prefix", "cua1/state/"], stdout=subprocess.PIPE, stderr=f, text=True, env=_env())
    try:
        deadline = time.monotonic() + WAIT_S
        while "yet" not in err.read_text() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert "yet" in err.read_text(), err.read_text()
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 0 and out == ""
    lines = err.read_text().splitlines()
    assert lines[0] == (f"cuagent watch: no message from {endpoint} under cua1/state/ yet "
                        "(is an agent or relay running there?)"), lines
    assert len(lines) == 2 and lines[1].startswith(f"cuagent watch: no message from {endpoint} under cua1/state/ in ")


def test_snapshot_of_nothing_says_what_to_check(tmp_path):
    r = cli("snapshot", f"ipc://{tmp_path}/none,ipc://{tmp_path}/none-sync", "--timeout", "0.3", "--ping")
    (line,) = r.stderr.splitlines()
    assert r.returncode == 2 and line == (f"cuagent snapshot: error: no reply from ipc://{tmp_path}/none-sync within "
                                          "0.3 s (is an agent or relay running there? --timeout waits longer)")


# --------------------------------------------------------------------------- help and version


def test_version_is_the_package_version():
    from cuagent import __version__

    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"cuagent {__version__}", r


def test_help_lists_every_command_main_accepts():
    r = cli("--help")
    for command in ("run", "relay", "exporter", "top", "demo", "watch", "snapshot", "keys", "profiling",
                    "extender", "simulate", "fleet"):
        assert re.search(rf"^    {command}\b", r.stdout, re.M), (command, r.stdout)
    r = cli("profiling", "--help")  # its own parser answers
    assert r.returncode == 0 and "--socket" in r.stdout and "pause" in r.stdout


@pytest.mark.parametrize("command, expected", [
    ("relay", ["--feed ENDPOINT", "(default tcp://*:7720)", "--sync ENDPOINT", "(default tcp://*:7721)",
               "[a number > 0 and < 1e6 s]", "[a number > --stale-after-s and < 1e6 s]"]),
    ("top", ["[a number > 0 and <= 31536000 s]", "(default tcp://127.0.0.1:7710)"]),
    ("demo", ["[a number > 0 and <= 31536000 s]"]),
    ("exporter", ["[a number > 0 and <= 31536000 s]"]),
    ("watch", ["(default tcp://127.0.0.1:7710)"]),
    ("snapshot", ["(default tcp://127.0.0.1:7710)"]),
])
def test_help_shows_ranges_and_defaults(command, expected):
    r = cli(command, "--help")
    text = " ".join(r.stdout.split())  # argparse wraps lines
    for fragment in expected:
        assert fragment in text, (fragment, r.stdout)
