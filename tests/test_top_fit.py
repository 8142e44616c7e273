"""`cuagent top` and `cuagent demo` fit the terminal, for every vendor: every device is drawn
(full or compact) or counted in a "not shown" line, the health line is always there, and
`--device` keeps a device in full. Drawn from real mock agents, through the renderer at given
sizes and as the commands run under a pseudo-terminal; SIGTERM/SIGHUP end the view as Ctrl-C
does, the cursor shown again; without a terminal top says it is waiting for agents."""

from __future__ import annotations

import io
import re
import signal
import socket
import subprocess
import sys

import pytest
from rich.cells import cell_len
from rich.console import Console

from feed_support import WAIT_S, _env, start_agent, wait_until
from tty_support import HIDE_CURSOR, SHOW_CURSOR, run_in_tty

from cuagent.client import Client
from cuagent.exporters import top

DEMO_DEVICES = "h100-sxm:fragmented,mi300x:training"  # what `cuagent demo` runs by default
EIGHT_MI300X = ",".join(["mi300x:training"] * 8)
NOT_SHOWN = re.compile(r"^(\d+) more devices? not shown \(use --device or a larger terminal\)$")


@pytest.fixture
def follow(tmp_path):
    """A mock agent with ``devices`` and a client that has a window of each of them."""
    procs, clients = [], []

    def start(name, devices):
        proc = start_agent(tmp_path, name, devices)
        procs.append(proc)
        client = Client([proc.endpoint])
        clients.append(client)
        count = len(devices.split(","))
        wait_until(lambda: name in client.view.nodes and len(client.view.nodes[name].devices) == count
                   and all(d.state is not None for d in client.view.nodes[name].devices.values()),
                   step=lambda: client.poll(0.05), what=f"a window of each of {count} devices")
        return client

    yield start
    for client in clients:
        client.close()
    for proc in procs:
        assert proc.stop() == 0, proc.log()


def rendered(client, width, height, selectors=()) -> list[str]:
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    console.print(top.render(client, top.FeedRates(), None, width, height, selectors))
    return console.export_text().rstrip("\n").split("\n")


def shown(lines: list[str], node: str, ident: str, index: int) -> str:
    """How a device appears in a frame: "full" (a panel title), "compact" (a head line), or ""."""
    if any(line.startswith("╭") and (f" {node} / {ident} " in line or f" {node} / {index} {ident}" in line)
           for line in lines):
        return "full"
    if any(line.startswith(f"{node}/{index} {ident} ") for line in lines):
        return "compact"
    return ""


def check_fits(lines: list[str], node: str, ids: list[str], cols: int, rows: int) -> dict[str, str]:
    """The frame fits ``cols`` x ``rows``, holds the health line, and draws each device or
    counts it as not shown. Returns each device's form ("" for not shown)."""
    assert len(lines) <= rows and all(cell_len(line) <= cols for line in lines), "\n".join(lines)
    assert any(line.startswith(f"{node}: live, hb ") for line in lines), "\n".join(lines)
    assert any(line.startswith("gaps ") or " | gaps " in line for line in lines), "\n".join(lines)
    assert not any(line.strip() == "..." for line in lines), "\n".join(lines)
    forms = {ident: shown(lines, node, ident, i) for i, ident in enumerate(ids)}
    counted = [int(m.group(1)) for line in lines if (m := NOT_SHOWN.match(line))]
    missing = sum(1 for form in forms.values() if not form)
    assert counted == ([missing] if missing else []), (forms, "\n".join(lines))
    return forms


def test_the_default_demo_devices_fit_80x24(follow):
    client = follow("node-f", DEMO_DEVICES)
    forms = check_fits(rendered(client, 80, 24), "node-f", ["mock-0", "mock-1"], 80, 24)
    assert forms == {"mock-0": "compact", "mock-1": "compact"}
    # Where they fit, the full panels as before: the H100 and MI300X heat maps.
    tall = rendered(client, 80, 200)
    assert check_fits(tall, "node-f", ["mock-0", "mock-1"], 80, 200) == {"mock-0": "full", "mock-1": "full"}
    assert any(line.startswith("│   gpc0 ") for line in tall) and any(line.startswith("│   xcd7 ") for line in tall)


def test_eight_mi300x_are_all_drawn_or_counted(follow):
    client = follow("node-8", EIGHT_MI300X)
    ids = [f"mock-{i}" for i in range(8)]
    for cols, rows in ((80, 24), (120, 50)):
        lines = rendered(client, cols, rows)
        assert set(check_fits(lines, "node-8", ids, cols, rows).values()) == {"compact"}, (cols, rows)
        assert "compact: 8 devices (terminal too short); --device ID for a full panel" in lines
        # The compact form: one cell per XCD, the state counts, the device counters.
        assert sum(bool(re.match(r"  xcds [▁▂▃▄▅▆▇█]{8}  active 304  power \d+W", line)) for line in lines) == 8
    # A shorter terminal: what has no room is counted, the health line still drawn.
    forms = check_fits(rendered(client, 80, 12), "node-8", ids, 80, 12)
    assert "" in forms.values() and "compact" in forms.values()
    # Tiny ones: never a row or a column too many (the health line summed up, then cut).
    for cols, rows in ((80, 3), (20, 6), (10, 1)):
        lines = rendered(client, cols, rows)
        assert len(lines) <= rows and all(cell_len(line) <= cols for line in lines), (cols, rows, lines)
        assert lines[-1].startswith(("gaps ", "1 node: ")), lines
    # A tall one: the full panels.
    assert set(check_fits(rendered(client, 120, 200), "node-8", ids, 120, 200).values()) == {"full"}


def test_device_keeps_an_amd_device_in_full(follow):
    client = follow("node-d", EIGHT_MI300X)
    ids = [f"mock-{i}" for i in range(8)]
    for selector in ("mock-5", "node-d/5"):
        lines = rendered(client, 80, 24, [selector])
        forms = check_fits(lines, "node-d", ids, 80, 24)
        assert forms["mock-5"] == "full" and [i for i, f in forms.items() if f == "full"] == ["mock-5"], forms
        assert [line[:9] for line in lines if line.startswith("│   xcd")] == [f"│   xcd{x} " for x in range(8)]
        assert any(line.startswith("compact: ") and "(not selected)" in line for line in lines)


def test_sigterm_and_sighup_end_top_with_the_cursor_shown(tmp_path):
    agent = start_agent(tmp_path, "node-s", DEMO_DEVICES)
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            # Tall enough for the full panels: the signal, not the fit, is under test.
            run = run_in_tty(["top", agent.endpoint], 100, 60, "node-s: live", sig)
            assert run.returncode == 0, (sig, run.raw[-2000:])
            assert run.raw.rfind(HIDE_CURSOR) >= 0 and run.raw.rfind(SHOW_CURSOR) > run.raw.rfind(HIDE_CURSOR), sig
            assert any(line.startswith("node-s: live") for line in run.frames()[-1]), run.frames()[-1]
    finally:
        assert agent.stop() == 0, agent.log()


@pytest.mark.parametrize("device", [None, "mock-1"])
def test_demo_frames_fit_80x24(device):
    args = ["demo", "--rate-hz", "200", "--publish-interval-ms", "50"] + (["--device", device] if device else [])
    run = run_in_tty(args, 80, 24, "demo: live", signal.SIGTERM)
    assert run.returncode == 0, run.raw[-2000:]
    frames = [f for f in run.frames() if any(line.startswith("demo: ") for line in f)]
    assert frames, run.raw[-3000:]
    for lines in frames:
        # One row short of the terminal: the live display ends a frame with a newline.
        forms = check_fits(lines, "demo", ["mock-0", "mock-1"], 80, 23)
        if device:
            assert forms == {"mock-0": "compact", "mock-1": "full"}, "\n".join(lines)
        else:
            assert set(forms.values()) == {"compact"}, "\n".join(lines)


def test_plain_top_says_it_is_waiting_for_agents():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"tcp://127.0.0.1:{port}"
    r = subprocess.run([sys.executable, "-m", "cuagent.cli", "top", endpoint, "--plain", "--duration", "1.5"],
                       capture_output=True, text=True, timeout=WAIT_S + 10, env=_env())
    assert r.returncode == 0, r.stderr
    waiting = [line for line in r.stdout.splitlines() if line.startswith("waiting for agents at ")]
    assert waiting and all(line == f"waiting for agents at {endpoint} (nothing heard yet)" for line in waiting), r.stdout
