"""What an operator runs into: a second agent on the first one's ipc endpoints, the address a
node says it listens on, a GPU that stalls, SIGHUP, IPv6 literal endpoints. Real `cuagent`
processes on real sockets; every wait is bounded."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path


from feed_support import WAIT_S, Proc, _env, start_agent


def _cli(*args: str, timeout: float = WAIT_S) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cuagent.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=_env())


def _mock_run(feed: str, sync: str, *extra: str) -> list[str]:
    return ["run", "--driver", "mock", "--mock-devices", "h100-sxm:idle", "--node", "second",
            "--feed", feed, "--sync", sync, *extra]


# --------------------------------------------------------------------------- ipc endpoints in use


def _stale_socket(path: Path) -> None:
    """A socket file whose process is gone: bound, never listened on again, closed unremoved."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()


def test_a_second_agent_on_live_ipc_endpoints_is_refused_and_a_stale_one_reused(tmp_path):
    # Stale files (an agent killed with -9 leaves them): the agent binds over them.
    _stale_socket(tmp_path / "first.feed")
    _stale_socket(tmp_path / "first.sync")
    first = start_agent(tmp_path, "first")
    try:
        # The same endpoints again while it runs: libzmq would unlink its socket files and
        # bind, leaving it running but unreachable. Refused, with one line naming the endpoint.
        r = _cli(*_mock_run(first.feed, first.sync, "--duration", "2"))
        assert r.returncode == 2, r.stderr
        assert r.stderr.splitlines()[-1:] == [
            f"cuagent run: error: cannot bind feed socket to {first.feed!r}: in use by a running process "
            "(stop it, or choose another path)"], r.stderr
        # Only the sync endpoint taken: that one is named.
        r = _cli(*_mock_run(f"ipc://{tmp_path}/free.feed", first.sync, "--duration", "2"))
        assert r.returncode == 2 and f"cannot bind sync socket to {first.sync!r}: in use by a running process" \
            in r.stderr, r.stderr
        # The relay binds through the same code.
        r = _cli("relay", "--connect", first.endpoint, "--feed", first.feed, "--sync", f"ipc://{tmp_path}/r.sync",
                 "--duration", "2")
        assert r.returncode == 2 and f"cannot bind feed socket to {first.feed!r}: in use by a running process" \
            in r.stderr, r.stderr
        assert first.wait_ping()["node"] == "first"  # still reachable
    finally:
        assert first.stop() == 0, first.log()


def test_a_file_that_is_not_a_socket_is_never_replaced(tmp_path):
    victim = tmp_path / "notes.txt"
    victim.write_text("keep me\n")
    r = _cli(*_mock_run(f"ipc://{victim}", f"ipc://{tmp_path}/s", "--duration", "2"))
    assert r.returncode == 2 and "the path exists and is not a socket" in r.stderr, r.stderr
    assert victim.read_text() == "keep me\n"


# --------------------------------------------------------------------------- the address logged


def test_the_startup_line_names_the_address_bound_not_loopback(tmp_path):
    r = _cli("run", "--driver", "mock", "--mock-devices", "h100-sxm:idle", "--feed", "tcp://*:0",
             "--sync", "tcp://0.0.0.0:0", "--duration", "1", "--log-level", "info")
    assert r.returncode == 0, r.stderr
    (line,) = [ln for ln in r.stderr.splitlines() if "epoch" in ln and "publish every" in ln]
    assert "feed tcp://0.0.0.0:" in line and "sync tcp://0.0.0.0:" in line, line
    assert line.count("(all interfaces)") == 2 and "127.0.0.1" not in line, line

    r = _cli("relay", "--connect", f"ipc://{tmp_path}/none.feed,ipc://{tmp_path}/none.sync", "--feed", "tcp://*:0",
             "--sync", "tcp://127.0.0.1:0", "--duration", "1", "--log-level", "info")
    assert r.returncode == 0, r.stderr
    (line,) = [ln for ln in r.stderr.splitlines() if "epoch" in ln and "upstreams" in ln]
    assert "feed tcp://0.0.0.0:" in line and line.count("(all interfaces)") == 1, line
    assert "sync tcp://127.0.0.1:" in line, line  # loopback only where loopback was asked for

