"""Point pynvml at a given libnvidia-ml.

pynvml opens ``libnvidia-ml.so.1`` through the dynamic loader's search path
the first time it is initialised and keeps the handle in the module global
``nvmlLib`` (plus a cache of function pointers). To use a specific library
file (a fake in tests, a non-standard install in production) we install our
own handle in that global before pynvml's first ``nvmlInit``; pynvml then
skips its own search. This is pynvml's internal state, checked here so that a
pynvml release that renames it fails loudly instead of silently using another
library.
"""
from __future__ import annotations

import ctypes
import threading
from types import ModuleType

_lock = threading.Lock()
_current: str | None = None


def use_library(path: str | None) -> ModuleType:
    """Return pynvml, bound to `path` (None: pynvml's own default search)."""
    import pynvml

    module: ModuleType = pynvml  # pynvml ships no type hints
    global _current
    with _lock:
        if path is None or path == _current:
            return module
        for name in ("nvmlLib", "_nvmlGetFunctionPointer_cache", "libLoadLock"):
            if not hasattr(pynvml, name):
                raise RuntimeError(
                    f"pynvml {getattr(pynvml, '__version__', '?')} has no '{name}': cannot point "
                    f"it at {path}; set LD_LIBRARY_PATH instead")
        handle = ctypes.CDLL(path)
        with pynvml.libLoadLock:
            pynvml.nvmlLib = handle
            pynvml._nvmlGetFunctionPointer_cache.clear()
        _current = path
        return module
