"""What an operator runs into: a second agent on the first one's ipc endpoints, the address a
node says it listens on, a GPU that stalls, SIGHUP, IPv6 literal endpoints. Real `cuagent`
processes on real sockets; every wait is bounded."""

from __future__ import annotations

import logging
import os
import pty
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest
import zmq

from cuagent import ipv6
from cuagent.node.missed_windows import MissedWindows
from feed_support import WAIT_S, Proc, Recorder, _env, request, start_agent, start_relay, wait_until


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


# --------------------------------------------------------------------------- missed windows in the log


def test_a_stalling_gpu_is_named_in_the_log(tmp_path):
    # Device 1 stalls one read for 500 ms every second: its windows go missing, and the log says so.
    feed, sync = f"ipc://{tmp_path}/slow.feed", f"ipc://{tmp_path}/slow.sync"
    agent = Proc(["run", "--driver", "mock", "--mock-devices", "h100-sxm:training,h100-sxm:training",
                  "--mock-faults", "1:slow=500ms/1s", "--node", "node-slow", "--feed", feed, "--sync", sync],
                 feed, sync, tmp_path / "slow.log")
    try:
        agent.wait_ping()
        wait_until(lambda: "device mock-1 missed" in agent.log(), step=lambda: time.sleep(0.1),
                   what=f"a warning about mock-1's missed windows:\n{agent.log()}")
    finally:
        assert agent.stop() == 0, agent.log()
    warnings = [ln for ln in agent.log().splitlines() if "device mock-1 missed" in ln]
    assert all(" WARNING " in ln and "without a sample" in ln for ln in warnings), warnings


def _clock_log(caplog, calls) -> list[str]:
    with caplog.at_level(logging.INFO, logger="cuagent.agent"):
        for call in calls:
            call()
    out = [r.getMessage() for r in caplog.records]
    caplog.clear()
    return out


def test_missed_windows_are_reported_at_most_once_per_interval_and_recovery_once(caplog):
    m = MissedWindows(window_s=0.1, report_every_s=10.0)
    # A window every 0.1 s; device "g" misses 19 at t=3.0 (a 2 s stall), again at 6.0 and 9.0.
    lines = _clock_log(caplog, [lambda: m.window("g", 0, 0, 0.9), lambda: m.window("g", 19, 0, 3.0)])
    assert lines == ["device g missed 19 state window(s) in the last 2.1 s (19 without a sample: its reads "
                     "stalled or failed; 0 the agent took too late); clients see them as a gap in its seqs"]
    # Within the interval: counted, not logged.
    assert _clock_log(caplog, [lambda: m.window("g", 19, 0, 6.0), lambda: m.window("g", 18, 1, 9.0),
                               lambda: m.window("g", 0, 0, 12.9)]) == []
    # The interval over: one line with all of them, over the span since the last line.
    (line,) = _clock_log(caplog, [lambda: m.window("g", 0, 0, 13.0), lambda: m.window("g", 0, 0, 13.1)])
    assert line.startswith("device g missed 38 state window(s) in the last 10.0 s (37 without a sample") and \
        "; 1 the agent took too late)" in line, line
    # No miss for the interval after the last one: recovered, said once.
    assert _clock_log(caplog, [lambda: m.window("g", 0, 0, 18.9)]) == []
    assert _clock_log(caplog, [lambda: m.window("g", 0, 0, 19.0), lambda: m.window("g", 0, 0, 30.0)]) == [
        "device g recovered: no state window missed in the last 10 s"]
    # A new stall after recovery is reported at once again.
    assert len(_clock_log(caplog, [lambda: m.window("g", 3, 0, 31.0)])) == 1


def test_a_device_whose_windows_stop_is_reported_before_they_resume(caplog):
    m = MissedWindows(window_s=0.1, report_every_s=10.0)
    m.window("a", 0, 0, 1.0)
    m.window("b", 0, 0, 1.0)
    assert _clock_log(caplog, [lambda: m.check_silent(10.9, ["a", "b"])]) == []
    # Both silent; "b" is lost (not live): its events say why, so only "a" is named, once.
    assert _clock_log(caplog, [lambda: m.check_silent(11.0, ["a"]), lambda: m.check_silent(12.0, ["a"])]) == [
        "device a: no state window for 10 s (its reads stall or fail)"]
    # Windows resume 30 s after the last: the whole stall is reported with its span.
    (line,) = _clock_log(caplog, [lambda: m.window("a", 299, 0, 31.0)])
    assert line.startswith("device a missed 299 state window(s) in the last 30.0 s"), line
    m.flush(32.0)  # nothing pending: nothing said
    # What is pending when the agent stops is reported then.
    m.window("a", 4, 0, 33.0)
    (line,) = _clock_log(caplog, [lambda: m.flush(34.0)])
    assert line.startswith("device a missed 4 state window(s) in the last 3.0 s"), line


def test_a_device_that_never_publishes_a_window_is_reported_silent(caplog):
    # A device failing every read from the start (or from a topology change on) publishes no
    # window at all: its silence counts from when the agent first follows it.
    m = MissedWindows(window_s=0.1, report_every_s=10.0)
    assert _clock_log(caplog, [lambda: m.check_silent(1.0, ["c"]), lambda: m.check_silent(10.9, ["c"])]) == []
    assert _clock_log(caplog, [lambda: m.check_silent(11.0, ["c"])]) == [
        "device c: no state window for 10 s (its reads stall or fail)"]


# --------------------------------------------------------------------------- SIGHUP


def test_sighup_is_logged_and_the_agent_and_relay_keep_running(tmp_path):
    agent = start_agent(tmp_path, "node-h", "h100-sxm:idle")
    relay = start_relay(tmp_path, "relay-h", agent.endpoint)
    try:
        for proc in (agent, relay):
            proc.popen.send_signal(signal.SIGHUP)
            wait_until(lambda: "received SIGHUP" in proc.log() or proc.popen.poll() is not None,
                       what="the SIGHUP line")
            assert proc.popen.poll() is None, f"exited {proc.popen.returncode} on SIGHUP:\n{proc.log()}"
            (line,) = [ln for ln in proc.log().splitlines() if "SIGHUP" in ln]
            assert "reloading is not supported" in line and "changes apply on restart" in line, line
            proc.wait_ping()  # still serving
    finally:
        assert relay.stop() == 0, relay.log()
        assert agent.stop() == 0, agent.log()


def test_an_agent_whose_terminal_closes_stops(tmp_path):
    # From a terminal, SIGHUP is a hangup (the ssh session or window closed): ignored, the agent
    # would live on orphaned, holding its ports. Here the agent is a session leader with a pty
    # as its controlling terminal, and the pty's master closes: the kernel sends the SIGHUP.
    master, slave = pty.openpty()
    tty = os.ttyname(slave)
    os.close(slave)

    def own_terminal() -> None:
        os.setsid()
        os.close(os.open(tty, os.O_RDWR))  # a session leader opening a tty acquires it

    feed, sync = f"ipc://{tmp_path}/t.feed", f"ipc://{tmp_path}/t.sync"
    log = tmp_path / "agent.log"
    with open(log, "wb") as out:
        popen = subprocess.Popen([sys.executable, "-m", "cuagent.cli", "run", "--driver", "mock", "--node", "node-t",
                                  "--mock-devices", "h100-sxm:idle", "--feed", feed, "--sync", sync],
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=_env(),
                                 preexec_fn=own_terminal)
    try:
        wait_until(lambda: "feed ipc://" in log.read_text() or popen.poll() is not None, what="the agent's start")
        os.close(master)
        master = -1
        assert popen.wait(timeout=WAIT_S) == 0, log.read_text()
        assert "received SIGHUP: stopping" in log.read_text()
    finally:
        if master >= 0:
            os.close(master)
        if popen.poll() is None:
            popen.kill()
            popen.wait()


# --------------------------------------------------------------------------- IPv6 literals


@pytest.mark.parametrize("endpoint, literal", [
    ("tcp://[::1]:7710", True), ("tcp://[::]:7710", True), ("tcp://[fe80::1%eth0]:7710", True),
    ("tcp://[::1]:*", True), ("tcp://127.0.0.1:7710;[::1]:7710", True),
    ("tcp://*:7710", False), ("tcp://127.0.0.1:7710", False), ("tcp://[127.0.0.1]:7710", False),
    ("tcp://localhost:7710", False), ("ipc:///tmp/[::1]:1", False), ("tcp://[nonsense]:1", False),
])
def test_ipv6_literals_are_recognised(endpoint, literal):
    assert ipv6.is_literal(endpoint) is literal


def test_the_ipv6_option_is_off_again_for_the_next_endpoint_that_is_no_literal():
    # A relay connects one XSUB to every upstream. Left on after an IPv6 literal, ZMQ_IPV6 makes
    # libzmq resolve the next upstream's host name to its IPv6 address first (localhost to ::1
    # where /etc/hosts says so), where an agent bound to * or an IPv4 address is not listening:
    # that upstream is refused for good, in silence.
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.XSUB)
        seen = []
        for endpoint in ("tcp://[::1]:7710", "tcp://localhost:7720", "tcp://[::1]:7730", "tcp://127.0.0.1:7740"):
            ipv6.enable_for(sock, endpoint)
            seen.append(sock.getsockopt(zmq.IPV6))
        sock.close(0)
        assert seen == [1, 0, 1, 0]
    finally:
        ctx.term()


def _free_ipv6_port() -> int:
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
    except OSError as e:
        pytest.skip(f"no IPv6 loopback here: {e}")
    with s:
        return int(s.getsockname()[1])


def test_an_agent_binds_ipv6_literals_and_a_relay_connects_to_them(tmp_path):
    feed, sync = f"tcp://[::1]:{_free_ipv6_port()}", f"tcp://[::1]:{_free_ipv6_port()}"
    agent = Proc(["run", "--driver", "mock", "--mock-devices", "h100-sxm:idle", "--node", "node-v6",
                  "--feed", feed, "--sync", sync], feed, sync, tmp_path / "v6.log")
    relay = None
    try:
        # Our own peer needs ZMQ_IPV6 as well to reach it.
        wait_until(lambda: _ping_v6(sync) is not None or agent.popen.poll() is not None, timeout=WAIT_S,
                   what="a ping over IPv6")
        assert agent.popen.poll() is None, agent.log()
        assert msgpack.unpackb(_ping_v6(sync))["node"] == "node-v6"
        # The relay's upstream feed connection over IPv6: the agent's states come through.
        relay = start_relay(tmp_path, "relay-v6", f"{feed},{sync}")
        rec = Recorder(relay.feed, b"cua1/state/node-v6/")
        try:
            wait_until(lambda: bool(rec.frames), step=lambda: rec.drain(100) and None,
                       what=f"node-v6's states through the relay:\n{relay.log()}")
        finally:
            rec.close()
    finally:
        if relay is not None:
            assert relay.stop() == 0, relay.log()
        assert agent.stop() == 0, agent.log()


def _ping_v6(sync: str) -> bytes | None:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IPV6, 1)
    sock.connect(sync)
    try:
        sock.send(msgpack.packb({"op": "ping"}))
        return sock.recv() if sock.poll(500) else None
    finally:
        sock.close(0)


def test_clients_and_relay_joins_reach_ipv6_literal_endpoints(tmp_path):
    from cuagent.client import Client

    feed, sync = f"tcp://[::1]:{_free_ipv6_port()}", f"tcp://[::1]:{_free_ipv6_port()}"
    # topo only at start (and in snapshots): a relay that has it got it by joining (sync), not
    # from the feed passing by.
    agent = Proc(["run", "--driver", "mock", "--mock-devices", "h100-sxm:idle", "--node", "node-v6",
                  "--feed", feed, "--sync", sync, "--topo-interval-s", "3600"], feed, sync, tmp_path / "v6.log")
    relay = client = None
    try:
        wait_until(lambda: _ping_v6(sync) is not None or agent.popen.poll() is not None, what="a ping over IPv6")
        assert agent.popen.poll() is None, agent.log()
        # cuagent snapshot (the sync DEALER) and a Client (SUB and DEALER) over IPv6.
        r = _cli("snapshot", f"{feed},{sync}", "--ping")
        assert r.returncode == 0 and '"node": "node-v6"' in r.stdout, r.stderr
        client = Client([f"{feed},{sync}"])
        assert client.wait_ready(WAIT_S), agent.log()
        wait_until(lambda: "node-v6" in client.view.nodes and client.view.nodes["node-v6"].heartbeat is not None,
                   step=lambda: client.poll(0.05) and None, what="node-v6's heartbeat through a Client")
        # The relay's join (its upstream sync DEALER) brings the topo.
        relay = start_relay(tmp_path, "relay-v6", f"{feed},{sync}")

        def relay_topo() -> bool:
            reply = _relay_request(relay.sync)
            return reply is not None and any(m[0] == "cua1/topo/node-v6/" for m in msgpack.unpackb(reply)["messages"])

        wait_until(relay_topo, step=lambda: time.sleep(0.1), what=f"node-v6's topo in the relay:\n{relay.log()}")
    finally:
        if client is not None:
            client.close()
        if relay is not None:
            assert relay.stop() == 0, relay.log()
        assert agent.stop() == 0, agent.log()


def _relay_request(sync: str) -> bytes | None:
    from feed_support import request

    return request(sync, {"op": "snapshot", "prefix": "cua1/topo/"}, timeout=0.5)


def test_a_client_that_never_reads_its_replies_pins_only_a_few():
    # A client has one request in flight; one that sends many and reads none held up to 1000
    # replies of ~130 KB each in the agent (OOM-killed under its 512M limit). The sync socket
    # now queues SYNC_SNDHWM (16) per connection and drops the rest for that client alone.
    from cuagent import wire
    from cuagent.node import sockets

    ctx = zmq.Context()
    server = sockets.bind_sync(ctx, "tcp://127.0.0.1:*")
    server.setsockopt(zmq.SNDBUF, 4096)  # (for the connection below: little held in the kernel)
    hog = ctx.socket(zmq.DEALER)
    hog.setsockopt(zmq.RCVHWM, 1)
    hog.setsockopt(zmq.RCVBUF, 4096)
    hog.setsockopt(zmq.LINGER, 0)
    hog.connect(server.getsockopt(zmq.LAST_ENDPOINT).decode())
    reply = b"x" * 200_000
    try:
        for _ in range(100):
            hog.send(wire.snapshot_request("cua1/"))
        answered = 0
        deadline = time.monotonic() + WAIT_S
        stats: dict[str, int] = {}
        while answered < 100 and time.monotonic() < deadline:
            if server.poll(100):
                before = stats.get("requests", 0)
                sockets.serve_requests(server, lambda req: reply, stats)
                answered += stats.get("requests", 0) - before
        assert answered == 100, stats  # every request was answered (or its reply dropped)
        got = 0
        while hog.poll(1000):  # (nothing more comes once the server's queue is drained)
            hog.recv()
            got += 1
        # The server's queue of SYNC_SNDHWM, the client's own, and what the pipes between hold: a
        # few tens (every one of the 100 with the old 1000).
        assert 1 <= got <= 50, got
        hog.send(wire.snapshot_request("cua1/"))  # the connection still works
        assert server.poll(WAIT_S * 1000)
        sockets.serve_requests(server, lambda req: b"ok", stats)
        assert hog.poll(WAIT_S * 1000) and hog.recv() == b"ok"
    finally:
        hog.close(0)
        server.close(0)
        ctx.term()


def test_serving_commands_raise_their_open_file_limit_to_the_hard_limit(tmp_path):
    # libzmq aborts an agent whose ipc listener finds no descriptor to accept with; a soft limit
    # of 1024 is soon met by connections held open. run/relay/exporter/extender/fleet raise it.
    import resource

    def low_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096))

    args = [sys.executable, "-m", "cuagent.cli", "run", "--driver", "mock", "--feed", f"ipc://{tmp_path}/f",
            "--sync", f"ipc://{tmp_path}/s", "--duration", str(WAIT_S)]
    proc = subprocess.Popen(args, env=_env(), preexec_fn=low_soft_limit, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        def soft_limit() -> str:
            lines = Path(f"/proc/{proc.pid}/limits").read_text().splitlines()
            return next(line.split()[3] for line in lines if line.startswith("Max open files"))
        wait_until(lambda: soft_limit() == "4096", what="the agent's soft open-file limit raised to the hard one")
        # Up (its stop signals installed) before it is stopped.
        wait_until(lambda: request(f"ipc://{tmp_path}/s", {"op": "ping"}, timeout=0.5) is not None,
                   what="the agent's first ping")
    finally:
        proc.terminate()
        assert proc.wait(WAIT_S) == 0


def test_a_client_that_reads_every_reply_at_once_never_loses_one():
    # A small SYNC_SNDHWM must cost a reading client nothing: with it, a reply could meet a
    # queue that only seemed full (libzmq tells the writer what the peer read by commands it
    # processes at most once a millisecond) and be dropped; a REQ client then hung (CI, once).
    import threading as _threading

    from cuagent.node import sockets

    ctx = zmq.Context()
    server = sockets.bind_sync(ctx, "tcp://127.0.0.1:*")
    endpoint = server.getsockopt(zmq.LAST_ENDPOINT).decode()
    stop = _threading.Event()
    stats: dict[str, int] = {}

    def serve() -> None:
        while not stop.is_set():
            if server.poll(50):
                sockets.serve_requests(server, lambda req: b"pong", stats)

    thread = _threading.Thread(target=serve, daemon=True)
    thread.start()
    client = ctx.socket(zmq.REQ)
    client.setsockopt(zmq.LINGER, 0)
    client.connect(endpoint)
    try:
        for i in range(500):
            client.send(msgpack.packb({"op": "ping"}))
            assert client.poll(WAIT_S * 1000), f"no reply to request {i}: {stats}"
            assert client.recv() == b"pong"
        assert stats.get("dropped_replies", 0) == 0, stats
    finally:
        stop.set()
        thread.join(WAIT_S)
        client.close(0)
        server.close(0)
        ctx.term()


def test_a_read_stuck_in_the_backend_does_not_hold_up_a_stop(tmp_path):
    # A GPU off the bus can hold a vendor read for tens of seconds. The agent stops on SIGTERM
    # within its stop wait, says why it did not wait for the sampler, and its sockets go first
    # (was: the whole read waited out, here a minute, past systemd's SIGKILL at 10 s).
    feed, sync = f"ipc://{tmp_path}/stuck.feed", f"ipc://{tmp_path}/stuck.sync"
    agent = Proc(["run", "--driver", "mock", "--mock-faults", "0:slow=60s/1s", "--node", "node-stuck",
                  "--feed", feed, "--sync", sync], feed, sync, tmp_path / "stuck.log")
    try:
        agent.wait_ping()
        time.sleep(1.5)  # past the fault's first second: the sampler is in the 60 s read
    finally:
        assert agent.stop() == 0, agent.log()
    assert "the sampler is still in a backend read" in agent.log(), agent.log()


def test_the_extender_and_fleet_take_sighup_as_the_agent_does_and_say_when_they_stop(tmp_path):
    # Were: killed by SIGHUP (exit 129, nothing logged); the extender's stop said nothing.
    agent = start_agent(tmp_path, "node-x", "h100-sxm:idle")
    ext = Proc(["extender", "--connect", agent.endpoint, "--listen", "127.0.0.1:0", "--log-level", "info"],
               "", "", tmp_path / "extender.log")
    fleet = Proc(["fleet", "--nodes", "2", "--gpus", "1", "--rate-hz", "10", "--feed", f"ipc://{tmp_path}/f.feed",
                  "--sync", f"ipc://{tmp_path}/f.sync", "--log-level", "info"], f"ipc://{tmp_path}/f.feed",
                 f"ipc://{tmp_path}/f.sync", tmp_path / "fleet.log")
    try:
        wait_until(lambda: "extender listening on" in ext.log(), what=f"the extender's start:\n{ext.log()}")
        assert f"following {agent.sync}; cuagent " in ext.log(), ext.log()
        fleet.wait_ping()
        for proc in (ext, fleet):
            proc.popen.send_signal(signal.SIGHUP)
            wait_until(lambda: "received SIGHUP" in proc.log() or proc.popen.poll() is not None,
                       what="the SIGHUP line")
            assert proc.popen.poll() is None, f"exited {proc.popen.returncode} on SIGHUP:\n{proc.log()}"
    finally:
        assert ext.stop() == 0, ext.log()
        assert fleet.stop() == 0, fleet.log()
        agent.stop()
    assert "extender stopped; answered since start: prioritize 0, filter 0" in ext.log(), ext.log()


def test_watch_ends_on_sigterm_as_on_ctrl_c(tmp_path):
    # Was: killed by the signal (exit 143), its closing line lost (`timeout 10 cuagent watch`).
    watch = subprocess.Popen([sys.executable, "-m", "cuagent.cli", "watch", f"ipc://{tmp_path}/none.feed,"
                              f"ipc://{tmp_path}/none.sync"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=_env())
    try:
        # Its notice that nothing came yet: its loop runs (a signal before would find no handler).
        notice = watch.stderr.readline() if watch.stderr is not None else ""
        assert "yet (is an agent or relay running there?)" in notice, notice
        watch.send_signal(signal.SIGTERM)
        out, err = watch.communicate(timeout=WAIT_S)
    finally:
        if watch.poll() is None:
            watch.kill()
    assert watch.returncode == 0, (watch.returncode, err)
    assert f"cuagent watch: no message from ipc://{tmp_path}/none.feed in " in err, err
