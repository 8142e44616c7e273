"""A line that may come back often, said at most once per period per key, with how often it
came in between (a client retries every few seconds, for ever; a log line per retry would
bury everything else an operator needs to read)."""

from __future__ import annotations

from typing import Hashable, Optional

KEYS_KEPT = 4096  # keys remembered: a peer may make up a new one per attempt


class KeyedThrottle:
    """Per key: the first occurrence is due at once; later ones are counted, and the first one
    ``every_s`` or more after the key was last said is due again. Every call passes ``now``
    (monotonic s), so the schedule is the caller's clock."""

    def __init__(self, every_s: float, keys_kept: int = KEYS_KEPT) -> None:
        self.every_s, self.keys_kept = every_s, keys_kept
        self._said: dict[Hashable, tuple[float, int]] = {}  # key -> (when last said, occurrences since)

    def held(self, key: Hashable, now: float) -> bool:
        """Whether ``key`` was said less than ``every_s`` ago (its next occurrence is not due)."""
        last = self._said.get(key, (None, 0))[0]
        return last is not None and now - last < self.every_s

    def due(self, key: Hashable, now: float) -> Optional[int]:
        """None: not to be said now (counted). Else the line is due, and this many occurrences
        were held back since the key was last said; the key counts as said now."""
        if self.held(key, now):
            last, since = self._said[key]
            self._said[key] = (last, since + 1)
            return None
        since = self._said.get(key, (0.0, 0))[1]
        if key not in self._said and len(self._said) >= self.keys_kept:
            self._said = {k: v for k, v in self._said.items() if now - v[0] < self.every_s}
            if len(self._said) >= self.keys_kept:
                self._said.clear()
        self._said[key] = (now, 0)
        return since
