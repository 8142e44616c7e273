"""CURVE encryption and client authentication for the feed and sync sockets (PROTOCOL.md §6).

Keys are files in pyzmq's ``zmq.auth`` certificate format (``zmq.auth.create_certificates``
writes a ``NAME.key`` with the public key and a ``NAME.key_secret`` with both):

* server side (agent, relay): ``--curve-secret-key FILE`` (the server's ``.key_secret``) and
  ``--curve-allow DIR`` (the public ``.key`` files of admitted clients). Both sockets become
  CURVE servers, and a ZAP handler on the context admits only the keys in DIR, read at start.
* client side (client library, top/watch/snapshot, a relay's upstream links):
  ``--curve-client-key FILE`` (the client's ``.key_secret``) and ``--curve-server-key FILE``
  (the server's public ``.key``).

A client without an admitted key completes no handshake, so it receives nothing at all. The
server says so in its log (a WARNING naming the refused key and where it came from, once per
key per few minutes: :class:`Rejections`); the CLI, whose request then gets no reply, says why
as far as its socket's handshake events tell (:func:`no_reply_hint`).

A secret key file that others may read or write is refused, as OpenSSH refuses an unprotected
private key: whoever reads it can impersonate the agent to every client, and whoever writes
it can swap in a key of their own. :func:`create_keys` (``cuagent keys``) writes them 0600.
"""

from __future__ import annotations

import itertools
import logging
import os
import stat
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import zmq

from .log_throttle import KeyedThrottle

log = logging.getLogger("cuagent.curve")


class CurveError(ValueError):
    """A key file or allow-list that cannot be used; the message names it."""


def _load(path: str, need_secret: bool, what: str) -> tuple[bytes, Optional[bytes]]:
    import zmq.auth

    if not zmq.has("curve"):
        raise CurveError("this libzmq was built without CURVE support")
    if not stat.S_ISREG(_stat(path, what).st_mode):
        raise CurveError(f"{what} {path!r} is not a file")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except OSError as e:
        raise CurveError(f"cannot read {what} {path!r}: {_reason(e)}") from None
    except ValueError as e:
        raise CurveError(f"{what} {path!r} is not a zmq.auth certificate: {e}") from None
    if need_secret and not secret:
        raise CurveError(f"{what} {path!r} holds no secret key (use the .key_secret file)")
    if secret:
        check_private(path, what)
    return public, secret


def _stat(path: str, what: str) -> os.stat_result:
    """``path``'s status, or a CurveError saying why there is none: missing, or a folder on the
    way this user may not search (os.path.isfile would say only "not a file")."""
    try:
        return os.stat(path)
    except OSError as e:
        raise CurveError(f"cannot read {what} {path!r}: {_reason(e)}") from None


def _reason(e: OSError) -> str:
    """``permission denied``, not ``[Errno 13] Permission denied: '/path'`` (the caller names it)."""
    return e.strerror.lower() if e.strerror else str(e)


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


def allowed_keys(allow_dir: str) -> frozenset[bytes]:
    """The public keys (z85) of the ``*.key`` files in ``allow_dir``. Read when the server's
    keys are loaded, each file named if it cannot be used (zmq.auth read them when the server
    started, and one bad file left the allow-list empty: everyone refused, said at DEBUG)."""
    if not stat.S_ISDIR(_stat(allow_dir, "--curve-allow").st_mode):
        raise CurveError(f"--curve-allow {allow_dir!r} is not a directory")
    try:
        files = sorted(f for f in os.listdir(allow_dir) if f.endswith(".key"))
    except OSError as e:
        raise CurveError(f"cannot read --curve-allow {allow_dir!r}: {_reason(e)}") from None
    if not files:
        raise CurveError(f"--curve-allow {allow_dir!r} holds no public key (*.key) files: nobody could connect")
    return frozenset(_load(os.path.join(allow_dir, f), False, "--curve-allow key")[0] for f in files)


@dataclass(frozen=True)
class ServerKeys:
    public: bytes
    secret: bytes
    allow_dir: str
    allowed: frozenset[bytes] = field(default=frozenset())  # the admitted public keys (z85), read at load

    @classmethod
    def load(cls, secret_key_file: str, allow_dir: str) -> "ServerKeys":
        public, secret = _load(secret_key_file, True, "--curve-secret-key")
        assert secret is not None
        return cls(public, secret, allow_dir, allowed_keys(allow_dir))

    def apply(self, sock: zmq.Socket[bytes]) -> None:
        """Make ``sock`` a CURVE server (before it binds)."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True


REJECT_LOG_S = 300.0  # a refused key is named at most once per this, with how often it came since
REJECT_LINES = 20  # at most this many refused keys are named per REJECT_LOG_S; the rest, counted


class Rejections:
    """The server's log of refused client keys: a WARNING naming the key (z85) and where it
    came from, once per key per ``every_s`` (a client retries every few seconds, for ever),
    and no more than ``lines`` keys a period (a peer may make up a key per attempt); what was
    not said is counted, and the next line says how much."""

    def __init__(self, logger: logging.Logger, allow_dir: str, every_s: float = REJECT_LOG_S,
                 lines: int = REJECT_LINES) -> None:
        self.log, self.allow_dir, self.every_s, self.lines = logger, allow_dir, every_s, lines
        self.keys = KeyedThrottle(every_s)
        self.period, self.period_lines, self.unnamed = 0.0, 0, 0

    def refused(self, key: bytes, peer: str, now: float) -> None:
        if self.keys.held(key, now):
            self.keys.due(key, now)  # counted, for the key's next line
            return
        if now - self.period >= self.every_s:
            self.period, self.period_lines = now, 0
        if self.period_lines >= self.lines:
            self.unnamed += 1
            return
        since = self.keys.due(key, now) or 0
        self.period_lines += 1
        more = f"; refused {since} more time(s) since it was last named" if since else ""
        if self.unnamed:
            more += f"; {self.unnamed} other refusal(s) not named (too many keys)"
            self.unnamed = 0
        self.log.warning("CURVE: refused client key %s%s: not in --curve-allow %s%s", key.decode("ascii", "replace"),
                         f" from {peer}" if peer else "", self.allow_dir, more)


def _zap_handler(ctx: zmq.Context[zmq.Socket[bytes]], allowed: frozenset[bytes], allow_dir: str) -> Any:
    """A pyzmq ThreadAuthenticator that admits ``allowed`` and logs the keys it refuses, with
    the peer address its ZAP request carries (an IP; for ipc://, the peer's uid:gid:pid)."""
    from zmq.auth.thread import ThreadAuthenticator

    rejections = Rejections(log, allow_dir)

    class ZapHandler(ThreadAuthenticator):
        peer = ""

        async def handle_zap_message(self, msg: list[bytes]) -> None:
            # One request at a time, on the handler's thread: the callback below is this one's.
            self.peer = msg[3].decode("utf-8", "replace") if len(msg) > 3 else ""
            await super().handle_zap_message(msg)

        def callback(self, domain: str, key: bytes) -> bool:
            """The credentials provider's (zmq.auth): ``key`` is the client's, z85."""
            if key in allowed:
                return True
            rejections.refused(key, self.peer, time.monotonic())
            return False

    return ZapHandler(ctx, log=logging.getLogger("cuagent.curve.zap"))


class Authenticator:
    """The ZAP handler of one context: admits CURVE clients whose key is in the allow dir, and
    logs those it refuses. Must be started before the sockets it guards accept connections."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], keys: ServerKeys) -> None:
        # Read by ServerKeys.load; keys made by hand have none yet.
        allowed = keys.allowed or allowed_keys(keys.allow_dir)
        self._auth = _zap_handler(ctx, allowed, keys.allow_dir)
        self._auth.start()
        # domain "*": every socket of this context.
        self._auth.configure_curve_callback(domain="*", credentials_provider=self._auth)
        log.info("CURVE: admitting the %d public key(s) in %s", len(allowed), keys.allow_dir)

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


def curve_hint(keys: Optional[ClientKeys]) -> str:
    """What a client with CURVE keys adds to "no reply from X": a server that refuses its key
    says nothing else to it (its own log names the key)."""
    return " (down, unreachable, or refusing this client's CURVE key)" if keys is not None else ""


def no_reply_hint(events: Sequence[tuple[int, int]], curve: bool) -> str:
    """Why a request got no reply, as far as its socket's monitor ``events`` ((event, value)
    pairs) tell: the words after "no reply from X within T s". A CURVE server that refuses a
    client says nothing to it but a failed handshake, which only the monitor sees.

    A server that refuses a key sends an ERROR (HANDSHAKE_FAILED_AUTH). One that does not
    speak the client's mechanism closes the connection: the client sees the mismatch if it
    read the server's greeting first, else only that the handshake broke (NO_DETAIL)."""
    failed = handshake_hint(events, curve)
    if failed is not None:
        return failed
    seen = dict(events)
    if zmq.EVENT_HANDSHAKE_SUCCEEDED in seen:
        return "connected: the server is up but did not answer in time; --timeout waits longer"
    if zmq.EVENT_CONNECTED in seen:
        return "connected, but no handshake completed (a server refusing this client's CURVE key, or overloaded)"
    return "is an agent or relay running there? --timeout waits longer"  # nothing accepted the connection


# What a client's socket monitor watches for handshake_hint (and the CLI's no_reply_hint).
HANDSHAKE_EVENTS = (zmq.EVENT_CONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
                    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH)


def handshake_hint(events: Sequence[tuple[int, int]], curve: bool) -> Optional[str]:
    """Why the handshakes of a client's socket failed, as far as its monitor ``events`` tell
    (see :func:`no_reply_hint`); None when none failed, or when the last one succeeded (a
    connection reset once, then a handshake that went through: the server is there)."""
    outcomes = [e for e, _ in events if e != zmq.EVENT_CONNECTED]
    if outcomes and outcomes[-1] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
        return None
    seen = dict(events)
    if zmq.EVENT_HANDSHAKE_FAILED_AUTH in seen:
        return "the server refused this client's CURVE key: it is not in the server's --curve-allow directory"
    mismatch = seen.get(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL) == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
    broke = zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL in seen or zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL in seen
    if curve and mismatch:
        return "the server does not use CURVE: leave out --curve-client-key and --curve-server-key"
    if curve and broke:
        return "the CURVE handshake failed: the server may not use CURVE, or --curve-server-key is not its public key"
    if mismatch:
        return "the server requires CURVE: give --curve-client-key and --curve-server-key"
    if broke:
        return ("the handshake failed: the server may require CURVE (give --curve-client-key and "
                "--curve-server-key), or it is no cuagent sync endpoint")
    return None


_monitors = itertools.count()


def watch(sock: zmq.Socket[bytes], events: int) -> zmq.Socket[bytes]:
    """A monitor of ``sock`` for ``events`` (a PAIR to read them from), on an inproc address of
    its own: pyzmq's default names it after the socket's file descriptor, which the next socket
    may reuse before libzmq has let go of the old name ("Address already in use")."""
    return sock.get_monitor_socket(events, addr=f"inproc://cuagent-monitor-{os.getpid()}-{next(_monitors)}")


def monitor_events(monitor: zmq.Socket[bytes]) -> list[tuple[int, int]]:
    """The (event, value) pairs a socket monitor (``sock.get_monitor_socket()``) holds now."""
    from zmq.utils.monitor import recv_monitor_message

    out = []
    while monitor.poll(0):
        event = recv_monitor_message(monitor, zmq.NOBLOCK)
        out.append((int(event["event"]), int(event["value"])))
    return out
