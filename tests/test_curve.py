"""CURVE (PROTOCOL.md §6): with a server key and an allow-list, an admitted client gets the
feed and snapshots; a client with another key (or none) receives nothing, and the agent
goes on serving the admitted one. Also through a relay that is itself a CURVE client and
server, and from the CLI."""
from __future__ import annotations

import json
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


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    for name in ("server", "good", "bad"):
        zmq.auth.create_certificates(str(d), name)
    allow = d / "allow"
    allow.mkdir()
    (allow / "good.key").write_bytes((d / "good.key").read_bytes())
    return d


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
    assert r.returncode == 2 and "--curve-secret-key '' is not a file" in r.stderr, r.stderr
