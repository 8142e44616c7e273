"""The client session's two queues (feed/requests.py, feed/queued.py): the order they keep,
what they count per node, and the bound on held messages."""

from __future__ import annotations

import random

from cuagent.feed.queued import HeldMessages
from cuagent.feed.requests import RequestQueue


def test_requests_keep_their_order_and_know_whose_are_still_queued():
    q = RequestQueue([("cua1/", None)])
    q.extend([("cua1/topo/a/", "a"), ("cua1/state/a/", "a"), ("cua1/topo/b/", "b")])
    assert q.waiting_for(None) and q.waiting_for("a") and q.waiting_for("b") and not q.waiting_for("c")
    assert q.popleft() == ("cua1/", None) and not q.waiting_for(None)
    assert q.popleft() == ("cua1/topo/a/", "a") and q.waiting_for("a")
    q.appendleft(("cua1/topo/a/", "a"))  # a request that timed out goes first again
    assert [r[1] for r in q] == ["a", "a", "b"] and len(q) == 3
    q.popleft(), q.popleft()
    assert not q.waiting_for("a") and q.waiting_for("b")
    q.clear()
    assert not q and not q.waiting_for("b")


def test_held_messages_come_back_in_arrival_order_whole_or_by_node():
    held: HeldMessages[tuple[str, int]] = HeldMessages(limit=1000)
    rng = random.Random(4)
    sent = [(rng.choice("abcd"), i) for i in range(300)]
    for node, i in sent:
        held.append(node, (node, i))
    assert list(held) == sent and len(held) == 300
    assert list(held.of("b")) == [m for m in sent if m[0] == "b"]  # left held
    assert held.take("b") == [m for m in sent if m[0] == "b"] and held.take("b") == []
    assert sorted(held.nodes()) == ["a", "c", "d"]
    assert held.take_all() == [m for m in sent if m[0] != "b"] and len(held) == 0 and list(held) == []


def test_held_messages_drop_the_oldest_beyond_their_limit_whoever_took_what():
    held: HeldMessages[int] = HeldMessages(limit=10)
    for i in range(10):
        held.append("a" if i % 2 else "b", i)
    assert held.take("b") == [0, 2, 4, 6, 8]
    for i in range(10, 20):  # 5 held + 10 more: the 5 oldest go, taken ones are no longer there
        held.append("c", i)
    assert len(held) == 10 and list(held) == list(range(10, 20))
    # Many takes and appends: the bookkeeping of what was taken stays bounded.
    for round_ in range(2000):
        held.append(f"n{round_ % 7}", round_)
        if round_ % 3 == 0:
            held.take(f"n{round_ % 5}")
    assert len(held) <= 10 and len(held._arrivals) <= 2 * max(len(held), 64) + 1
    assert list(held) == sorted(held)
