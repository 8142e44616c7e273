"""The one place that knows the backends.

A backend is a Python module with a ``BACKEND = Backend(...)``: its name, the settings it
adds (each an :class:`~cuagent.options.Option` with type, default, bounds and help, which
become a ``cuagent run`` flag and a TOML key), how to build its driver, its slow path, and
whether ``--driver auto`` may pick it. Everything else is derived from here: the
``--driver`` choices, the flags and keys, the order ``auto`` tries, the engine's driver
construction and the agent's slow path.

Backends are found in two places:

* the modules of this package (``cuagent/backends/<name>.py``; ``_private`` ones and this
  module excepted), so adding one in the repository touches its own module, its binding
  and its C++ driver folder, nothing else;
* the entry-point group ``cuagent.backends`` of installed distributions, so a backend can
  live outside this repository, as pytest plugins do::

      [project.entry-points."cuagent.backends"]
      fakegpu = "cuagent_fakegpu:BACKEND"

A backend that cannot be loaded (an import error, a name or option already taken) does not
break the others: it is left out with a warning, and asking for it by name says why.
"""

from __future__ import annotations

import functools
import importlib
import logging
import pkgutil
import re
import sys
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence

from ..options import Option

if TYPE_CHECKING:
    from .. import _core
    from ..slow_path import SlowPath

__all__ = ["Backend", "Option", "ENTRY_POINT_GROUP", "UnknownBackend", "all_backends", "auto_backends", "failure",
           "get", "names", "register"]

log = logging.getLogger("cuagent.backends")

ENTRY_POINT_GROUP = "cuagent.backends"
_NOT_BACKENDS = {"registry"}


@dataclass(frozen=True)
class Backend:
    """One backend.

    ``make_driver(devices, seed, **kwargs)`` builds the native driver (what
    ``Engine(driver=name, devices=..., **kwargs)`` calls). ``options`` are the settings it
    adds to ``cuagent run``; their names are global (one flag, one TOML key each), so they
    carry the backend's name (``nvml_library``), unless several backends share one setting by
    listing the same Option object (``kfd_root``). ``driver_args`` turns their values (None
    when not set) into ``(devices, kwargs)`` for ``make_driver``; by default there are no
    devices (all of them) and each set option is passed as its ``param`` (or its name).
    ``slow_path(kwargs, process_interval_s, topology_poll_s)`` gives the agent's per-publish
    queries (processes, partition layout changes). ``auto``: ``--driver auto`` may pick it
    (a real GPU backend; never a simulation), trying lower ``auto_priority`` first.
    ``chosen_only``: options that are an error unless this backend is the driver, because
    they would otherwise be ignored without a word (mock faults with a real GPU)."""

    name: str
    make_driver: Callable[..., _core.Driver]
    options: tuple[Option, ...] = ()
    driver_args: Optional[Callable[[Mapping[str, Any]], tuple[Optional[Sequence[Any]], dict[str, Any]]]] = None
    slow_path: Optional[Callable[[dict[str, Any], float, float], SlowPath]] = None
    auto: bool = False
    auto_priority: int = 100
    chosen_only: tuple[str, ...] = ()
    help: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name == "auto":
            raise ValueError(f"backend name {self.name!r} must be an identifier other than 'auto'")
        names = [o.name for o in self.options]
        if len(set(names)) != len(names):
            raise ValueError(f"backend {self.name}: an option is declared twice in {names}")
        unknown = set(self.chosen_only) - set(names)
        if unknown:
            raise ValueError(f"backend {self.name}: chosen_only names no option of it: {sorted(unknown)}")

    def args(self, settings: Mapping[str, Any]) -> tuple[Optional[Sequence[Any]], dict[str, Any]]:
        """(devices, make_driver kwargs) from this backend's settings (absent: the default)."""
        values = {o.name: settings.get(o.name, o.default) for o in self.options}
        if self.driver_args is not None:
            return self.driver_args(values)
        by_param = {o.param or o.name: values[o.name] for o in self.options}
        return None, {k: v for k, v in by_param.items() if v is not None}

    def flag_text(self, message: str) -> str:
        """A driver's error as a ``cuagent run`` user reads it. The drivers name a setting by
        the keyword their factory takes (``pass library=<path>``, written for Python callers
        of ``Engine``); on the command line that setting is this backend's flag and key
        (``--amdsmi-library PATH``, ``amdsmi_library`` in --config), so the keyword is
        replaced by them."""
        for o in self.options:
            keyword = re.escape(o.param or o.name)
            named = f"{o.flag} {o.metavar or 'VALUE'} (or {o.name} in the --config file)"
            message = re.sub(rf"(?<![\w-]){keyword}=<[^>]*>", lambda _: named, message)
        return message


class UnknownBackend(ValueError):
    pass


class _Registry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded = False
        self._backends: dict[str, Backend] = {}
        self._failed: dict[str, str] = {}  # name -> why it is left out

    def _load(self) -> None:
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            package = sys.modules[__package__ or "cuagent.backends"]
            for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
                if info.name.startswith("_") or info.name in _NOT_BACKENDS:
                    continue
                self._add_from(info.name, functools.partial(importlib.import_module, f"{package.__name__}.{info.name}"),
                               builtin=True)
            for ep in _entry_points():
                self._add_from(ep.name, ep.load, builtin=False)

    def _add_from(self, name: str, load: Callable[[], Any], builtin: bool) -> None:
        where = f"cuagent/backends/{name}.py" if builtin else f"entry point {ENTRY_POINT_GROUP}:{name}"
        try:
            obj = load()
            backend = getattr(obj, "BACKEND", None) if isinstance(obj, ModuleType) else obj
            if not isinstance(backend, Backend):
                raise TypeError(f"it gives {type(backend).__name__}, not a cuagent Backend")
            if backend.name != name:
                raise ValueError(f"it is named {backend.name!r}")
            self._add(backend)
        except Exception as e:  # noqa: BLE001 — one broken backend must not take the others down
            self._failed[name] = f"{where}: {e}"
            log.warning("backend %s left out: %s: %s", name, where, e)

    def _add(self, backend: Backend) -> None:
        if backend.name in self._backends:
            raise ValueError(f"a backend named {backend.name!r} is already registered")
        taken = {o.name: (b.name, o) for b in self._backends.values() for o in b.options}
        # Backends share a setting only by sharing its declaration (the AMD backends' kfd_root):
        # the same Option object is one flag and one key; another one of the same name clashes.
        clash = [o.name for o in backend.options if o.name in taken and taken[o.name][1] is not o]
        if clash:
            raise ValueError(f"option(s) {clash} already belong to backend {taken[clash[0]][0]!r}")
        self._backends[backend.name] = backend

    def register(self, backend: Backend) -> None:
        self._load()
        with self._lock:
            self._add(backend)
            self._failed.pop(backend.name, None)

    def disable(self, name: str, reason: str) -> None:
        with self._lock:
            if self._backends.pop(name, None) is not None:
                self._failed[name] = reason
                log.warning("backend %s left out: %s", name, reason)

    def all(self) -> dict[str, Backend]:
        self._load()
        return dict(self._backends)

    def failure(self, name: str) -> Optional[str]:
        self._load()
        return self._failed.get(name)

    def get(self, name: str) -> Backend:
        self._load()
        backend = self._backends.get(name)
        if backend is not None:
            return backend
        if name in self._failed:
            raise UnknownBackend(f"backend {name!r} could not be loaded: {self._failed[name]}")
        raise UnknownBackend(f"unknown driver {name!r}: expected one of {', '.join(self._backends)}")


def _entry_points() -> Sequence[Any]:
    from importlib import metadata

    if sys.version_info >= (3, 10):
        return list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    return list(metadata.entry_points().get(ENTRY_POINT_GROUP, []))  # pragma: no cover - Python 3.9


_registry = _Registry()


def all_backends() -> dict[str, Backend]:
    """Every usable backend by name: this package's (by name), then installed ones."""
    return _registry.all()


def names() -> tuple[str, ...]:
    return tuple(all_backends())


def get(name: str) -> Backend:
    """The backend called ``name``; UnknownBackend (a ValueError) says why there is none."""
    return _registry.get(name)


def failure(name: str) -> Optional[str]:
    """Why the backend called ``name`` was left out (None: it was not)."""
    return _registry.failure(name)


def auto_backends() -> tuple[Backend, ...]:
    """What ``--driver auto`` tries, in order: real GPU backends only."""
    return tuple(sorted((b for b in all_backends().values() if b.auto), key=lambda b: (b.auto_priority, b.name)))


def register(backend: Backend) -> None:
    """Add a backend from Python (an entry point is the way for an installed package)."""
    _registry.register(backend)


def disable(name: str, reason: str) -> None:
    """Leave a loaded backend out (config.py does, for one whose option names a setting
    that already exists)."""
    _registry.disable(name, reason)
