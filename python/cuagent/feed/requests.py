"""A session's queue of snapshot requests still to send: (prefix, node), node None for the
join's. Besides the order, it counts the requests queued per node, so that "are more of
this node's replies to come?", asked at every reply, costs O(1): a scan of the queue made a
resync of N nodes at once (a relay that lost a topo of each) cost O(N²)."""

from __future__ import annotations

from collections import Counter, deque
from typing import Iterable, Iterator, Optional

Request = tuple[str, Optional[str]]


class RequestQueue:
    __slots__ = ("_queue", "_per_node")

    def __init__(self, requests: Iterable[Request] = ()) -> None:
        self._queue: deque[Request] = deque()
        self._per_node: Counter[Optional[str]] = Counter()
        self.extend(requests)

    def append(self, request: Request) -> None:
        self._queue.append(request)
        self._per_node[request[1]] += 1

    def appendleft(self, request: Request) -> None:
        self._queue.appendleft(request)
        self._per_node[request[1]] += 1

    def extend(self, requests: Iterable[Request]) -> None:
        for request in requests:
            self.append(request)

    def popleft(self) -> Request:
        request = self._queue.popleft()
        node = request[1]
        left = self._per_node[node] - 1
        if left:
            self._per_node[node] = left
        else:
            del self._per_node[node]
        return request

    def clear(self) -> None:
        self._queue.clear()
        self._per_node.clear()

    def waiting_for(self, node: Optional[str]) -> bool:
        """Whether a request of ``node``'s (None: the join's) is still queued."""
        return node in self._per_node

    def __len__(self) -> int:
        return len(self._queue)

    def __bool__(self) -> bool:
        return bool(self._queue)

    def __iter__(self) -> Iterator[Request]:
        return iter(self._queue)
