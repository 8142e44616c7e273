"""`cuagent run --check`: the settings, the keys, the backend and every endpoint as a run
opens them, then a report of what each device will report, and nothing left held; a failure
is the one line (exit 2) the run would have ended with."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from feed_support import WAIT_S, _env, start_agent


def check(*args: str, env: dict | None = None, log_level: str = "warning") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cuagent.cli", "run", "--check", "--log-level", log_level, *args],
                          capture_output=True, text=True, timeout=WAIT_S + 10, env=env or _env())


def test_check_reports_each_device_and_endpoint_and_leaves_them_free(keys, tmp_path: Path):
    feed, sync = f"ipc://{tmp_path}/a.feed", f"ipc://{tmp_path}/a.sync"
    args = ["--driver", "mock", "--mock-devices", "h100-sxm:mig,mi300x", "--node", "n1", "--feed", feed,
            "--sync", sync, "--metrics-listen", "127.0.0.1:0", "--curve-secret-key", str(keys / "server.key_secret"),
            "--curve-allow", str(keys / "allow")]
    r = check(*args, log_level="info")  # the default level: the report alone, no log line beside it
    assert r.returncode == 0 and r.stderr == "", r.stderr
    out = r.stdout.splitlines()
    assert out[0].startswith("cuagent run --check: every setting is valid"), r.stdout
    assert "  node: n1; driver: mock, 2 device(s); sampling at 1000 Hz, a state window every 100 ms" in out
    assert "  device 0 mock-0: NVIDIA H100 80GB HBM3 (mock)" in out
    assert "    units: 9 gpcs, 66 tpcs, 132 sms; layout: mock" in out
    assert any(line.startswith("    partitions: 0 MIG 3g.40gb (48 sms), ") for line in out), r.stdout
    assert "    units: 8 xcds, 32 ses, 304 cus; layout: mock" in out
    assert any(line.startswith("    counters: cu: active, ") for line in out), r.stdout
    assert f"  feed: {feed}, bound and released" in out and f"  sync: {sync}, bound and released" in out
    assert "  CURVE: on, admitting 1 client key(s)" in out
    port = re.search(r"^  metrics: http://127\.0\.0\.1:(\d+)/metrics, bound and released$", r.stdout, re.M)
    assert port and int(port.group(1)) > 0, r.stdout  # the port bound, not the 0 asked for
    # Released: a run on the same endpoints starts (the check's sockets are gone, not in use).
    agent = start_agent(tmp_path, "a", "h100-sxm")  # on ipc://TMP/a.feed and a.sync
    assert agent.stop() == 0, agent.log()


def test_check_names_what_a_backend_cannot_report(fake_nvml):
    r = check("--driver", "nvml", "--nvml-library", str(fake_nvml.library), "--feed", "tcp://127.0.0.1:0",
              "--sync", "tcp://127.0.0.1:0", env=fake_nvml.env(fake_nvml.script("devices 1\n")))
    assert r.returncode == 0, r.stderr
    assert "driver: nvml, 1 device(s)" in r.stdout, r.stdout
    assert ("    no per-sm counter: this backend reports activity for the device (or its partitions) only, "
            "not per unit") in r.stdout.splitlines(), r.stdout


def test_endpoints_in_use_now_are_said_and_any_other_failure_is_the_runs(tmp_path: Path):
    # The running agent a new configuration is checked for holds its endpoints: said, not fatal.
    agent = start_agent(tmp_path, "busy", "h100-sxm")
    try:
        r = check("--driver", "mock", "--feed", agent.feed, "--sync", f"ipc://{tmp_path}/free.sync")
    finally:
        assert agent.stop() == 0, agent.log()
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].endswith(" (those in use now excepted)"), r.stdout
    assert (f"  feed: cannot bind feed socket to {agent.feed!r}: in use by a running process (stop it, or choose "
            "another path) (now; if the agent this is for holds it, a restart frees it)") in r.stdout, r.stdout
    assert f"  sync: ipc://{tmp_path}/free.sync, bound and released" in r.stdout, r.stdout
    # Anything else fails as the run would, in one line.
    (tmp_path / "a-file").write_text("not a socket")
    r = check("--driver", "mock", "--feed", f"ipc://{tmp_path}/a-file", "--sync", f"ipc://{tmp_path}/s")
    assert r.returncode == 2 and r.stdout == "", r.stdout
    assert r.stderr == (f"cuagent run: error: cannot bind feed socket to 'ipc://{tmp_path}/a-file': the path "
                        "exists and is not a socket (it is left as it is)\n"), r.stderr
    r = check("--driver", "nvml", "--nvml-library", str(tmp_path / "nowhere.so"))
    assert r.returncode == 2 and "cuagent run: error: " in r.stderr and "nowhere.so" in r.stderr, r.stderr
