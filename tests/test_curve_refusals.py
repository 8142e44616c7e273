"""CURVE refusals are said on both sides (PROTOCOL.md §6): the server logs the key it refused
(once per key per few minutes, however often it comes back), and the CLI, which then gets no
reply, says why as far as its handshake tells. A key file the server cannot read says so."""
from __future__ import annotations

import ctypes
import logging
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import zmq
import zmq.auth

from cuagent.client import Client
from cuagent.curve import ClientKeys, Rejections, no_reply_hint
from cuagent.exporters.top import waiting_line
from feed_support import WAIT_S, Proc, _env, wait_until

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cuagent.cli", *args], capture_output=True, text=True,
                          timeout=WAIT_S + 10, env=_env(), **kw)


def test_each_refused_key_is_named_once_a_period_and_a_flood_of_keys_is_counted(caplog):
    log = logging.getLogger("cuagent.test.rejections")
    caplog.set_level(logging.DEBUG, logger=log.name)
    r = Rejections(log, "allowed/", every_s=300.0, lines=3)
    for t in range(0, 600, 2):  # a client retrying every 2 s for 10 min
        r.refused(b"KEY-A", "10.0.0.7", float(t))
    said = [rec.getMessage() for rec in caplog.records]
    assert said == ["CURVE: refused client key KEY-A from 10.0.0.7: not in --curve-allow allowed/",
                    "CURVE: refused client key KEY-A from 10.0.0.7: not in --curve-allow allowed/; "
                    "refused 149 more time(s) since it was last named"]
    assert all(rec.levelno == logging.WARNING for rec in caplog.records)
    caplog.clear()
    for i in range(10):  # made-up keys, one per attempt: three named, the rest counted
        r.refused(f"MADE-UP-{i}".encode(), "", 1000.0 + i)
    r.refused(b"MADE-UP-LATER", "", 1400.0)
    said = [rec.getMessage() for rec in caplog.records]
    assert len(said) == 4 and said[-1].endswith("; 7 other refusal(s) not named (too many keys)"), said


def test_a_refused_key_is_logged_by_the_agent_and_explained_to_the_client(keys, tmp_path):
    feed, sync = f"ipc://{tmp_path}/agent.feed", f"ipc://{tmp_path}/agent.sync"
    agent = Proc(["run", "--driver", "mock", "--node", "secure", "--rate-hz", "100", "--publish-interval-ms", "100",
                  "--feed", feed, "--sync", sync, "--curve-secret-key", str(keys / "server.key_secret"),
                  "--curve-allow", str(keys / "allow"), "--log-level", "info"], feed, sync, tmp_path / "agent.log")
    server_key = str(keys / "server.key")
    try:
        good = Client([agent.endpoint], curve=ClientKeys.load(str(keys / "good.key_secret"), server_key))
        try:
            wait_until(lambda: "secure" in good.view.nodes, step=lambda: good.poll(0.05), what="an admitted client")
        finally:
            good.close()
        for _ in range(3):  # the same refused key, again and again
            r = _cli("snapshot", agent.endpoint, "--timeout", "1", "--curve-client-key", str(keys / "bad.key_secret"),
                     "--curve-server-key", server_key)
            assert r.returncode == 2 and r.stderr.splitlines() == [
                f"cuagent snapshot: error: no reply from {sync} within 1 s (the server refused this client's CURVE "
                "key: it is not in the server's --curve-allow directory)"], r.stderr
        r = _cli("snapshot", agent.endpoint, "--timeout", "1")  # no key: a mismatch, or just a broken handshake
        # Which of the two the client says depends on whether it read the agent's greeting in time.
        assert r.returncode == 2 and f"no reply from {sync} within 1 s (the " in r.stderr \
            and "require" in r.stderr and "CURVE" in r.stderr \
            and "give --curve-client-key and --curve-server-key" in r.stderr, r.stderr
        # ... and the agent says so too, though the handshake failed before its ZAP handler saw a key.
        _greet(sync, b"NULL")
        wait_until(lambda: f"sync {sync}: refused a client without CURVE keys: this node requires CURVE" in agent.log(),
                   what="the agent's line on a client without keys")
        # A client whose --curve-server-key is another server's: the agent cannot decrypt its hello.
        r = _cli("snapshot", agent.endpoint, "--timeout", "1", "--curve-client-key", str(keys / "good.key_secret"),
                 "--curve-server-key", str(keys / "bad.key"))
        assert r.returncode == 2, r.stderr
        server_public = zmq.auth.load_certificate(str(keys / "server.key"))[0].decode()
        wait_until(lambda: f"sync {sync}: a CURVE client's handshake could not be decrypted: its --curve-server-key "
                           f"is not this node's public key {server_public}" in agent.log(),
                   what="the agent's line on a wrong server key")
        # A client without keys (here top's) finds out why it hears nothing, and top says it.
        keyless = Client([agent.endpoint])
        try:
            wait_until(lambda: keyless.handshake_failures(), step=lambda: keyless.poll(0.1),
                       what="a keyless client's handshake failure")
            line = waiting_line(keyless)
        finally:
            keyless.close()
        assert line.startswith(f"waiting for agents at {feed} (nothing heard yet; {sync}: the "), line
        assert "CURVE" in line and "give --curve-client-key and --curve-server-key" in line, line
        # A relay whose upstream link has the refused key: its warning says what may be wrong.
        relay = Proc(["relay", "--name", "r", "--connect", agent.endpoint, "--feed", f"ipc://{tmp_path}/r.feed",
                      "--sync", f"ipc://{tmp_path}/r.sync", "--curve-client-key", str(keys / "bad.key_secret"),
                      "--curve-server-key", server_key], "", "", tmp_path / "relay.log")
        try:
            wait_until(lambda: f"no snapshot reply from {sync} within 2 s (down, unreachable, or refusing this "
                               "client's CURVE key); retrying with backoff" in relay.log(), what="the relay's warning")
            # Its retry watched the handshake: the next timeout says what failed.
            wait_until(lambda: f"the handshakes with {sync} fail: the server refused this client's CURVE key: it is "
                               "not in the server's --curve-allow directory" in relay.log(), what="the relay's cause")
        finally:
            assert relay.stop() == 0, relay.log()
        # A relay without keys: its handshakes fail too, and it says CURVE is what is missing.
        relay = Proc(["relay", "--name", "r0", "--connect", agent.endpoint, "--feed", f"ipc://{tmp_path}/r0.feed",
                      "--sync", f"ipc://{tmp_path}/r0.sync"], "", "", tmp_path / "relay0.log")
        try:
            wait_until(lambda: f"the handshakes with {sync} fail: the " in relay.log(), what="the keyless relay's cause")
        finally:
            assert relay.stop() == 0, relay.log()
        said = [line for line in relay.log().splitlines() if "the handshakes with" in line]
        assert len(said) == 1 and "require" in said[0] and "give --curve-client-key and --curve-server-key" in said[0], \
            relay.log()
        dead = f"ipc://{tmp_path}/nobody.sync"
        r = _cli("snapshot", f"ipc://{tmp_path}/nobody.feed,{dead}", "--timeout", "0.5")
        assert r.returncode == 2 and r.stderr.rstrip().endswith(
            f"no reply from {dead} within 0.5 s (is an agent or relay running there? --timeout waits longer)"), r.stderr
    finally:
        assert agent.stop() == 0, agent.log()
    bad = zmq.auth.load_certificate(str(keys / "bad.key"))[0].decode()
    said = [line for line in agent.log().splitlines() if "refused client key" in line]
    assert len(said) == 1, agent.log()
    assert f" WARNING cuagent.curve: CURVE: refused client key {bad} from " in said[0], said
    assert said[0].endswith(f": not in --curve-allow {keys / 'allow'}"), said


def _greet(endpoint: str, mechanism: bytes) -> None:
    """Open a ZMTP 3.0 handshake with ``mechanism`` at an ipc ``endpoint`` (RFC 23's greeting:
    signature, version 3.0, the mechanism's name padded to 20 bytes, as-server 0, filler) and
    read until the server hangs up."""
    greeting = b"\xff" + bytes(8) + b"\x7f" + b"\x03\x00" + mechanism.ljust(20, b"\0") + bytes(32)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(WAIT_S)
        s.connect(endpoint[len("ipc://"):])
        s.sendall(greeting)
        while s.recv(4096):
            pass


def test_an_agent_without_curve_says_when_a_client_comes_with_keys(keys, tmp_path):
    feed, sync = f"ipc://{tmp_path}/plain.feed", f"ipc://{tmp_path}/plain.sync"
    agent = Proc(["run", "--driver", "mock", "--node", "plain", "--rate-hz", "100", "--feed", feed, "--sync", sync],
                 feed, sync, tmp_path / "agent.log")
    try:
        r = _cli("snapshot", agent.endpoint, "--timeout", "1", "--curve-client-key", str(keys / "good.key_secret"),
                 "--curve-server-key", str(keys / "server.key"))
        assert r.returncode == 2 and "not use CURVE" in r.stderr, r.stderr  # which, as its handshake tells
        # The agent tells the mismatch only when it reads the client's greeting before the client,
        # having read the agent's, hangs up; a greeting that waits for the agent to hang up is told.
        _greet(sync, b"CURVE")
        wait_until(lambda: f"sync {sync}: refused a client using CURVE: this node runs without it" in agent.log(),
                   what="the agent's line on a client with keys")
    finally:
        assert agent.stop() == 0, agent.log()
    said = [line for line in agent.log().splitlines() if "refused a client using CURVE" in line]
    assert len(said) == 1 and " WARNING cuagent.handshake: " in said[0], agent.log()


def test_each_kind_of_failed_handshake_is_said_once_a_period_per_socket(caplog):
    from cuagent.node.handshakes import HandshakeFailures

    log = logging.getLogger("cuagent.test.handshakes")
    caplog.set_level(logging.DEBUG, logger=log.name)
    failures = HandshakeFailures(b"SERVER-PUBLIC", every_s=300.0, logger=log)
    mismatch, crypto = zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH, zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC
    for t in range(0, 601, 2):  # a client without keys retrying every 2 s for 10 min, at the feed
        failures.failed("feed tcp://0.0.0.0:7710", zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, mismatch, float(t))
    failures.failed("sync tcp://0.0.0.0:7711", zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, mismatch, 1.0)  # its own line
    failures.failed("sync tcp://0.0.0.0:7711", zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, crypto, 1.0)
    failures.failed("sync tcp://0.0.0.0:7711", zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, 0x10000099, 1.0)
    failures.failed("feed tcp://0.0.0.0:7710", zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, 104, 1.0)  # a TCP probe
    failures.failed("feed tcp://0.0.0.0:7710", zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400, 1.0)  # ZAP's: named there
    said = [(rec.levelname, rec.getMessage()) for rec in caplog.records]
    no_keys = ("feed tcp://0.0.0.0:7710: refused a client without CURVE keys: this node requires CURVE; give the "
               "client --curve-client-key and --curve-server-key (this node's public key) (libzmq does not name "
               "the peer)")
    assert said[:3] == [("WARNING", no_keys), ("WARNING", no_keys + "; 149 more since this was last said"),
                        ("WARNING", no_keys + "; 149 more since this was last said")], said
    assert said[3][1].startswith("sync tcp://0.0.0.0:7711: refused a client without CURVE keys"), said
    assert said[4][1].startswith("sync tcp://0.0.0.0:7711: a CURVE client's handshake could not be decrypted: "
                                 "its --curve-server-key is not this node's public key SERVER-PUBLIC"), said
    assert said[5][1].startswith("sync tcp://0.0.0.0:7711: a peer broke the ZMTP handshake (protocol error "
                                 "0x10000099)"), said
    assert said[6][0] == "DEBUG" and "TCP health check or port scan" in said[6][1], said
    assert len(said) == 7, said


def test_a_watch_that_cannot_start_is_said_and_leaves_nothing_open(caplog):
    from cuagent.node.handshakes import HandshakeFailures, HandshakeWatch

    ctx = zmq.Context()
    good = ctx.socket(zmq.ROUTER)
    good.bind("tcp://127.0.0.1:*")
    gone = ctx.socket(zmq.ROUTER)
    gone.close()  # watching it fails after the first socket's monitor was made
    with caplog.at_level(logging.WARNING, logger="cuagent.handshake"):
        assert HandshakeWatch.start([("feed", good), ("sync", gone)], HandshakeFailures(None)) is None
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["failed handshakes will not be logged"]
    good.close()
    term = threading.Thread(target=ctx.term, daemon=True)  # ends only once every socket is closed,
    term.start()  # the first socket's monitor included
    term.join(WAIT_S)
    assert not term.is_alive(), "a monitor socket was left open"


def test_the_no_reply_hint_reads_the_handshake_events():
    def hint(*events: int, curve: bool = False, value: int = 0) -> str:
        return no_reply_hint([(e, value) for e in events], curve)

    assert hint().startswith("is an agent or relay running there?")  # nothing accepted the connection
    assert hint(zmq.EVENT_CONNECT_DELAYED, zmq.EVENT_CONNECT_RETRIED).startswith("is an agent or relay running")
    assert hint(zmq.EVENT_CONNECTED, zmq.EVENT_HANDSHAKE_FAILED_AUTH, curve=True).startswith(
        "the server refused this client's CURVE key")
    mismatch = zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
    assert hint(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, value=mismatch).startswith("the server requires CURVE")
    assert hint(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, value=mismatch, curve=True).startswith(
        "the server does not use CURVE")
    # The server closed before the client read its greeting: the mechanism is not known.
    assert "may require CURVE" in hint(zmq.EVENT_CONNECTED, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
    assert "--curve-server-key is not its public key" in hint(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, curve=True)
    assert hint(zmq.EVENT_CONNECTED, zmq.EVENT_HANDSHAKE_SUCCEEDED).startswith("connected: the server is up")
    # A connection reset once, then a handshake that went through: the server is there.
    assert hint(zmq.EVENT_CONNECTED, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, zmq.EVENT_CONNECTED,
                zmq.EVENT_HANDSHAKE_SUCCEEDED).startswith("connected: the server is up")
    assert "refusing this client's CURVE key" in hint(zmq.EVENT_CONNECTED, curve=True)


def _without_dac_override() -> None:
    """Run as root, the child is still held to file modes (root reads a 000 file otherwise)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, out of the bounding set
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.mark.parametrize("unreadable", ["secret", "allow", "secret's folder"])
def test_a_key_file_or_allow_dir_the_agent_cannot_read_is_named_so(keys, tmp_path, unreadable):
    # A folder on the way that this user may not search hides the file: still "cannot read",
    # not "is not a file" (os.path.isfile says False for both).
    (tmp_path / "private").mkdir()
    secret, allow = tmp_path / "private" / "agent.key_secret", tmp_path / "allow"
    secret.write_bytes((keys / "server.key_secret").read_bytes())
    secret.chmod(0o600)
    allow.mkdir()
    (allow / "good.key").write_bytes((keys / "good.key").read_bytes())
    target: Path = {"secret": secret, "allow": allow, "secret's folder": secret.parent}[unreadable]
    target.chmod(0)
    kw = {}
    if os.getuid() == 0:
        try:
            subprocess.run([sys.executable, "-c", ""], preexec_fn=_without_dac_override, check=True)
        except (subprocess.SubprocessError, OSError):
            pytest.skip("root without CAP_SETPCAP: cannot be held to file modes")
        kw["preexec_fn"] = _without_dac_override
    try:
        r = _cli("run", "--driver", "mock", "--feed", f"ipc://{tmp_path}/f", "--sync", f"ipc://{tmp_path}/s",
                 "--curve-secret-key", str(secret), "--curve-allow", str(allow), "--duration", "1", **kw)
    finally:
        target.chmod(0o700)
    flag, named = ("--curve-allow", allow) if unreadable == "allow" else ("--curve-secret-key", secret)
    assert r.returncode == 2 and r.stderr.splitlines() == [
        f"cuagent run: error: cannot read {flag} {str(named)!r}: permission denied"], r.stderr
