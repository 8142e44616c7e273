"""The feed messages a session holds back while their node (or the whole join) waits for a
snapshot: in arrival order, and indexed by node, so that taking one node's messages when its
snapshot is in costs that node's messages, not a pass over everyone's (a resync of N nodes at
once, each releasing its own, cost O(N²) with one list). At most ``limit`` are kept: the
oldest go first (the seq check counts what that loses)."""

from __future__ import annotations

from collections import deque
from typing import Generic, Iterator, TypeVar

M = TypeVar("M")


class HeldMessages(Generic[M]):
    __slots__ = ("limit", "_nodes", "_arrivals", "_next", "_size")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._nodes: dict[str, deque[tuple[int, M]]] = {}  # node -> (arrival number, message), oldest first
        # (arrival number, node) of every message held, oldest first, and of some taken since
        # (skipped when met: their node's oldest held is then a later one). Rebuilt when those
        # outnumber the held ones, so it stays within twice the limit.
        self._arrivals: deque[tuple[int, str]] = deque()
        self._next = 0
        self._size = 0

    def append(self, node: str, msg: M) -> None:
        if self._size >= self.limit:
            self._drop_oldest()
        number = self._next
        self._next += 1
        self._nodes.setdefault(node, deque()).append((number, msg))
        self._arrivals.append((number, node))
        self._size += 1
        if len(self._arrivals) > 2 * max(self._size, 64):
            self._arrivals = deque(sorted((n, node) for node, held in self._nodes.items() for n, _ in held))

    def _drop_oldest(self) -> None:
        while self._arrivals:
            number, node = self._arrivals.popleft()
            held = self._nodes.get(node)
            if held and held[0][0] == number:
                held.popleft()
                self._size -= 1
                if not held:
                    del self._nodes[node]
                return

    def take(self, node: str) -> list[M]:
        """Remove ``node``'s messages, and return them in arrival order."""
        held = self._nodes.pop(node, None)
        if not held:
            return []
        self._size -= len(held)
        return [msg for _, msg in held]

    def take_all(self) -> list[M]:
        """Remove every message, and return them in arrival order."""
        out = list(self)
        self._nodes.clear()
        self._arrivals.clear()
        self._size = 0
        return out

    def nodes(self) -> Iterator[str]:
        return iter(self._nodes)

    def of(self, node: str) -> Iterator[M]:
        """``node``'s messages, in arrival order (left held)."""
        return (msg for _, msg in self._nodes.get(node, ()))

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[M]:
        """Every message held, in arrival order (left held)."""
        return (msg for _, msg in sorted((item for held in self._nodes.values() for item in held),
                                         key=lambda item: item[0]))
