"""msgpack as the feed uses it (PROTOCOL.md §3), the error every decoder raises, and the
field checks the body decoders share."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Union

import msgpack
import numpy as np

_UINT64_MAX = (1 << 64) - 1


class ProtocolError(ValueError):
    """A frame, header or body that does not follow PROTOCOL.md; ``field`` names the culprit."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason


def pack(obj: Any) -> bytes:
    """msgpack with str as str and bytes as bin, floats as float64 (so re-encoding is exact)."""
    packed: bytes = msgpack.packb(obj, use_bin_type=True)  # msgpack has no type hints
    return packed


def packer() -> Callable[[Any], bytes]:
    """A :func:`pack` of one's own (same bytes): it keeps its msgpack Packer, where pack()
    builds one per call, which shows on a path run per message (the agent's headers)."""
    pack_one: Callable[[Any], bytes] = msgpack.Packer(use_bin_type=True).pack
    return pack_one


def unpack(data: bytes, field_name: str = "frame") -> Any:
    try:
        # strict_map_key=False: we validate key types ourselves and name the field when wrong.
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, TypeError) as e:
        raise ProtocolError(field_name, f"not valid msgpack ({msgpack_error(e)})") from None


_DESCRIBE_CHARS = 64


def msgpack_error(e: Exception) -> str:
    # StackError ("nested too deeply for the unpacker") carries no message of its own.
    text = str(e) or type(e).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def describe(value: Any) -> str:
    """A value from the wire, for an error message: its repr when it is a short scalar,
    otherwise its msgpack type and size. Never recursive (a value nested 1,000 deep must not
    exhaust the stack) and never long (a 64 KiB string is not echoed back)."""
    if value is None or isinstance(value, (bool, float)):
        return repr(value)
    if isinstance(value, int):
        return repr(value) if -(1 << 64) < value < (1 << 64) else "an int wider than 64 bits"
    if isinstance(value, str):
        if len(value) <= _DESCRIBE_CHARS:
            return repr(value)
        return f"{value[:_DESCRIBE_CHARS]!r}... ({len(value)} characters)"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"bin of {len(value)} bytes"
    if isinstance(value, msgpack.ExtType):  # a tuple: test before arrays
        return f"ext type {value.code} of {len(value.data)} bytes"
    if isinstance(value, (list, tuple)):
        return f"array of {len(value)} items"
    if isinstance(value, dict):
        return f"map of {len(value)} entries"
    return type(value).__name__



def uint64(value: Any, field_name: str) -> int:
    if type(value) is not int or not 0 <= value <= _UINT64_MAX:
        raise ProtocolError(field_name, f"expected uint64, got {describe(value)}")
    return value



def get(m: Mapping[str, Any], key: str, types: Union[type, tuple[type, ...]], where: str, optional: bool = False) -> Any:
    if key not in m:
        if optional:
            return None
        raise ProtocolError(f"{where}.{key}", "missing")
    value = m[key]
    # bool is an int subclass: never accept it where a number is expected.
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ProtocolError(f"{where}.{key}", f"expected {type_names(types)}, got bool")
    if not isinstance(value, types):
        raise ProtocolError(f"{where}.{key}", f"expected {type_names(types)}, got {type(value).__name__}")
    return value


def type_names(types: Union[type, tuple[type, ...]]) -> str:
    if isinstance(types, tuple):
        return " or ".join(t.__name__ for t in types)
    return types.__name__


def as_map(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(where, f"expected a map, got {type(value).__name__}")
    for k in value:
        if not isinstance(k, str):
            raise ProtocolError(where, f"map key {describe(k)} is not a string")
    return value


def as_array(value: Any, dtype: str, n: Optional[int], where: str) -> np.ndarray:
    if not isinstance(value, bytes):
        raise ProtocolError(where, f"expected bin, got {type(value).__name__}")
    itemsize = np.dtype(dtype).itemsize
    if len(value) % itemsize:
        raise ProtocolError(where, f"{len(value)} bytes is not a whole number of {dtype} elements")
    arr = np.frombuffer(value, dtype)
    if n is not None and arr.shape[0] != n:
        raise ProtocolError(where, f"{arr.shape[0]} elements, expected {n}")
    return arr


NUMBER = (int, float)
