"""IPv6 literal endpoints (``tcp://[::1]:7710``) for every socket that binds or connects.

libzmq resolves tcp addresses as IPv4 only unless a socket has ``ZMQ_IPV6`` set: binding an
IPv6 literal then fails with "No such device", and connecting to one is accepted but never
connects (silence, not an error). The option is set only for an IPv6 literal: on ``*`` it would
turn the default bind into a dual-stack ``[::]`` one, and on an IPv4 address it changes
nothing but how the address is reported (``[::ffff:127.0.0.1]``)."""

from __future__ import annotations

import ipaddress

import zmq


def is_literal(endpoint: str) -> bool:
    """True for ``tcp://[ADDR]:PORT`` (any interface spec ``IFACE;`` before it too) where ADDR
    is an IPv6 address."""
    if not endpoint.startswith("tcp://"):
        return False
    host = endpoint[len("tcp://"):].rpartition(":")[0]
    # A connect endpoint may name its source first: tcp://SOURCE;HOST:PORT.
    host = host.rpartition(";")[2]
    if not (host.startswith("[") and host.endswith("]")):
        return False
    address = host[1:-1].partition("%")[0]  # a zone (fe80::1%eth0) is libzmq's to resolve
    try:
        return isinstance(ipaddress.ip_address(address), ipaddress.IPv6Address)
    except ValueError:
        return False


def enable_for(sock: zmq.Socket[bytes], endpoint: str) -> None:
    """Set ``ZMQ_IPV6`` on ``sock`` before it binds or connects to ``endpoint``: on for an IPv6
    literal, off for any other tcp endpoint. Off again matters where one socket connects to
    several endpoints (a relay's upstream feeds): libzmq reads the option at each connect, and
    with it on a host name resolves to its IPv6 address first (``localhost`` to ``::1``), where
    an agent bound to ``*`` or an IPv4 address does not listen: that upstream would be refused
    for good, in silence. Each connect keeps the option it was made with."""
    if endpoint.startswith("tcp://"):
        sock.setsockopt(zmq.IPV6, 1 if is_literal(endpoint) else 0)
