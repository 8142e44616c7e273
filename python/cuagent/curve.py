"""CURVE encryption and client authentication for the feed and sync sockets (PROTOCOL.md §6).

Keys are files in pyzmq's ``zmq.auth`` certificate format (``zmq.auth.create_certificates``
writes a ``NAME.key`` with the public key and a ``NAME.key_secret`` with both):

* server side (agent, relay): ``--curve-secret-key FILE`` (the server's ``.key_secret``) and
  ``--curve-allow DIR`` (the public ``.key`` files of admitted clients). Both sockets become
  CURVE servers, and a ZAP handler on the context admits only the keys in DIR, read at start.
* client side (client library, top/watch/snapshot, a relay's upstream links):
  ``--curve-client-key FILE`` (the client's ``.key_secret``) and ``--curve-server-key FILE``
  (the server's public ``.key``).

A client without an admitted key completes no handshake, so it receives nothing at all.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Optional

import zmq

log = logging.getLogger("cuagent.curve")


class CurveError(ValueError):
    """A key file or allow-list that cannot be used; the message names it."""


def _load(path: str, need_secret: bool, what: str) -> tuple[bytes, Optional[bytes]]:
    import zmq.auth

    if not zmq.has("curve"):
        raise CurveError("this libzmq was built without CURVE support")
    if not os.path.isfile(path):
        raise CurveError(f"{what} {path!r} is not a file")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        raise CurveError(f"{what} {path!r} is not a zmq.auth certificate: {e}") from None
    if need_secret and not secret:
        raise CurveError(f"{what} {path!r} holds no secret key (use the .key_secret file)")
    return public, secret


@dataclass(frozen=True)
class ServerKeys:
    public: bytes
    secret: bytes
    allow_dir: str

    @classmethod
    def load(cls, secret_key_file: str, allow_dir: str) -> "ServerKeys":
        public, secret = _load(secret_key_file, True, "--curve-secret-key")
        if not os.path.isdir(allow_dir):
            raise CurveError(f"--curve-allow {allow_dir!r} is not a directory")
        keys = [f for f in os.listdir(allow_dir) if f.endswith(".key")]
        if not keys:
            raise CurveError(f"--curve-allow {allow_dir!r} holds no public key (*.key) files: nobody could connect")
        assert secret is not None
        return cls(public, secret, allow_dir)

    def apply(self, sock: zmq.Socket) -> None:
        """Make ``sock`` a CURVE server (before it binds)."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True


class Authenticator:
    """The ZAP handler of one context: admits CURVE clients whose key is in the allow dir.
    Must be started before the sockets it guards accept connections."""

    def __init__(self, ctx: zmq.Context, keys: ServerKeys) -> None:
        from zmq.auth.thread import ThreadAuthenticator

        self._auth = ThreadAuthenticator(ctx, log=logging.getLogger("cuagent.curve.zap"))
        self._auth.start()
        # domain "*": every socket of this context; the keys are read now, once.
        self._auth.configure_curve(domain="*", location=keys.allow_dir)
        log.info("CURVE: admitting the %d public key(s) in %s",
                 sum(f.endswith(".key") for f in os.listdir(keys.allow_dir)), keys.allow_dir)

    def stop(self) -> None:
        self._auth.stop()


@dataclass(frozen=True)
class ClientKeys:
    public: bytes
    secret: bytes
    server: bytes

    @classmethod
    def load(cls, client_key_file: str, server_key_file: str) -> "ClientKeys":
        public, secret = _load(client_key_file, True, "--curve-client-key")
        server, _ = _load(server_key_file, False, "--curve-server-key")
        assert secret is not None
        return cls(public, secret, server)

    @classmethod
    def from_args(cls, client_key_file: Optional[str], server_key_file: Optional[str]) -> Optional["ClientKeys"]:
        """Both or neither: one without the other is a mistake, reported as such."""
        if client_key_file is None and server_key_file is None:
            return None
        if client_key_file is None or server_key_file is None:
            raise CurveError("CURVE needs both --curve-client-key and --curve-server-key")
        return cls.load(client_key_file, server_key_file)

    def apply(self, sock: zmq.Socket) -> None:
        """Make ``sock`` a CURVE client of the server (before it connects)."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_serverkey = self.server


def apply_client(sock: zmq.Socket, keys: Optional[ClientKeys]) -> zmq.Socket:
    if keys is not None:
        keys.apply(sock)
    return sock
