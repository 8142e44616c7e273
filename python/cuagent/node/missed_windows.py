"""The agent's log of devices that miss state windows: a stalling GPU must show in the log, not
only as seq gaps on the feed (PROTOCOL.md §4) and in Prometheus.

Per device: a WARNING when it misses windows, then at most one every ``report_every_s`` with how
many it missed since the last (a device stalling every few seconds must not flood the log);
one when nothing at all has arrived for that long (a stall still in progress shows before it
ends); and one INFO line once it has missed none for ``report_every_s`` after a warning. A lost
device is not followed: its device_lost and device_back events say why nothing came.

Called on the agent's loop thread only, with the loop's monotonic clock."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable, Optional

log = logging.getLogger("cuagent.agent")

# At most one warning per device this often; this long without a miss after one is a recovery.
REPORT_EVERY_S = 10.0


@dataclass
class _Device:
    seen: float  # when its last window was published
    unsampled: int = 0  # windows missed and not reported yet: the engine had no sample for them
    late: int = 0  # ... the engine had them, the agent's loop looked too late (replaced by newer)
    since: float = 0.0  # the start of the span the counts cover
    reported: Optional[float] = None  # the last warning; None: none since it last recovered
    last_miss: float = 0.0
    silent: bool = False  # warned that nothing arrives


class MissedWindows:
    """``window_s``: the publish interval; a device is silent when no window came for
    ``report_every_s`` or three windows, whichever is longer."""

    def __init__(self, window_s: float, report_every_s: float = REPORT_EVERY_S) -> None:
        self.report_every_s = report_every_s
        self.silent_after_s = max(report_every_s, 3 * window_s)
        self._devices: dict[str, _Device] = {}

    def window(self, device_id: str, unsampled: int, late: int, now: float) -> None:
        """A window of ``device_id`` published at ``now``; since the one before, ``unsampled``
        windows had no sample and ``late`` were replaced before the agent looked."""
        dev = self._devices.get(device_id)
        if dev is None:
            self._devices[device_id] = _Device(seen=now)
            return
        if unsampled > 0 or late > 0:
            if dev.reported is None:
                dev.since = dev.seen  # the first span reported starts at the last window before the gap
            dev.unsampled += unsampled
            dev.late += late
            dev.last_miss = now
        dev.seen = now
        dev.silent = False
        missed = dev.unsampled + dev.late
        if missed and (dev.reported is None or now - dev.reported >= self.report_every_s):
            self._warn(device_id, dev, missed, now)
        elif dev.reported is not None and not missed and now - dev.last_miss >= self.report_every_s:
            log.info("device %s recovered: no state window missed in the last %.0f s", device_id, now - dev.last_miss)
            dev.reported = None

    def flush(self, now: float) -> None:
        """Report what is still unreported (the agent is stopping): nothing missed goes unlogged."""
        for device_id, dev in self._devices.items():
            missed = dev.unsampled + dev.late
            if missed:
                self._warn(device_id, dev, missed, now)

    def _warn(self, device_id: str, dev: _Device, missed: int, now: float) -> None:
        log.warning("device %s missed %d state window(s) in the last %.1f s (%d without a sample: its reads "
                    "stalled or failed; %d the agent took too late); clients see them as a gap in its seqs",
                    device_id, missed, now - dev.since, dev.unsampled, dev.late)
        dev.unsampled = dev.late = 0
        dev.since = dev.reported = now

    def check_silent(self, now: float, live: Iterable[str]) -> None:
        """Warn once for each device of ``live`` (those not lost) whose windows stopped coming,
        or never came: a device first met here is followed from ``now``."""
        for device_id in live:
            dev = self._devices.get(device_id)
            if dev is None:
                self._devices[device_id] = _Device(seen=now)
                continue
            if dev.silent or now - dev.seen < self.silent_after_s:
                continue
            log.warning("device %s: no state window for %.0f s (its reads stall or fail)", device_id, now - dev.seen)
            if dev.reported is None:
                dev.since = dev.seen
            dev.silent = True
            dev.reported = dev.last_miss = now

    def forget(self, device_ids: Iterable[str]) -> None:
        """Stop following devices (lost, or of a replaced topology): one seen again starts afresh,
        its absence not counted as missed."""
        for device_id in device_ids:
            self._devices.pop(device_id, None)
