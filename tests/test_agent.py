"""`cuagent run` as a real subprocess: conformance of everything it emits, the sync socket
under garbage, clean stops, and configuration errors."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feed_support import WAIT_S, Proc, Recorder, _env, request, start_agent
from protocol_checker import FeedChecker


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("agent")
    # Two vendors, so both unit hierarchies (gpc/tpc/sm, xcd/se/cu) go through the checker;
    # a short topo interval so re-published topo is checked too.
    proc = start_agent(tmp, "node-a", "h100-sxm:thrashing,mi300x:training", "--topo-interval-s", "0.5")
    yield proc
    assert proc.stop() == 0, proc.log()


def test_everything_the_agent_emits_follows_the_protocol(agent):
    rec = Recorder(agent.feed)
    checker = FeedChecker()
    time.sleep(0.2)  # let the subscription reach the agent (not an assertion)
    reply = request(agent.sync, {"op": "snapshot"})
    assert reply is not None
    snap = checker.snapshot_reply(reply, adopt=True)
    assert {t.split("/")[1] for t in snap["seqs"]} >= {"topo", "state", "hb"}
    applied = 0
    wait_until_counts = time.monotonic() + WAIT_S
    while time.monotonic() < wait_until_counts:
        rec.drain(100)
        if sum(1 for f in rec.frames if f[0].startswith(b"cua1/topo/")) >= 2 and \
                sum(1 for f in rec.frames if f[0].startswith(b"cua1/hb/")) >= 2:
            break
    for frames in rec.frames:
        topic = frames[0].decode()
        header = msgpack.unpackb(frames[1])
        if header["seq"] <= snap["seqs"].get(topic, 0):
            continue  # already in the snapshot (clone pattern, §4)
        checker.feed(frames)
        applied += 1
    rec.close()
    assert checker.counts["topo"] >= 2 and checker.counts["hb"] >= 2 and checker.counts["state"] >= 4, checker.counts
    # Both device kinds were seen and checked against their topo.
    assert {d["unit"] for d in checker.devices.values()} == {"sm", "cu"}
    assert applied == sum(checker.counts.values())


def test_ping_and_prefix_snapshot(agent):
    ping = msgpack.unpackb(request(agent.sync, {"op": "ping"}))
    assert ping["ok"] is True and ping["v"] == 1 and ping["node"] == "node-a" and ping["gen"] >= 1
    prefix = "cua1/state/node-a/"
    checker = FeedChecker()
    checker.snapshot_reply(request(agent.sync, {"op": "snapshot"}), adopt=True)
    snap = checker.snapshot_reply(request(agent.sync, {"op": "snapshot", "prefix": prefix}), prefix=prefix)
    assert snap["epoch"] == ping["epoch"]
    assert snap["messages"] and all(m[0].startswith(prefix) for m in snap["messages"])
    # The prefix names whole components: a longer node name is not matched.
    empty = msgpack.unpackb(request(agent.sync, {"op": "snapshot", "prefix": "cua1/state/node-ab/"}))
    assert empty["ok"] is True and empty["messages"] == [] and empty["seqs"] == {}


def _dealer(agent):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(agent.sync)
    return sock


def _replies(sock, timeout_ms=5000):
    out = []
    if sock.poll(timeout_ms):
        frames = sock.recv_multipart()
        # A request sent REQ-style (empty delimiter first) gets its delimiter back.
        assert frames[:-1] in ([], [b""]), frames
        out.append(msgpack.unpackb(frames[-1]))
    return out


# Integers msgpack can encode (it refuses anything outside int64..uint64).
wire_ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)

garbage = st.one_of(
    st.lists(st.binary(max_size=200), min_size=1, max_size=4),  # random bytes, extra frames
    st.builds(lambda o: [msgpack.packb(o)], st.one_of(  # well-formed msgpack, wrong content
        wire_ints, st.text(), st.lists(wire_ints, max_size=3), st.none(), st.booleans(),
        st.dictionaries(st.text(max_size=8), wire_ints | st.text(max_size=5) | st.none(), max_size=3),
        st.builds(lambda op: {"op": op}, st.text(max_size=10).filter(lambda s: s not in ("ping", "snapshot"))),
        st.builds(lambda op: {"op": op}, wire_ints | st.binary(max_size=4) | st.none()),
        st.builds(lambda p: {"op": "snapshot", "prefix": p}, wire_ints | st.binary(max_size=4) | st.lists(st.text(), max_size=2)),
    )),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=garbage)
def test_sync_survives_garbage_with_one_error_reply_each(agent, frames):
    sock = _dealer(agent)
    try:
        sock.send_multipart(frames)
        got = _replies(sock)
        # Our ROUTER answers every request it can parse an envelope for: exactly one reply,
        # an error unless the garbage happened to be a valid request.
        assert len(got) == 1, frames
        reply = got[0]
        assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool)
        if reply["ok"] is False:
            assert isinstance(reply["error"], str) and reply["error"]
        # No second reply hides behind it: the next reply on this socket answers the ping.
        sock.send(msgpack.packb({"op": "ping"}))
        (pong,) = _replies(sock)
        assert pong["ok"] is True and pong["node"] == "node-a"
    finally:
        sock.close(0)


def test_oversize_request_is_dropped_and_agent_keeps_serving(agent):
    sock = _dealer(agent)
    sock.send(msgpack.packb({"op": "ping", "pad": "x" * (70 * 1024)}))
    assert not sock.poll(500)  # libzmq drops the peer (ZMQ_MAXMSGSIZE): nothing to answer
    sock.close(0)
    reply = request(agent.sync, {"op": "ping"})
    assert reply is not None and msgpack.unpackb(reply)["ok"] is True


def test_req_peer_gets_its_envelope_back(agent):
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(agent.sync)
    try:
        sock.send(msgpack.packb({"op": "bogus"}))
        assert sock.poll(5000)
        reply = msgpack.unpackb(sock.recv())
        assert reply == {"ok": False, "error": "unknown op 'bogus' (known: ping, snapshot)"}
        sock.send(msgpack.packb({"op": "ping"}))
        assert sock.poll(5000) and msgpack.unpackb(sock.recv())["ok"] is True
    finally:
        sock.close(0)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_stop_the_agent_cleanly(tmp_path, sig):
    proc = start_agent(tmp_path, "node-s", "h100-sxm:idle")
    assert proc.stop(sig, timeout=10) == 0, proc.log()
    assert "stopping" in proc.log()


def _run_cli(*args, timeout=WAIT_S):
    return subprocess.run([sys.executable, "-m", "cuagent.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=_env())


def test_auto_never_falls_back_to_the_mock(tmp_path):
    # No backend can start (each real one is pointed at a library that is not there, so this
    # holds on a GPU machine too): auto must fail and say how to simulate, never publish mock data.
    r = _run_cli("run", "--driver", "auto", *_NO_VENDOR_LIBRARY, "--feed", f"ipc://{tmp_path}/f",
                 "--sync", f"ipc://{tmp_path}/s")
    assert r.returncode == 2, r.stderr
    assert "no GPU backend could start" in r.stderr and "--driver mock" in r.stderr, r.stderr


# Every real backend's library flag, at a path that does not exist.
_NO_VENDOR_LIBRARY = ("--nvml-library", "/nonexistent/libnvidia-ml.so.1", "--rocm-smi-library", "/nonexistent/librocm_smi64.so",
                      "--amdsmi-library", "/nonexistent/libamd_smi.so")


@pytest.mark.parametrize("args, message", [
    (["--node", "bad node!"], "'bad node!': expected a node name matching"),
    (["--rate-hz", "-5"], "--rate-hz: -5 is out of range"),
    (["--publish-interval-ms", "5", "--rate-hz", "100"], "shorter than one sample"),
    (["--mock-devices", "nonesuch:idle"], "nonesuch"),
    (["--feed", "bogus://x"], "'bogus://x': transport 'bogus' is not supported"),
    (["--feed", "ipc:///nonexistent-dir/f"], "cannot bind feed socket to 'ipc:///nonexistent-dir/f'"),
])
def test_bad_settings_fail_clearly(tmp_path, args, message):
    base = ["run", "--driver", "mock", "--feed", f"ipc://{tmp_path}/f", "--sync", f"ipc://{tmp_path}/s", "--duration", "1"]
    r = _run_cli(*base, *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_config_file_with_flags_overriding(tmp_path):
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        'driver = "mock"\nnode = "from-file"\nmock_devices = ["a100-sxm:idle"]\n'
        f'feed = "ipc://{tmp_path}/f"\nsync = "ipc://{tmp_path}/s"\nrate_hz = 100\npublish_interval_ms = 50\n'
    )
    proc = Proc(["run", "--config", str(cfg), "--node", "from-flag"], f"ipc://{tmp_path}/f", f"ipc://{tmp_path}/s", tmp_path / "log")
    try:
        assert proc.wait_ping()["node"] == "from-flag"
        snap = msgpack.unpackb(request(proc.sync, {"op": "snapshot", "prefix": "cua1/topo/"}))
        (topo,) = [m for m in snap["messages"]]
        assert [d["units"] for d in topo[2]["devices"]] == [108]
    finally:
        assert proc.stop() == 0
    bad = tmp_path / "bad.toml"
    bad.write_text('nodes = "x"\n')
    r = _run_cli("run", "--config", str(bad))
    assert r.returncode == 2 and "unknown key(s) ['nodes']" in r.stderr
