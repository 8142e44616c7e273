"""What the machine itself did during a measurement (imported by the benchmarks, not one).

On a virtual machine the host can take the CPU away ("steal"): a sampler thread that is not
running cannot wake on time, whatever its code does. Benchmarks that measure timing print the
steal of their run next to the figures, so a bad figure on a busy host reads as such.
"""

from __future__ import annotations

import os
import time


def _steal_jiffies() -> int:
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) if fields[0] == "cpu" and len(fields) > 8 else 0
    except OSError:
        return 0


class Steal:
    """``with Steal() as s: ...`` then ``s.summary()``: CPU time the host took during the block."""

    def __enter__(self) -> "Steal":
        self._j0, self._t0 = _steal_jiffies(), time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.steal_s = (_steal_jiffies() - self._j0) / os.sysconf("SC_CLK_TCK")
        self.wall_s = time.monotonic() - self._t0

    def summary(self) -> str:
        cpus = os.cpu_count() or 1
        share = self.steal_s / (self.wall_s * cpus) if self.wall_s > 0 else 0.0
        return f"host steal during the run: {self.steal_s:.2f} CPU-s over {self.wall_s:.1f} s ({share:.1%} of {cpus} CPUs)"
