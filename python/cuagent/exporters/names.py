"""Prometheus names for what the feed carries, after the Prometheus naming conventions
(https://prometheus.io/docs/practices/naming/): base units spelled out as a suffix, ``_total``
on counters, ``_info`` on identity metrics whose value is 1.

A feed counter's metric name is derived, never listed: ``cuagent_`` + its wire name + the
suffix of its wire unit (PROTOCOL.md §3.1), so a counter a backend adds later is exported
without an edit here, and the feed and the metric keep one name (``sm_active`` is
``cuagent_sm_active_ratio``, ``power`` is ``cuagent_power_watts``).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Optional

PREFIX = "cuagent_"

#: Wire unit (PROTOCOL.md §3.1) -> metric name suffix. Base units only (seconds, bytes,
#: watts, celsius, hertz; ratios in [0, 1]). ``count`` is a plain number of things and takes
#: no suffix; ``mask`` is a vendor bitmask (throttle reasons), which has no unit and says so.
UNIT_SUFFIX: dict[str, str] = {
    "ratio": "_ratio",
    "W": "_watts",
    "C": "_celsius",
    "bytes": "_bytes",
    "Hz": "_hertz",
    "B/s": "_bytes_per_second",
    "count": "",
    "mask": "_mask",
}

#: Every unit suffix a cuagent metric may end in (before ``_total``/``_info``): the base units
#: above plus those of the exporter's own metrics.
BASE_UNIT_SUFFIXES = ("_seconds", "_joules", "_bytes_per_second", "_ratio", "_watts", "_celsius", "_bytes",
                      "_hertz", "_mask")

# A wire counter name that can be part of a metric name as it is. Anything else (a feed is
# input from the network) is not exported rather than mangled into a name nobody chose.
_COUNTER_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


@lru_cache(maxsize=4096)  # called for every counter of every GPU at each scrape
def counter_metric(name: str, unit: str, prefix: str = PREFIX) -> Optional[str]:
    """The metric name of feed counter ``name`` measured in wire unit ``unit``; None when the
    unit is unknown (a newer protocol's unit: no name is guessed for it) or the name is not
    usable in a metric name."""
    suffix = UNIT_SUFFIX.get(unit)
    if suffix is None or not _COUNTER_NAME.fullmatch(name):
        return None
    if suffix and name.endswith(suffix):
        suffix = ""  # e.g. a counter already called "..._bytes"
    return f"{prefix}{name}{suffix}"
