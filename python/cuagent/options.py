"""Settings with their bounds: one declaration gives a flag, a TOML key and the check of both.

Every number an operator can set has a range, and a value outside it (a negative duration, a
NaN interval, a seed wider than 64 bits, a port past 65535) is refused with one line naming
the value and the range, whether it came from a flag or from the ``--config`` file. Nothing
reaches pyzmq or the C++ engine unchecked, where it would end in a traceback or, worse, be
accepted and do something else (``tcp://...:99999`` binds port 34463).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any, Callable, NoReturn, Optional

__all__ = ["Option", "OptionError", "OneLineParser", "bind_endpoint", "connect_endpoint", "listen", "nonempty"]


class OptionError(ValueError):
    """A value outside what a setting accepts; the message names the value and the range."""


def _num(x: float) -> str:
    """A bound as a person writes it: 86400, 0.01, 1e-06, 18446744073709551615."""
    if isinstance(x, int):
        return str(x)
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else f"{x:g}"


@dataclass(frozen=True)
class Option:
    """One setting: its TOML key (``name``) and flag (``--name`` with dashes), its type
    (int, float, str, bool: a TOML true/false and a ``--name``/``--no-name`` flag pair, or
    list: a TOML list of strings or a comma-separated flag, which may be repeated), bounds
    (for a list: ``min`` items) and help. ``check`` validates a string (each item of a list) further
    and raises OptionError saying what it accepts; it returns the value to keep."""

    name: str
    type: type = str
    default: Any = None
    help: str = ""
    min: Optional[float] = None
    max: Optional[float] = None
    min_open: bool = False  # the lower bound itself is excluded (> min)
    unit: str = ""
    choices: Optional[tuple[str, ...]] = None
    metavar: Optional[str] = None
    check: Optional[Callable[[str], str]] = None
    # A backend's setting: the keyword its make_driver takes it as (None: the name itself).
    param: Optional[str] = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def accepted(self) -> str:
        """What the setting accepts, for messages and --help."""
        if self.choices is not None:
            return "one of " + ", ".join(self.choices)
        if self.type in (int, float):
            what = "an integer" if self.type is int else "a number"
            unit = f" {self.unit}" if self.unit else ""
            if self.min is not None and self.max is not None:
                if self.min_open:
                    return f"{what} > {_num(self.min)} and <= {_num(self.max)}{unit}"
                return f"{what} from {_num(self.min)} to {_num(self.max)}{unit}"
            if self.min is not None:
                return f"{what} {'>' if self.min_open else '>='} {_num(self.min)}{unit}"
            return what
        if self.type is list:
            return "a list of strings (or one comma-separated string)"
        if self.type is bool:
            return "true or false"
        return "a string"

    # -- validation --------------------------------------------------------------------
    def validate(self, value: Any, shown: str) -> Any:
        """``value`` (of a TOML/Python type) checked against type and bounds, normalised
        (an int for a float setting becomes a float; a list's items are stripped).
        ``shown`` is how the value is named in a message (as typed, or as TOML wrote it)."""
        if self.type is list:
            if isinstance(value, str):
                value = value.split(",")
            if not isinstance(value, list):
                raise OptionError(f"{shown} is not {self.accepted()}")
            if self.min is not None and len(value) < self.min:
                raise OptionError(f"{shown} has {len(value)} item(s): expected at least {_num(self.min)}")
            items = []
            for item in value:
                # Name the item only where the value has several: "'a,b': item 'b': ...".
                where = shown if len(value) == 1 else f"{shown}: item {item!r}"
                if not isinstance(item, str) or not item.strip():
                    raise OptionError(f"{where} is not a non-empty string")
                items.append(self._checked(item.strip(), where))
            return items
        if self.type is bool:
            if not isinstance(value, bool):  # 1 or "yes" in a file is a slip, not a switch
                raise OptionError(f"{shown} is not {self.accepted()}")
            return value
        if self.type is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise OptionError(f"{shown} is not an integer: expected {self.accepted()}")
        elif self.type is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise OptionError(f"{shown} is not a number: expected {self.accepted()}")
            value = float(value)
        elif not isinstance(value, str):
            raise OptionError(f"{shown} is not a string: expected {self.accepted()}")
        if self.type in (int, float):
            # Written so that NaN fails every comparison, hence every range.
            low_ok = self.min is None or (value > self.min if self.min_open else value >= self.min)
            high_ok = self.max is None or value <= self.max
            if not (low_ok and high_ok):
                raise OptionError(f"{shown} is out of range: expected {self.accepted()}")
            return value
        if self.choices is not None and value not in self.choices:
            raise OptionError(f"{shown} is not {self.accepted()}")
        return self._checked(value, shown)

    def _checked(self, value: str, shown: str) -> str:
        if self.check is None:
            return value
        try:
            return self.check(value)
        except OptionError as e:
            raise OptionError(f"{shown}: {e}") from None

    def from_text(self, text: str) -> Any:
        """A flag's text -> value (argparse ``type=``); errors become argparse's one line."""
        try:
            if self.type is int:
                try:
                    value: Any = int(text, 10)
                except ValueError:
                    raise OptionError(f"{text!r} is not an integer: expected {self.accepted()}") from None
            elif self.type is float:
                try:
                    value = float(text)
                except ValueError:
                    raise OptionError(f"{text!r} is not a number: expected {self.accepted()}") from None
            else:
                value = text
            return self.validate(value, text if self.type in (int, float) else repr(text))
        except OptionError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    def from_toml(self, value: Any) -> Any:
        return self.validate(value, f"{self.name} = {_toml_repr(value)}")

    def add_to(self, parser: Any, *names: str, default: Any = None, **overrides: Any) -> None:
        """Add the flag (or, given ``names``, that flag or positional argument) to an argparse
        parser or group. Its default is None unless given: ``cuagent run`` layers defaults <
        file < flags, so an absent flag must read None. A list flag may be repeated; its
        values add up."""
        metavar = self.metavar
        if metavar is None and self.choices is not None:
            metavar = "{" + ",".join(self.choices) + "}"
        kwargs: dict[str, Any] = dict(type=self.from_text, default=default, metavar=metavar, help=self.help_text())
        if self.type is list:
            kwargs["action"] = "extend"
        elif self.type is bool:
            # --name / --no-name, None when neither is given: a flag can turn off what the
            # file turned on, and an absent flag leaves the file's value.
            kwargs = dict(action=argparse.BooleanOptionalAction, default=default, help=self.help_text())
        kwargs.update(overrides)
        parser.add_argument(*(names or (self.flag,)), **kwargs)

    def help_text(self) -> str:
        """The --help line: the help, the range, the default."""
        parts = [self.help] if self.help else []
        if self.type in (int, float):
            parts.append(f"[{self.accepted()}]")
        if self.type is bool:
            parts.append("(default on)" if self.default else "(default off)")
        elif isinstance(self.default, list):
            if self.default:
                parts.append(f"(default {','.join(self.default)})")
        elif self.default is not None:
            parts.append(f"(default {_num(self.default) if self.type in (int, float) else self.default})")
        return " ".join(parts).replace("%", "%%")


def _toml_repr(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but an error is one line (``cuagent run: error: ...``) and exit 2, not the
    whole usage text first: the line that matters stays the last thing on the terminal and
    in the journal. Subcommand parsers inherit it."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# --------------------------------------------------------------------------- endpoints

# Linux's sockaddr_un.sun_path holds 108 bytes with the terminating NUL; libzmq refuses longer.
IPC_PATH_MAX = 107


def _tcp(rest: str, binding: bool) -> None:
    host, sep, port = rest.rpartition(":")
    if not sep or not port:
        raise OptionError("no port: expected tcp://HOST:PORT")
    if not host:
        raise OptionError("no host: expected tcp://HOST:PORT")
    if host.startswith("[") != host.endswith("]"):
        raise OptionError(f"unbalanced brackets in host {host!r} (IPv6 is tcp://[::1]:PORT)")
    if binding:
        if port in ("*", "0"):
            return  # an ephemeral port, chosen by the system
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise OptionError(f"port {port!r} is out of range: expected 1 to 65535, or * (or 0) for any free port")
    else:
        if host == "*":
            raise OptionError("cannot connect to host '*': name the host")
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise OptionError(f"port {port!r} is out of range: expected 1 to 65535")


def _endpoint(text: str, binding: bool) -> str:
    transport, sep, rest = text.partition("://")
    if not sep:
        raise OptionError("no transport: expected tcp://HOST:PORT or ipc://PATH")
    if transport == "tcp":
        _tcp(rest, binding)
    elif transport == "ipc":
        if not rest:
            raise OptionError("empty ipc path: expected ipc://PATH")
        if len(rest.encode()) > IPC_PATH_MAX:
            raise OptionError(f"ipc path of {len(rest.encode())} bytes: expected at most {IPC_PATH_MAX}")
    elif transport == "inproc":
        raise OptionError("inproc:// is reachable only inside one process: use ipc:// or tcp://")
    else:
        raise OptionError(f"transport {transport!r} is not supported: expected tcp:// or ipc://")
    return text


def bind_endpoint(text: str) -> str:
    """An endpoint to bind: tcp://HOST:PORT (1..65535, or * / 0 for a free port) or ipc://PATH."""
    return _endpoint(text, binding=True)


def connect_endpoint(text: str) -> str:
    """An endpoint to connect to: tcp://HOST:PORT (1..65535) or ipc://PATH."""
    return _endpoint(text, binding=False)


def peer(text: str) -> str:
    """``FEED[,SYNC]`` of an agent or relay (tcp sync defaults to feed port + 1), both checked."""
    from .client import parse_endpoint

    # The feed's own form first: ``gpu01:7710`` lacks its transport and ``tcp://gpu01`` its
    # port, which is what to say, not that the sync endpoint is missing (parse_endpoint can
    # only derive it from a well-formed tcp feed).
    feed = text.partition(",")[0].strip()
    if feed:
        try:
            connect_endpoint(feed)
        except OptionError as e:
            raise OptionError(f"feed endpoint {feed!r}: {e}") from None
    try:
        ep = parse_endpoint(text)
    except ValueError as e:
        raise OptionError(str(e)) from None
    for what, endpoint in (("feed", ep.feed), ("sync", ep.sync)):
        try:
            connect_endpoint(endpoint)
        except OptionError as e:
            raise OptionError(f"{what} endpoint {endpoint!r}: {e}") from None
    return text


def nonempty(text: str) -> str:
    """A path or name that must not be empty: an unset variable in a unit file is a mistake,
    not a request for the default."""
    if not text:
        raise OptionError("empty: expected a path")
    return text


def parse_listen(spec: str) -> tuple[str, int]:
    """An HTTP listen address: ``HOST:PORT``, ``:PORT`` (every interface) or ``[IPv6]:PORT`` ->
    (host, port). Port 0 takes any free port (the bound one is logged). The one parser of
    every ``--listen``-style flag (the exporters' /metrics, the scheduler extender)."""
    host, sep, port_text = spec.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535 or host.count("[") != host.count("]"):
        raise ValueError(f"{spec!r}: expected HOST:PORT with PORT from 0 to 65535")
    return host.strip("[]") or "0.0.0.0", int(port_text)


def listen(spec: str) -> str:
    """An Option's check of an HTTP listen address (kept as text, parsed where it is bound)."""
    try:
        parse_listen(spec)
    except ValueError:
        raise OptionError("expected HOST:PORT with PORT from 0 to 65535") from None
    return spec


def listen_address(spec: str) -> tuple[str, int]:
    """argparse's type for a listen address: its error names the flag itself."""
    try:
        return parse_listen(spec)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
