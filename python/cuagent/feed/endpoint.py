"""Where an upstream (an agent or a relay) is reached: its feed and its sync endpoint
(PROTOCOL.md §1), written ``FEED[,SYNC]`` wherever a client or a relay is told its upstreams."""

from __future__ import annotations

from typing import NamedTuple, Sequence


class Endpoint(NamedTuple):
    feed: str
    sync: str


def parse_endpoint(spec: str) -> Endpoint:
    """``FEED[,SYNC]``; for ``tcp://host:port`` the sync endpoint defaults to port + 1."""
    feed, _, sync = spec.partition(",")
    feed, sync = feed.strip(), sync.strip()
    if not feed:
        raise ValueError(f"endpoint {spec!r}: no feed endpoint")
    if not sync:
        if not feed.startswith("tcp://") or feed.rsplit(":", 1)[-1].isdigit() is False:
            raise ValueError(f"endpoint {spec!r}: give the sync endpoint too, as FEED,SYNC")
        host, port = feed.rsplit(":", 1)
        sync = f"{host}:{int(port) + 1}"
    return Endpoint(feed, sync)


def as_endpoint(e: Endpoint | str | Sequence[str]) -> Endpoint:
    if isinstance(e, Endpoint):
        return e
    if isinstance(e, str):
        return parse_endpoint(e)
    return Endpoint(*e)
