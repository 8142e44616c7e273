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

A secret key file that others may read or write is refused, as OpenSSH refuses an unprotected
private key: whoever reads it can impersonate the agent to every client, and whoever writes
it can swap in a key of their own. :func:`create_keys` (``cuagent keys``) writes them 0600.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
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
    if secret:
        check_private(path, what)
    return public, secret


def check_private(path: str, what: str) -> None:
    """Refuse a secret key file others can read or write. Owned by this user: 0600 at most,
    OpenSSH's rule. Owned by another user (root handing the key to a service through a
    group, the PostgreSQL way): group-readable at most (0640)."""
    st = os.stat(path)
    mode = stat.S_IMODE(st.st_mode)
    too_open = mode & (0o077 if st.st_uid == os.getuid() else 0o037)
    if too_open:
        allowed = "0600" if st.st_uid == os.getuid() else "0640 (owner another user)"
        raise CurveError(f"{what} {path!r} has mode {mode:04o}: a secret key must not be accessible to others "
                         f"(at most {allowed}; chmod 600 {path})")


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

    def apply(self, sock: zmq.Socket[bytes]) -> None:
        """Make ``sock`` a CURVE server (before it binds)."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True


class Authenticator:
    """The ZAP handler of one context: admits CURVE clients whose key is in the allow dir.
    Must be started before the sockets it guards accept connections."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], keys: ServerKeys) -> None:
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

    def apply(self, sock: zmq.Socket[bytes]) -> None:
        """Make ``sock`` a CURVE client of the server (before it connects)."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_serverkey = self.server


def create_keys(key_dir: str, name: str) -> tuple[str, str]:
    """``NAME.key`` (public, 0644) and ``NAME.key_secret`` (0600) in ``key_dir`` (made 0700 if
    missing); existing files are never replaced. The secret is written under umask 077 into a
    private temporary directory and linked into place, so it is never readable by others,
    not even for a moment."""
    import zmq.auth

    if not name or os.sep in name or name.startswith("."):
        raise CurveError(f"key name {name!r}: expected a plain file name")
    public_file, secret_file = (os.path.join(key_dir, name + ext) for ext in (".key", ".key_secret"))
    for f in (public_file, secret_file):
        if os.path.lexists(f):
            raise CurveError(f"{f} exists: not replacing a key (remove it first)")
    old_umask = os.umask(0o077)
    try:
        os.makedirs(key_dir, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=key_dir, prefix=".cuagent-keys-") as tmp:
            made_public, made_secret = zmq.auth.create_certificates(tmp, name)
            os.chmod(made_public, 0o644)
            os.link(made_secret, secret_file)  # link, unlike rename, fails if the name exists
            os.link(made_public, public_file)
    except OSError as e:
        raise CurveError(f"cannot write keys {name!r} in {key_dir}: {e.strerror}") from None
    finally:
        os.umask(old_umask)
    return public_file, secret_file


def apply_client(sock: zmq.Socket[bytes], keys: Optional[ClientKeys]) -> zmq.Socket[bytes]:
    if keys is not None:
        keys.apply(sock)
    return sock
