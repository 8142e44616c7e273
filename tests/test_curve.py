"""CURVE (PROTOCOL.md §6): with a server key and an allow-list, an admitted client gets the
feed and snapshots; a client with another key (or none) receives nothing, and the agent
goes on serving the admitted one. Also through a relay that is itself a CURVE client and
server, and from the CLI."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq
import zmq.auth

from cuagent.client import Client
from cuagent.curve import ClientKeys, CurveError, ServerKeys
from feed_support import WAIT_S, Proc, _env, wait_until

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")


def _client(keys: Path, name: str, endpoint: str) -> Client:
    return Client([endpoint], curve=ClientKeys.load(str(keys / f"{name}.key_secret"), str(keys / "server.key")))


def _secure(tmp: Path, keys: Path, args: list[str], name: str) -> Proc:
    feed, sync = f"ipc://{tmp}/{name}.feed", f"ipc://{tmp}/{name}.sync"
    server = ["--curve-secret-key", str(keys / "server.key_secret"), "--curve-allow", str(keys / "allow")]
    return Proc([*args, "--feed", feed, "--sync", sync, *server, "--log-level", "info"], feed, sync, tmp / f"{name}.log")


def _states(client: Client) -> int:
    return sum(dv.seq for dv in client.view.devices() if dv.state is not None)


def _wait_state(client: Client, proc: Proc, above: int = 0) -> int:
    wait_until(lambda: _states(client) > above, step=lambda: client.poll(0.05),
               what=f"state through CURVE (log: {proc.log_path})")
    return _states(client)


@pytest.fixture(scope="module")
def agent(tmp_path_factory, keys):
    tmp = tmp_path_factory.mktemp("curve")
    proc = _secure(tmp, keys, ["run", "--driver", "mock", "--mock-devices", "h100-sxm:training", "--node", "secure",
                               "--rate-hz", "200", "--publish-interval-ms", "50"], "agent")
    yield proc
    assert proc.stop() == 0, proc.log()


def test_admitted_client_gets_state_and_others_get_nothing(agent, keys):
    good = _client(keys, "good", agent.endpoint)
    try:
        seen = _wait_state(good, agent)
        # A client whose key is not in the allow-list, and one without CURVE at all.
        ctx = zmq.Context.instance()
        bad_keys = ClientKeys.load(str(keys / "bad.key_secret"), str(keys / "server.key"))
        intruders = []
        for curve in (bad_keys, None):
            sub, dealer = ctx.socket(zmq.SUB), ctx.socket(zmq.DEALER)
            for s in (sub, dealer):
                s.setsockopt(zmq.LINGER, 0)
                if curve is not None:
                    curve.apply(s)
            sub.setsockopt(zmq.SUBSCRIBE, b"")
            sub.connect(agent.feed)
            dealer.connect(agent.sync)
            dealer.send(b"\x81\xa2op\xa4ping", zmq.NOBLOCK)  # {"op": "ping"}; queued until a handshake
            intruders += [sub, dealer]
        poller = zmq.Poller()
        for s in intruders:
            poller.register(s, zmq.POLLIN)
        deadline = time.monotonic() + 1.5  # the agent publishes every 50 ms meanwhile
        while time.monotonic() < deadline:
            assert not poller.poll(100), "a client without an admitted key received something"
            good.poll(0)
        for s in intruders:
            s.close(0)
        # The admitted client kept receiving all along and still does.
        assert _wait_state(good, agent, seen) > seen
        assert good.stats.decode_errors == 0
    finally:
        good.close()


def test_relay_as_curve_client_and_server_and_cli_snapshot(agent, keys, tmp_path):
    relay = _secure(tmp_path, keys, ["relay", "--name", "secure-relay", "--connect", agent.endpoint,
                                     "--curve-client-key", str(keys / "good.key_secret"),
                                     "--curve-server-key", str(keys / "server.key")], "relay")
    try:
        good = _client(keys, "good", relay.endpoint)
        try:
            _wait_state(good, relay)
            assert [dv.node for dv in good.view.devices()] == ["secure"]
        finally:
            good.close()
        out = subprocess.run(
            [sys.executable, "-m", "cuagent.cli", "snapshot", relay.endpoint, "--compact",
             "--curve-client-key", str(keys / "good.key_secret"), "--curve-server-key", str(keys / "server.key")],
            capture_output=True, text=True, timeout=WAIT_S, env=_env())
        assert out.returncode == 0, out.stderr
        snap = json.loads(out.stdout)
        assert any(m["topic"].startswith("cua1/state/secure/") for m in snap["messages"])
    finally:
        assert relay.stop() == 0, relay.log()


def test_key_files_are_checked(keys, tmp_path):
    with pytest.raises(CurveError, match="no secret key"):
        ServerKeys.load(str(keys / "server.key"), str(keys / "allow"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CurveError, match="holds no public key"):
        ServerKeys.load(str(keys / "server.key_secret"), str(tmp_path / "empty"))
    with pytest.raises(CurveError, match="both"):
        ClientKeys.from_args(str(keys / "good.key_secret"), None)


@pytest.mark.parametrize("command", [
    ["run", "--driver", "mock", "--rate-hz", "100", "--publish-interval-ms", "50"],
    ["relay", "--connect", "ipc:///nonexistent/upstream,ipc:///nonexistent/upstream-sync"],
])
def test_an_empty_secret_key_path_fails_instead_of_disabling_curve(keys, tmp_path, command):
    # `--curve-secret-key "$UNSET"`: an empty path is an unusable key file, not "no CURVE";
    # a server that then ran unencrypted would fail open.
    r = subprocess.run(
        [sys.executable, "-m", "cuagent.cli", *command, "--feed", f"ipc://{tmp_path}/f", "--sync", f"ipc://{tmp_path}/s",
         "--curve-secret-key", "", "--curve-allow", str(keys / "allow"), "--duration", "1"],
        capture_output=True, text=True, timeout=WAIT_S + 10, env=_env())
    assert r.returncode == 2 and "cannot read --curve-secret-key '': no such file or directory" in r.stderr, r.stderr


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cuagent.cli", *args], capture_output=True, text=True,
                          timeout=WAIT_S + 10, env=_env())


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
@pytest.mark.parametrize("side", ["server", "client"])
def test_a_secret_key_others_can_read_or_write_is_refused(keys, tmp_path, mode, side):
    # zmq.auth.create_certificates leaves the secret at the umask's mode (0644 usually): such a
    # key was accepted silently. Now refused, as OpenSSH refuses an unprotected private key.
    loose = tmp_path / "loose.key_secret"
    loose.write_bytes((keys / f"{side if side == 'server' else 'good'}.key_secret").read_bytes())
    loose.chmod(mode)
    if side == "server":
        r = _cli("run", "--driver", "mock", "--feed", f"ipc://{tmp_path}/f", "--sync", f"ipc://{tmp_path}/s",
                 "--curve-secret-key", str(loose), "--curve-allow", str(keys / "allow"), "--duration", "1")
        flag = "--curve-secret-key"
    else:
        r = _cli("snapshot", f"ipc://{tmp_path}/f,ipc://{tmp_path}/s", "--timeout", "0.2",
                 "--curve-client-key", str(loose), "--curve-server-key", str(keys / "server.key"))
        flag = "--curve-client-key"
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.splitlines()
    assert f"{flag} {str(loose)!r} has mode {mode:04o}" in line and "chmod 600" in line, line


def test_cuagent_keys_writes_the_secret_0600_and_never_replaces_a_key(tmp_path):
    d = tmp_path / "new" / "keys"
    r = _cli("keys", str(d), "agent", "scheduler")
    assert r.returncode == 0, r.stderr
    for name in ("agent", "scheduler"):
        assert stat.S_IMODE(os.stat(d / f"{name}.key_secret").st_mode) == 0o600
        assert stat.S_IMODE(os.stat(d / f"{name}.key").st_mode) == 0o644
        public, secret = zmq.auth.load_certificate(str(d / f"{name}.key_secret"))
        assert secret and zmq.auth.load_certificate(str(d / f"{name}.key"))[0] == public
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert sorted(os.listdir(d)) == ["agent.key", "agent.key_secret", "scheduler.key", "scheduler.key_secret"]
    before = (d / "agent.key_secret").read_bytes()
    r = _cli("keys", str(d), "agent")
    assert r.returncode == 2 and "exists: not replacing a key" in r.stderr, r.stderr
    assert (d / "agent.key_secret").read_bytes() == before
    ServerKeys.load(str(d / "agent.key_secret"), str(d))  # what it wrote is what the agent accepts
