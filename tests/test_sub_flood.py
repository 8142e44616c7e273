"""Feed subscriptions from hostile peers (issue 8 B, PROTOCOL.md §1): a peer without CURVE that
floods subscription prefixes is dropped once over its bound, the server's memory stays bounded,
and everyone else keeps receiving. Real processes for the floods (RSS is per process), and the
guard in-process on a real XPUB for its exact bounds."""

from __future__ import annotations

import socket
import threading
import time

import msgpack
import psutil
import pytest
import zmq

import hostile_peers as h
from cuagent import protocol
from cuagent.node import sockets, subscriptions
from feed_support import WAIT_S, Proc, Recorder, request, start_agent, wait_until

# The old feed (a plain PUB) grew ~470 MB under a 10 MB flood, an old relay ~500 MB and the
# agent behind it ~410 MB; bounded, each grows by a few MB. Generous: must never flake.
RSS_GROWTH_BOUND = 128e6
FLOOD_BYTES = 10_000_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tcp_endpoints() -> tuple[str, str]:
    return f"tcp://127.0.0.1:{_free_port()}", f"tcp://127.0.0.1:{_free_port()}"


def _rss(proc: Proc) -> int:
    return psutil.Process(proc.popen.pid).memory_info().rss


class _PeakRss(threading.Thread):
    def __init__(self, proc: Proc) -> None:
        super().__init__(daemon=True)
        self.ps = psutil.Process(proc.popen.pid)
        self.peak = self.ps.memory_info().rss
        self.done = threading.Event()
        self.start()

    def run(self) -> None:
        while not self.done.wait(0.02):
            try:
                self.peak = max(self.peak, self.ps.memory_info().rss)
            except psutil.NoSuchProcess:
                return

    def stop(self) -> int:
        self.done.set()
        self.join()
        return self.peak


def _still_receiving(rec: Recorder, what: str) -> None:
    rec.frames.clear()
    wait_until(lambda: rec.drain(50) > 0 and any(f[0].startswith(b"cua1/state/") for f in rec.frames),
               step=lambda: None, what=what)


def _answers(proc: Proc) -> None:
    assert proc.popen.poll() is None, proc.log()
    reply = request(proc.sync, {"op": "ping"})
    assert reply is not None and msgpack.unpackb(reply)["ok"] is True, proc.log()


def _flood_and_measure(target: Proc, watched: list[Proc]) -> dict[int, int]:
    before = {id(p): _rss(p) for p in watched}
    peaks = {id(p): _PeakRss(p) for p in watched}
    sent = h.flood(target.feed, FLOOD_BYTES, deadline_s=60)
    assert sent["sent_bytes"] >= FLOOD_BYTES, sent
    time.sleep(0.5)  # let the last dropped connection end
    return {k: peaks[k].stop() - before[k] for k in before}


def test_a_flood_on_the_agent_is_bounded_and_subscribers_keep_receiving(tmp_path):
    feed, sync = _tcp_endpoints()
    proc = Proc(["run", "--driver", "mock", "--mock-devices", "h100-sxm:idle", "--node", "node-f", "--feed", feed,
                 "--sync", sync, "--rate-hz", "100", "--publish-interval-ms", "50", "--log-level", "info"],
                feed, sync, tmp_path / "agent.log")
    try:
        proc.wait_ping()
        rec = Recorder(feed)
        _still_receiving(rec, "messages before the flood")
        growth = _flood_and_measure(proc, [proc])
        assert growth[id(proc)] < RSS_GROWTH_BOUND, f"agent RSS grew {growth[id(proc)] / 1e6:.0f} MB"
        _still_receiving(rec, "messages after the flood, on a subscription made before it")
        late = Recorder(feed)
        _still_receiving(late, "messages on a subscription made after the flood")
        rec.close()
        late.close()
        _answers(proc)
        assert proc.stop() == 0
        log = proc.log()
        assert "feed: dropped a subscriber over its bounds" in log, log
    finally:
        proc.kill()


def test_a_flood_on_a_relay_is_bounded_and_does_not_reach_the_agent(tmp_path):
    agent = start_agent(tmp_path, "node-g", "h100-sxm:idle")
    feed, sync = _tcp_endpoints()
    relay = Proc(["relay", "--name", "relay-f", "--connect", agent.endpoint, "--feed", feed, "--sync", sync,
                  "--log-level", "info"], feed, sync, tmp_path / "relay.log")
    try:
        relay.wait_ping()
        rec = Recorder(feed)
        _still_receiving(rec, "messages through the relay before the flood")
        growth = _flood_and_measure(relay, [relay, agent])
        assert growth[id(relay)] < RSS_GROWTH_BOUND, f"relay RSS grew {growth[id(relay)] / 1e6:.0f} MB"
        assert growth[id(agent)] < RSS_GROWTH_BOUND, f"the agent behind grew {growth[id(agent)] / 1e6:.0f} MB"
        _still_receiving(rec, "messages through the relay after the flood")
        rec.close()
        _answers(relay)
        _answers(agent)
        assert relay.stop() == 0
        assert "feed: dropped a subscriber over its bounds" in relay.log(), relay.log()
    finally:
        relay.kill()
        agent.kill()


# --------------------------------------------------------------------------- the guard's bounds


class _Server:
    """A bound feed XPUB and its guard, served by a thread (as the agent's loop serves them),
    publishing one state message every 10 ms."""

    def __init__(self, endpoint: str, **budgets: int) -> None:
        self.ctx = zmq.Context()
        self.sock = sockets.bind_feed(self.ctx, endpoint)
        self.endpoint = sockets.bound_endpoint(self.sock)
        self.guard = subscriptions.SubscriptionGuard(self.sock, self.endpoint, node="node-s", **budgets)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if self.sock.poll(10):
                self.guard.drain()
            self.guard.tick()
            self.sock.send_multipart([b"cua1/state/node-s/dev/", b"h", b"b"])

    def close(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join(WAIT_S)
        self.sock.close(0)
        self.ctx.term()
        return self.guard.stats


@pytest.fixture(params=["tcp", "ipc"])
def server(request, tmp_path):
    srv = _Server("tcp://127.0.0.1:0" if request.param == "tcp" else f"ipc://{tmp_path}/feed", peer_budget=20_000,
                  total_budget=50_000)
    yield srv
    srv.close()


@pytest.fixture
def raw(server):
    """Factory of raw subscribers to the server, all closed at the end."""
    made: list[h.RawSubscriber] = []

    def connect() -> h.RawSubscriber:
        made.append(h.RawSubscriber(server.endpoint))
        return made[-1]

    yield connect
    for peer in made:
        peer.close()


def _dropped(peer: h.RawSubscriber, within: float = 5.0) -> bool:
    try:
        peer.pump(within)
    except (h.Dropped, OSError):
        return True
    return False


def _receiver(endpoint: str) -> zmq.Socket:
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"cua1/state/node-s/")
    sub.connect(endpoint)
    return sub


def _receives(sub: zmq.Socket) -> bool:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if sub.poll(100):
            sub.recv_multipart()
            return True
    return False


def _prefixes(n: int, length: int, tag: bytes, first: int = 0) -> list[bytes]:
    """``n`` prefixes of ``length`` bytes that share no start with each other (each begins with
    its own byte), so each costs a connection its full length plus the per-entry overhead."""
    assert first + n <= 256
    return [bytes([first + i]) + tag + b"x" * (length - 1 - len(tag)) for i in range(n)]


def test_a_connection_is_dropped_exactly_past_its_bound_and_others_keep_receiving(server, raw):
    sub = _receiver(server.endpoint)
    assert _receives(sub)
    cost = 100 + subscriptions.PREFIX_OVERHEAD
    within = server.guard.peer_budget // cost  # distinct prefixes that fit
    peer = raw()
    # Duplicates cost nothing: libzmq holds a prefix once per connection.
    peer.subscribe(_prefixes(within, 100, b"a") + _prefixes(within, 100, b"a"))
    assert not _dropped(peer, 1.0)
    wait_until(lambda: server.guard.stats["subscriptions"] >= 2 * within + 1, what="all subscriptions read")
    receiver_cost = len(b"cua1/state/node-s/") + subscriptions.PREFIX_OVERHEAD
    assert server.guard.held_bytes == within * cost + receiver_cost
    peer.subscribe(_prefixes(1, 100, b"b", first=255))
    assert _dropped(peer)
    assert server.guard.held_bytes == receiver_cost  # the dropped peer's charge is released
    assert _receives(sub)
    sub.close(0)
    stats = server.close()
    assert stats["dropped_peers"] == 1 and stats["unmatchable"] == 2 * within + 1, stats
    assert stats["reset_peers"] == 0, stats  # it stopped sending: shutting its read side sufficed


def test_a_dropped_connection_that_keeps_sending_ends_and_little_more_is_read(server, raw):
    """Its read side is shut: libzmq reads what is queued and ends it; one whose data keeps
    coming is reset after RESET_AFTER_REFUSED more prefixes (which of the two depends on timing)."""
    peer = raw()
    # Far over the bound in one stream, so that more keeps arriving after the read side is shut.
    flood = [p for tag in (b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h") for p in _prefixes(250, 100, tag)]
    try:
        peer.subscribe(flood)
    except h.Dropped:
        pass
    assert _dropped(peer)
    stats = server.close()
    # Of 2,000 sent: the bound's worth (~150), then what libzmq had read ahead of the guard.
    assert stats["dropped_peers"] == 1 and stats["subscriptions"] < 1200, stats


def test_a_prefix_longer_than_any_topic_drops_its_connection(server, raw):
    sub = _receiver(server.endpoint)
    peer = raw()
    peer.subscribe([b"cua1/state/node-s/" + b"d" * subscriptions.MAX_PREFIX_BYTES])
    assert _dropped(peer)
    assert _receives(sub)
    sub.close(0)
    assert server.close()["dropped_peers"] == 1


def test_when_all_together_hold_too_much_the_largest_holder_is_dropped(server, raw):
    cost = 100 + subscriptions.PREFIX_OVERHEAD
    budget, total = server.guard.peer_budget, server.guard.total_budget
    peers = [raw() for _ in range(3)]
    # Each within its own bound; the third takes all three over the total, and the largest
    # holder (the first) is the one dropped.
    counts = [budget // cost, budget // cost - 10]
    counts.append((total - sum(counts) * cost) // cost + 1)
    assert all(n * cost <= budget for n in counts) and sum(counts) * cost > total
    read = 0
    for peer, n, tag in zip(peers, counts, (b"a", b"b", b"c")):
        peer.subscribe(_prefixes(n, 100, tag))
        read += n
        wait_until(lambda: server.guard.stats["subscriptions"] >= read, what="the peer's prefixes read")
    assert _dropped(peers[0])
    assert not _dropped(peers[1], 0.5) and not _dropped(peers[2], 0.1)
    assert server.guard.held_bytes == (counts[1] + counts[2]) * cost
    assert server.close()["dropped_peers"] == 1


def test_normal_subscriptions_are_never_dropped(server):
    """What clients send: node and device prefixes, everything, re-subscriptions."""
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    for prefix in (b"", b"cua1/", b"cua1/state/node-s/", b"cua1/state/node-s/dev/", b"cua1/topo/node-s/"):
        sub.setsockopt(zmq.SUBSCRIBE, prefix)
    for i in range(200):  # one SUB following 200 nodes through one connection
        sub.setsockopt(zmq.SUBSCRIBE, b"cua1/state/node-%03d/" % i)
    sub.connect(server.endpoint)
    assert _receives(sub)
    for _ in range(3):  # churn
        sub.setsockopt(zmq.UNSUBSCRIBE, b"cua1/")
        sub.setsockopt(zmq.SUBSCRIBE, b"cua1/")
    assert _receives(sub)
    # 5 + 200 subscriptions, and 3 re-subscriptions: all read before we look.
    wait_until(lambda: server.guard.stats["subscriptions"] >= 208, what="every subscription read")
    sub.close(0)
    stats = server.close()
    assert stats["dropped_peers"] == 0 and stats["unmatchable"] == 200, stats


def test_a_thousand_node_prefixes_on_one_connection_fit_the_default_bound(tmp_path):
    """As many as a libzmq SUB sends when it connects (its SNDHWM, 1,000): 250 nodes, every kind."""
    srv = _Server(f"ipc://{tmp_path}/feed")
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    for i in range(249):
        for prefix in protocol.node_prefixes(f"node-{i:03d}"):
            sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
    for prefix in protocol.node_prefixes("node-s"):
        sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
    sub.connect(srv.endpoint)
    assert _receives(sub)
    wait_until(lambda: srv.guard.stats["subscriptions"] >= 1000, what="every subscription read")
    sub.close(0)
    stats = srv.close()
    assert stats["dropped_peers"] == 0, stats
