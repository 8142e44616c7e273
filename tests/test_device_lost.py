"""A device that falls off the bus is shown as lost, not served as current (PROTOCOL.md §3.1
`status`): topo marks it, snapshots (from the agent and through a relay) hold no state of it,
clients never rank it, top says so; once it is back, all is as before."""

from __future__ import annotations

from pathlib import Path

import msgpack

from cuagent.client import Client
from cuagent.exporters.top import FeedRates, plain_lines
from feed_support import WAIT_S, CheckedFeed, Proc, request, start_relay, wait_until
from protocol_checker import FeedChecker
from test_external_client import PageClient

FAKES = Path(__file__).resolve().parent / "fakes"
NODE = "node-l"
LOST_STATE = f"cua1/state/{NODE}/mock-0/"
KEPT_STATE = f"cua1/state/{NODE}/mock-1/"


def _statuses(topo_body: dict) -> dict[str, str]:
    return {d["id"]: d.get("status") for d in topo_body["devices"]}


def _snapshot(sync: str) -> tuple[dict, dict[str, str]]:
    """A whole snapshot, checked against the page, and its topo's device statuses."""
    reply = request(sync, {"op": "snapshot"})
    assert reply is not None
    snap = FeedChecker().snapshot_reply(reply)
    (topo,) = [m for m in snap["messages"] if m[0] == f"cua1/topo/{NODE}/"]
    return snap, _statuses(topo[2])


def _latest_topo_says(feed: CheckedFeed, status: str) -> bool:
    topos = feed.of("topo")
    return bool(topos) and _statuses(topos[-1][4])["mock-0"] == status


def test_a_lost_device_is_marked_and_served_no_state_until_it_is_back(tmp_path):
    # Two devices; only the first falls off the bus, 1.5 s after its first read, and comes
    # back at 8.5 s: time enough to join during the loss on a busy machine.
    feed_ep, sync_ep = f"ipc://{tmp_path}/{NODE}.feed", f"ipc://{tmp_path}/{NODE}.sync"
    agent = Proc(["run", "--driver", "mock", "--mock-devices", "h100-sxm:training,a100-sxm:training", "--seed", "3",
                  "--node", NODE, "--feed", feed_ep, "--sync", sync_ep, "--rate-hz", "200",
                  "--publish-interval-ms", "50"],
                 feed_ep, sync_ep, tmp_path / f"{NODE}.log", env={"MOCK_FAULT_DEVICES": "1"},
                 launcher=[str(FAKES / "mock_fault_agent.py"), "1.5", "8.5"])
    relay = feed = client = None
    try:
        agent.wait_ping()
        relay = start_relay(tmp_path, "relay-l", agent.endpoint)
        # Every message from here on goes through the checker: no state of mock-0 while its
        # topo says lost.
        feed = CheckedFeed(agent)
        feed.wait(lambda f: _latest_topo_says(f, "lost"), "a topo marking mock-0 lost")
        assert feed.of("topo")[-1][3]["gen"] == 1  # a status is no topology change

        # A client joining now: the agent's snapshot and the relay's hold no state of the lost
        # device (its seq stays listed), and still the other device's.
        for sync in (agent.sync, relay.sync):
            snap, statuses = _snapshot(sync)
            assert statuses == {"mock-0": "lost", "mock-1": "ok"}, (sync, statuses)
            topics = {m[0] for m in snap["messages"]}
            assert LOST_STATE not in topics and KEPT_STATE in topics, (sync, topics)
            assert LOST_STATE in snap["seqs"], sync
        # The client library: marked, no state, never ranked; top says LOST.
        client = Client([agent.endpoint])
        assert client.wait_ready(WAIT_S)
        lost = client.view.device(NODE, "mock-0")
        assert lost.status == "lost" and lost.lost and lost.state is None
        wait_until(lambda: client.view.device(NODE, "mock-1").state is not None, step=lambda: client.poll(0.05) and None,
                   what="the other device's state")
        assert [d.id for d in client.view.rank_devices()] == ["mock-1"]
        assert {d.id for d, _, _ in client.view.rank_partitions()} == {"mock-1"}
        lines = plain_lines(client, FeedRates())
        assert any(line.startswith(f"{NODE}/mock-0 ") and "LOST" in line for line in lines), lines
        # The client written from the page joins both, during the loss, and follows.
        for f, s in ((agent.feed, agent.sync), (relay.feed, relay.sync)):
            page = PageClient(f, s)
            try:
                page.join()
                assert page.device_status(NODE, "mock-0") == "lost"
                page.follow(lambda: page.kinds().get("state", 0) >= 3, "states of the other device")
            finally:
                page.close()

        # Back: topo says ok again and its windows flow; snapshots and clients as before.
        feed.wait(lambda f: any(m[4]["type"] == "device_back" for m in f.of("event")), "device_back")
        feed.wait(lambda f: _latest_topo_says(f, "ok"), "a topo marking mock-0 ok")
        at = len(feed.messages)
        feed.wait(lambda f: any(m[0] == "state" and m[2] == "mock-0" for m in f.messages[at:]), "mock-0's state again")
        wait_until(lambda: client.view.device(NODE, "mock-0").state is not None,
                   step=lambda: client.poll(0.05) and None, what="the client to see mock-0's state again")
        back = client.view.device(NODE, "mock-0")
        assert back.status == "ok" and not back.lost
        assert {d.id for d in client.view.rank_devices()} == {"mock-0", "mock-1"}
        # The agent says ok just before the first new window: from then on its snapshot holds it.
        snap, statuses = _snapshot(agent.sync)
        assert statuses == {"mock-0": "ok", "mock-1": "ok"} and LOST_STATE in {m[0] for m in snap["messages"]}
        wait_until(lambda: LOST_STATE in {m[0] for m in msgpack.unpackb(request(relay.sync, {"op": "snapshot"}))["messages"]},
                   what="mock-0's state in the relay's snapshot")
        snap, statuses = _snapshot(relay.sync)
        assert statuses == {"mock-0": "ok", "mock-1": "ok"}
        assert client.stats.gaps == 0 and client.stats.decode_errors == 0, client.stats
        assert client.view.nodes[NODE].gen == 1
    finally:
        for c in (client, feed):
            if c is not None:
                c.close()
        if relay is not None:
            assert relay.stop() == 0, relay.log()
        assert agent.stop() == 0, agent.log()
