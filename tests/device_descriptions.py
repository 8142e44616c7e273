"""Small hand-made device descriptions for tests of the core's aggregator and encoders: one
partition (the whole device) over a few units at the levels given."""

from __future__ import annotations

from typing import Sequence

from cuagent import _core


def flat_device(model: str, units: int, counters: Sequence[_core.CounterSpec] = (), levels: Sequence[str] = ("sm",),
                counts: Sequence[int] = ()) -> _core.DeviceDescription:
    """Device "dev-0" (vendor and backend "mock", SMs) of ``units`` units at ``levels``
    (``counts``: each level's elements, default ``units`` each), in one "whole" partition."""
    d = _core.DeviceDescription()
    d.id, d.vendor, d.model, d.backend, d.unit_kind = "dev-0", "mock", model, "mock", "sm"
    d.units, d.levels, d.counts = units, list(levels), list(counts) or [units] * len(levels)
    p = _core.Partition()
    p.id, p.kind, p.units = "0", "whole", units
    d.partitions = [p]
    d.counters = list(counters)
    return d
