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


def test_watch_prints_one_json_per_message(agent):
    r = cli("watch", agent.endpoint, "--count", "5", "--duration", str(WAIT_S))
    assert r.returncode == 0, r.stderr
    msgs = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(msgs) == 5
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
