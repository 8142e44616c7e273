"""The mock backend: simulated devices driven by a block-scheduler model (C++)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cuagent import _core
from cuagent.mock import MockDevice

__all__ = ["make_driver"]

_DEVICE_OPTIONS = ("preset", "scenario", "units")


def make_driver(devices: Sequence[Any] | None, seed: int, **options: Any) -> _core.Driver:
    """Build the mock driver.

    ``devices`` items are :class:`MockDevice`, preset names (``"h100-sxm"`` or
    ``"h100-sxm:fragmented"``), or dicts of MockDevice fields. With ``devices``
    None, ``count`` devices (default 1) are made from ``preset``, ``scenario`` and
    ``units``; those options are also defaults for string items.
    """
    unknown = set(options) - {*_DEVICE_OPTIONS, "count"}
    if unknown:
        raise TypeError(f"mock driver: unknown option(s) {', '.join(sorted(unknown))}")
    defaults = {k: options[k] for k in _DEVICE_OPTIONS if options.get(k) is not None}
    if devices is None:
        count = options.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"mock driver: count must be a positive integer, got {count!r}")
        items: list[MockDevice] = [MockDevice(**defaults) for _ in range(count)]
    else:
        if isinstance(devices, (str, bytes, Mapping)) or not isinstance(devices, Sequence):
            raise TypeError(f"mock driver: devices must be a list, got {devices!r}")
        items = [_device(d, defaults, i) for i, d in enumerate(devices)]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"mock driver: seed must be a non-negative integer, got {seed!r}")
    return _core.make_mock_driver([d.to_spec() for d in items], seed)


def _device(item: Any, defaults: dict[str, Any], index: int) -> MockDevice:
    if isinstance(item, MockDevice):
        return item
    if isinstance(item, str):
        preset, _, scenario = item.partition(":")
        fields = dict(defaults, preset=preset)
        if scenario:
            fields["scenario"] = scenario
        return MockDevice(**fields)
    if isinstance(item, Mapping):
        try:
            return MockDevice(**{**defaults, **item})
        except TypeError as e:
            raise ValueError(f"mock device {index}: {e}") from None
    raise TypeError(f"mock device {index}: expected MockDevice, str or dict, got {item!r}")
