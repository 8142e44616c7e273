"""The mock backend: simulated devices driven by a block-scheduler model (C++)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

from cuagent import _core
from cuagent.mock import FAULT_SYNTAX, FaultError, MockDevice, parse_fault, with_faults
from cuagent.options import OptionError

from .registry import Backend, Option

__all__ = ["BACKEND", "MOCK_DEVICES", "MOCK_FAULTS", "make_driver", "parse_devices"]

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


# --------------------------------------------------------------------------- cuagent run settings


def _device_spec(text: str) -> str:
    preset, _, scenario = text.partition(":")
    if not preset.strip() or (":" in text and not scenario.strip()):
        raise OptionError("expected PRESET[:SCENARIO], e.g. h100-sxm:fragmented")
    return text


def _fault_spec(text: str) -> str:
    try:
        parse_fault(text)
    except FaultError as e:
        raise OptionError(e.reason) from None
    return text


MOCK_DEVICES = Option("mock_devices", list, ["h100-sxm:training"],
                      "simulated devices, e.g. h100-sxm:fragmented,mi300x:training",
                      min=1, metavar="PRESET:SCENARIO,...", check=_device_spec)
MOCK_FAULTS = Option("mock_faults", list, [],
                     "faults of the simulated devices (repeatable): " + FAULT_SYNTAX
                     + ", times from the device's first read, e.g. 1:lost@5s..8s,0:errors=0.1,*:slow=300ms/2s",
                     metavar="DEVICE:FAULT,...", check=_fault_spec)


def parse_devices(specs: Sequence[str]) -> list[tuple[str, str]]:
    """``["h100-sxm:fragmented", "mi300x"]`` -> [(preset, scenario)] (scenario default training)."""
    out = []
    for item in specs:
        preset, _, scenario = item.partition(":")
        out.append((preset.strip(), scenario.strip() or "training"))
    return out


def _driver_args(settings: Mapping[str, Any]) -> tuple[Optional[Sequence[Any]], dict[str, Any]]:
    devices = [MockDevice(preset, scenario=scenario) for preset, scenario in parse_devices(settings["mock_devices"])]
    return with_faults(devices, [parse_fault(spec) for spec in settings["mock_faults"]]), {}


# Never picked by --driver auto: a GPU server must not publish simulated data because a
# library failed to load.
BACKEND = Backend(
    name="mock",
    make_driver=make_driver,
    options=(MOCK_DEVICES, MOCK_FAULTS),
    driver_args=_driver_args,
    chosen_only=("mock_faults",),
    help="simulated GPUs (a block-scheduler model); only when asked for",
)
