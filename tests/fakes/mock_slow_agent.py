"""`cuagent run --driver mock` where one device's reads stall (the CLI's --mock-devices has no
fault options):

    python mock_slow_agent.py <device> <every_s> <stall_ms> [cuagent run flags...]

Device number <device> of --mock-devices (0-based) stalls one read for <stall_ms> every <every_s>.
"""

from __future__ import annotations

import itertools
import sys


def main() -> int:
    device, every_s, stall_ms, *flags = sys.argv[1:]
    if flags[:1] == ["run"]:
        flags = flags[1:]
    import cuagent
    from cuagent import mock

    plain = mock.MockDevice
    built = itertools.count()

    def maybe_slow(preset: str, scenario: str = "training", **options: object) -> object:
        if next(built) == int(device):
            options.update(slow_read_every_s=float(every_s), slow_read_ms=float(stall_ms))
        return plain(preset, scenario=scenario, **options)

    cuagent.MockDevice = maybe_slow  # type: ignore[attr-defined]  # what the CLI builds devices with
    from cuagent.cli import main as cli_main

    return cli_main(["run", *flags])


if __name__ == "__main__":
    sys.exit(main())
