"""Peers that misbehave on purpose, for the hostile-input tests and bench/sub_flood.py.

:class:`RawSubscriber` speaks just enough ZMTP 3.0 (NULL mechanism) over a plain socket to be
accepted as a SUB by a PUB/XPUB, then sends subscription frames as fast as the connection
takes them. Unlike a libzmq SUB it keeps nothing itself (a libzmq flooder would hold the same
trie it inflates) and never reconnects on its own, so the caller sees when it was dropped.
"""

from __future__ import annotations

import random
import select
import socket
import time
from typing import Iterator, Optional

_GREETING = b"\xff" + b"\x00" * 8 + b"\x7f" + bytes([3, 0]) + b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31


def _frame(body: bytes, command: bool = False) -> bytes:
    flags = 0x04 if command else 0x00
    if len(body) < 256:
        return bytes([flags, len(body)]) + body
    return bytes([flags | 0x02]) + len(body).to_bytes(8, "big") + body


def _ready(socket_type: bytes) -> bytes:
    name = b"Socket-Type"
    return _frame(b"\x05READY" + bytes([len(name)]) + name + len(socket_type).to_bytes(4, "big") + socket_type,
                  command=True)


def connect_endpoint(endpoint: str, timeout: float = 5.0) -> socket.socket:
    if endpoint.startswith("tcp://"):
        host, port = endpoint[len("tcp://"):].rsplit(":", 1)
        return socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    if endpoint.startswith("ipc://"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(endpoint[len("ipc://"):])
        return sock
    raise ValueError(f"no raw peer for {endpoint!r}")


class Dropped(Exception):
    """The server ended the connection."""


class RawSubscriber:
    def __init__(self, endpoint: str, timeout: float = 5.0) -> None:
        self.sock = connect_endpoint(endpoint, timeout)
        self._inbox = b""
        self.sock.sendall(_GREETING + _ready(b"SUB"))
        # The server's greeting (64 bytes) and its READY command.
        self._read_exactly(64)
        self._next_frame()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        """Send raw bytes (whole frames), answering the server's heartbeats meanwhile."""
        view = memoryview(data)
        while view:
            self.pump()
            try:
                n = self.sock.send(view[:65536])
            except (BrokenPipeError, ConnectionResetError, socket.timeout) as e:
                raise Dropped(str(e)) from None
            view = view[n:]

    def subscribe(self, prefixes: list[bytes]) -> None:
        self.send(b"".join(_frame(b"\x01" + p) for p in prefixes))

    def pump(self, wait_s: float = 0.0) -> None:
        """Answer any PING the server sent (libzmq drops a peer that stays silent)."""
        deadline = time.monotonic() + wait_s
        while True:
            left = max(0.0, deadline - time.monotonic())
            readable, _, _ = select.select([self.sock], [], [], left)
            if not readable:
                if time.monotonic() >= deadline:
                    return
                continue
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, socket.timeout) as e:
                raise Dropped(str(e)) from None
            if not chunk:
                raise Dropped("end of stream")
            self._inbox += chunk
            while True:
                frame = self._parse()
                if frame is None:
                    break
                flags, body = frame
                if flags & 0x04 and body.startswith(b"\x04PING") and len(body) >= 7:
                    self.sock.sendall(_frame(b"\x04PONG" + body[7:], command=True))

    def _parse(self) -> Optional[tuple[int, bytes]]:
        if len(self._inbox) < 2:
            return None
        flags = self._inbox[0]
        if flags & 0x02:
            if len(self._inbox) < 9:
                return None
            size, head = int.from_bytes(self._inbox[1:9], "big"), 9
        else:
            size, head = self._inbox[1], 2
        if len(self._inbox) < head + size:
            return None
        body = self._inbox[head:head + size]
        self._inbox = self._inbox[head + size:]
        return flags, body

    def _read_exactly(self, n: int) -> bytes:
        while len(self._inbox) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Dropped("end of stream during the handshake")
            self._inbox += chunk
        out, self._inbox = self._inbox[:n], self._inbox[n:]
        return out

    def _next_frame(self) -> tuple[int, bytes]:
        while True:
            frame = self._parse()
            if frame is not None:
                return frame
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Dropped("end of stream during the handshake")
            self._inbox += chunk


def random_prefixes(total_bytes: int, length: int = 200, seed: int = 1) -> Iterator[bytes]:
    """Distinct prefixes (each a new trie branch) adding up to ``total_bytes``."""
    rng = random.Random(seed)
    sent = 0
    while sent < total_bytes:
        yield rng.randbytes(length)
        sent += length + 3  # with its frame header and subscribe flag


def flood(endpoint: str, total_bytes: int, length: int = 200, seed: int = 1, deadline_s: float = 120.0,
          batch: int = 256) -> dict[str, int]:
    """Send ``total_bytes`` of distinct subscription frames, reconnecting whenever the server
    drops us, until all were sent or ``deadline_s`` passed. Returns bytes sent and drops seen."""
    prefixes = random_prefixes(total_bytes, length, seed)
    sent = drops = connects = 0
    pending: list[bytes] = []
    deadline = time.monotonic() + deadline_s
    peer: Optional[RawSubscriber] = None
    try:
        while time.monotonic() < deadline:
            if not pending:
                pending = [p for _, p in zip(range(batch), prefixes)]
                if not pending:
                    break
            try:
                if peer is None:
                    peer = RawSubscriber(endpoint)
                    connects += 1
                peer.subscribe(pending)
                sent += sum(len(p) + 3 for p in pending)
                pending = []
            except (Dropped, OSError):
                drops += 1
                if peer is not None:
                    peer.close()
                    peer = None
                time.sleep(0.01)
        if peer is not None:
            try:
                peer.pump(0.2)
            except (Dropped, OSError):
                drops += 1
    finally:
        if peer is not None:
            peer.close()
    return {"sent_bytes": sent, "drops": drops, "connects": connects}


# --------------------------------------------------------------------------- sync requests
# Raw msgpack built by hand, so that shapes no encoder produces are sent too: declared lengths
# beyond the data, invalid UTF-8, nesting past the unpacker's own stack.

ISSUE_8_REQUEST = b"\x81\xa2op" + b"\x91" * 1000 + b"\xc0"  # {"op": [[[...nil...]]]}, 1,000 deep


def _str(text: bytes) -> bytes:
    if len(text) < 32:
        return bytes([0xA0 | len(text)]) + text
    if len(text) < 1 << 16:
        return b"\xda" + len(text).to_bytes(2, "big") + text
    return b"\xdb" + len(text).to_bytes(4, "big") + text


def _map_header(n: int) -> bytes:
    return bytes([0x80 | n]) if n < 16 else b"\xdf" + n.to_bytes(4, "big")


def _array_header(n: int) -> bytes:
    return bytes([0x90 | n]) if n < 16 else b"\xdd" + n.to_bytes(4, "big")


def with_op(op: bytes, *extra: tuple[bytes, bytes]) -> bytes:
    """A map {"op": op, k: v...} from already-packed values."""
    return _map_header(1 + len(extra)) + _str(b"op") + op + b"".join(k + v for k, v in extra)


def nested(depth: int, container: str = "array", where: str = "op") -> bytes:
    """A value ``depth`` arrays or maps deep, as the op or beside a valid op."""
    level = b"\x91" if container == "array" else _map_header(1) + _str(b"k")
    value = level * depth + b"\xc0"
    return with_op(value) if where == "op" else with_op(_str(b"ping"), (_str(b"x"), value))


def declared_beyond_data(kind: str, n: int) -> bytes:
    """A header announcing ``n`` elements or bytes, followed by almost nothing."""
    header = {"array": b"\xdd", "map": b"\xdf", "str": b"\xdb", "bin": b"\xc6", "ext": b"\xc9"}[kind]
    value = header + n.to_bytes(4, "big") + (b"\x05" if kind == "ext" else b"") + b"\xc0" * 3
    return with_op(value)


def big_container(kind: str, n: int) -> bytes:
    """A valid request carrying an array of ``n`` nils or a map of ``n`` distinct keys."""
    if kind == "array":
        value = _array_header(n) + b"\xc0" * n
    else:
        value = _map_header(n) + b"".join(_str(b"k%d" % i) + b"\xc0" for i in range(n))
    return with_op(_str(b"ping"), (_str(b"pad"), value))


def ext_value(code: int, data: bytes, where: str = "op") -> bytes:
    """An ext type (code -1 is msgpack's timestamp, which validates its length and values)."""
    sizes = {1: b"\xd4", 2: b"\xd5", 4: b"\xd6", 8: b"\xd7", 16: b"\xd8"}
    head = sizes.get(len(data)) or b"\xc7" + bytes([len(data)])
    value = head + (code & 0xFF).to_bytes(1, "big") + data
    return with_op(value) if where == "op" else with_op(_str(b"snapshot"), (_str(b"prefix"), value))


def invalid_utf8(where: str, junk: bytes = b"\xff\xfe") -> bytes:
    if where == "op":
        return with_op(_str(b"pi" + junk))
    if where == "key":
        return with_op(_str(b"ping"), (_str(junk), b"\xc0"))
    return with_op(_str(b"snapshot"), (_str(b"prefix"), _str(b"cua1/" + junk)))


def non_string_keys(n: int) -> bytes:
    """A map keyed by integers (all multiples of the int hash modulus collide)."""
    keys = [(i * ((1 << 61) - 1)) % (1 << 63) for i in range(n)]
    return _map_header(1 + n) + _str(b"op") + _str(b"ping") + b"".join(b"\xd3" + k.to_bytes(8, "big") + b"\xc0" for k in keys)


def oversize(n: int) -> bytes:
    """A well-formed ping padded to ``n`` bytes: over 64 KiB, libzmq drops the peer."""
    return with_op(_str(b"ping"), (_str(b"pad"), _str(b"x" * n)))
