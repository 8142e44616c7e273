"""An upstream that stays silent, refuses snapshots, or never learns a node: the retries back
off, and the fault is logged once when it starts (then a reminder every 10 min) and once when
it ends, not at every retry (a relay of 20 dead nodes wrote ~860k lines a day)."""
from __future__ import annotations

import logging
import re
import threading
import time

import msgpack
import zmq

from cuagent import protocol, wire
from cuagent.client import Client
from cuagent.feed.outage import Outage
from cuagent.feed.snapshot_faults import SNAPSHOT_RETRY_MAX_S, SNAPSHOT_TIMEOUT_S, snapshot_wait
from feed_support import WAIT_S, start_agent, start_relay, wait_until
from test_client import FakeUpstream, behind_a_relay  # noqa: F401  (a fixture)


def test_snapshot_waits_double_from_the_timeout_up_to_a_cap_and_start_over_on_a_reply():
    # The first request and the first retry wait what they always did (a reply lost once is
    # asked again as soon as before); a silent upstream is asked every 30 s, not every 2 s.
    assert [snapshot_wait(n) for n in range(7)] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert snapshot_wait(0) == SNAPSHOT_TIMEOUT_S and snapshot_wait(10**9) == SNAPSHOT_RETRY_MAX_S
    # A longer timeout given to a client is its first wait, and its cap.
    assert snapshot_wait(0, 3600.0) == snapshot_wait(5, 3600.0) == 3600.0
    assert [snapshot_wait(n, 0.5) for n in range(4)] == [0.5, 1.0, 2.0, 4.0]


def _lines(caplog, level: int, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level and text in r.getMessage()]


def test_an_outage_is_said_when_it_starts_reminded_every_ten_minutes_and_said_when_it_ends(caplog):
    log = logging.getLogger("cuagent.test.outage")
    caplog.set_level(logging.DEBUG, logger=log.name)
    outage = Outage(log, "requests unanswered")
    outage.ended(0.0, "back")  # nothing had started: nothing to say
    for t in range(0, 1300, 2):  # a retry every 2 s for 1300 s
        outage.failed(float(t), "no reply from X", "still no reply from X")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["no reply from X", "still no reply from X: for 600 s now, 301 requests unanswered",
                        "still no reply from X: for 1200 s now, 601 requests unanswered"]
    assert len(_lines(caplog, logging.DEBUG, "still no reply from X")) == 650 - 3
    outage.ended(1300.0, "reply from X again")
    assert _lines(caplog, logging.INFO, "again") == ["reply from X again after 1300 s, 650 requests unanswered"]
    caplog.clear()
    outage.failed(1400.0, "no reply from X", "still")  # a new outage is said again
    assert [r.getMessage() for r in caplog.records] == ["no reply from X"]


def test_a_client_says_once_that_its_upstream_is_silent_and_once_that_it_answers_again(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="cuagent.client")
    feed, sync = f"ipc://{tmp_path}/late.feed", f"ipc://{tmp_path}/late.sync"
    client = Client([f"{feed},{sync}"])
    agent = None
    try:
        wait_until(lambda: client.stats.snapshot_timeouts >= 2, step=lambda: client.poll(0.1),
                   timeout=40, what="two snapshot timeouts")  # 2 + 4 s
        said = [r for r in caplog.records if r.levelno >= logging.INFO and sync in r.getMessage()]
        assert [r.levelno for r in said] == [logging.WARNING], [r.getMessage() for r in said]
        assert f"no snapshot reply from {sync} within 2 s; retrying with backoff, up to 30 s" == said[0].getMessage()
        # It comes up: the request waiting on the socket reaches it, and the client joins.
        agent = start_agent(tmp_path, "late")
        wait_until(lambda: "late" in client.view.nodes, step=lambda: client.poll(0.1), what="the late agent joined")
        back = _lines(caplog, logging.INFO, f"snapshot reply from {sync} again after")
        assert len(back) == 1 and back[0].endswith(f"{client.stats.snapshot_timeouts} requests unanswered"), back
        assert len([r for r in caplog.records if r.levelno >= logging.WARNING and sync in r.getMessage()]) == 1
    finally:
        client.close()
        if agent is not None:
            assert agent.stop() == 0, agent.log()


def test_a_client_refused_over_and_over_says_it_once(tmp_path, monkeypatch, caplog):
    from cuagent.feed import snapshot_faults
    from test_protocol import AGENT, h100_device

    caplog.set_level(logging.DEBUG, logger="cuagent.client")
    monkeypatch.setattr(snapshot_faults, "RESYNC_RETRY_S", 0.001)
    monkeypatch.setattr(snapshot_faults, "REFUSED_RETRY_MAX_S", 0.002)
    up = FakeUpstream(tmp_path)
    client = Client([f"{up.feed},{up.sync}"])
    refused = []

    def refuse() -> None:
        refused.extend(up.refuse())
        client.poll(0.01)

    try:
        up.send("topo", "node-a", protocol.encode_topo_body([h100_device()], AGENT))
        wait_until(lambda: len(refused) >= 20, step=refuse, what="twenty refused snapshots")
        said = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO and up.sync in r.getMessage()]
        assert len(said) == 1 and said[0].startswith(f"bad snapshot reply from {up.sync}"), said
        wait_until(lambda: client.ready, step=up.stepper(client), what="join once it answers")
        assert len(_lines(caplog, logging.INFO, f"good snapshot reply from {up.sync} again after")) == 1
    finally:
        client.close()
        up.close()


def test_a_node_its_relay_never_learns_is_given_up_round_after_round_with_one_warning(behind_a_relay, caplog):  # noqa: F811
    from cuagent.feed.session import RESYNC_TRIES

    caplog.set_level(logging.DEBUG, logger="cuagent.client")
    rig = behind_a_relay(0.001)
    for round_ in (1, 2, 3):
        wait_until(lambda: rig.asked_since_join() == round_ * RESYNC_TRIES and not rig.session.resyncing,
                   step=rig.step, what=f"node-b given up, round {round_}")
        rig.up.send("hb", "node-b", protocol.encode_hb_body({}, 1.0, 0, 1.0))  # heard again: it starts over
    said = [r for r in caplog.records if r.levelno >= logging.INFO and "node-b" in r.getMessage()]
    # Its first resync and first empty reply, and the first round given up; no more.
    assert [r.levelno for r in said] == [logging.INFO, logging.INFO, logging.WARNING], [r.getMessage() for r in said]
    rig.up.latest[protocol.build_topic("topo", "node-b")] = rig.node_b_topo  # the relay has it now
    wait_until(lambda: "node-b" in rig.client.view.nodes, step=rig.step, what="node-b joined")
    assert len(_lines(caplog, logging.INFO, f"{rig.up.sync} has node node-b again after")) == 1


def test_a_relay_says_once_that_an_upstream_is_silent_and_once_that_it_answers_again(tmp_path):
    late = f"ipc://{tmp_path}/late.feed,ipc://{tmp_path}/late.sync"
    sync = f"ipc://{tmp_path}/late.sync"
    relay = start_relay(tmp_path, "r", late, extra=("--log-level", "debug"))
    agent = None
    try:
        # Its retries, at DEBUG: the second timeout (2 + 4 s) has passed.
        wait_until(lambda: f"still no snapshot reply from {sync} (2 requests unanswered)" in relay.log(),
                   timeout=40, what=f"two timeouts (log: {relay.log_path})")
        said = [line for line in relay.log().splitlines() if f"from {sync}" in line and " DEBUG " not in line]
        assert len(said) == 1 and " WARNING " in said[0], said
        assert said[0].endswith(f"no snapshot reply from {sync} within 2 s; retrying with backoff, up to 30 s")
        agent = start_agent(tmp_path, "late")
        wait_until(lambda: "late" in relay.wait_ping().get("nodes", ()), what="the relay joined the late agent")
        wait_until(lambda: f"snapshot reply from {sync} again after" in relay.log(), what="the line saying so")
    finally:
        assert relay.stop() == 0, relay.log()
        if agent is not None:
            assert agent.stop() == 0, agent.log()
    said = [line for line in relay.log().splitlines() if f"from {sync}" in line and " DEBUG " not in line]
    assert [" WARNING " in line for line in said] == [True, False] and " INFO " in said[1], said


def test_a_relay_whose_upstream_refuses_waits_before_asking_again_and_says_it_once(tmp_path):
    # Asked again at once, a refusing upstream was asked (and logged) once per round trip.
    ctx = zmq.Context.instance()
    pub, router = ctx.socket(zmq.PUB), ctx.socket(zmq.ROUTER)
    feed, sync = f"ipc://{tmp_path}/refusing.feed", f"ipc://{tmp_path}/refusing.sync"
    for sock, ep in ((pub, feed), (router, sync)):
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(ep)
    refused: list[bytes] = []
    stop = threading.Event()

    def refuse() -> None:
        while not stop.is_set():
            if router.poll(20):
                ident, raw = router.recv_multipart()
                assert msgpack.unpackb(raw)["op"] == "snapshot"
                router.send_multipart([ident, wire.error_reply("busy")])
                refused.append(ident)

    relay = start_relay(tmp_path, "r", f"{feed},{sync}")
    thread = threading.Thread(target=refuse)
    thread.start()
    try:
        wait_until(lambda: len(refused) >= 5, what="five refusals")  # 0.05 + 0.1 + 0.2 + 0.4 s apart
        first = len(refused)
        # Six more seconds of refusals: 0.8, 1.6, 3.2 s apart by now (asked at once, it was
        # thousands).
        stop.wait(6.0)
        assert len(refused) - first <= 10, len(refused)
    finally:
        stop.set()
        thread.join()
        assert relay.stop() == 0, relay.log()
        pub.close(0)
        router.close(0)
    said = [line for line in relay.log().splitlines() if f"from {sync}" in line]
    assert len(said) == 1 and re.search(rf"WARNING .*bad snapshot reply from {re.escape(sync)}: ", said[0]), said


def test_silent_upstreams_watched_at_once_are_capped_and_a_retry_never_fails_for_it():
    """A monitor per silent upstream is two more sockets in libzmq's context (1023 by default):
    a relay connected to hundreds of agents that are all down must still retry every one of
    them. And monitors made and dropped at every retry must never collide on an address."""
    from cuagent.feed.snapshot_faults import MAX_WATCHED, SnapshotFaults

    ctx = zmq.Context()
    log = logging.getLogger("cuagent.test.watched")
    silent = [SnapshotFaults(log, "tcp://127.0.0.1:1", None) for _ in range(MAX_WATCHED + 16)]
    for faults in silent:
        faults.unanswered = 1  # a request went unanswered: the next attempt is watched, if room
    dealers: list = []
    try:
        dealers = [faults.dealer(ctx, None) for faults in silent]
        for _ in range(10):  # a retry round of every upstream, as a timeout makes it: the old socket
            for i, faults in enumerate(silent):  # closed, a new one at once (its number comes back)
                dealers[i].close(0)
                dealers[i] = faults.dealer(ctx, None)
            assert sum(faults.monitor is not None for faults in silent) == MAX_WATCHED
            time.sleep(0.1)  # (libzmq reaps closed sockets on its own thread; retries are seconds apart)
    finally:
        for dealer in dealers:
            dealer.close(0)
        for faults in silent:
            faults.close()
    term = threading.Thread(target=ctx.term, daemon=True)  # ends only once every monitor is closed
    term.start()
    term.join(WAIT_S)
    assert not term.is_alive(), "a monitor socket was left open"
