"""`cuagent run --driver mock` whose devices fall off the bus and come back, so that the feed
carries `event` messages (the CLI's --mock-devices has no fault options):

    python mock_fault_agent.py <lost_at_s> <back_at_s> [cuagent run flags...]

Every device gets the faults, or only the first N with MOCK_FAULT_DEVICES=N in the environment.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    lost_at_s, back_at_s, *flags = sys.argv[1:]
    if flags[:1] == ["run"]:
        flags = flags[1:]
    import cuagent
    from cuagent import mock

    plain = mock.MockDevice
    limit = int(os.environ.get("MOCK_FAULT_DEVICES", "-1"))
    built = [0]

    def faulty(preset: str, scenario: str = "training", **options: object) -> object:
        built[0] += 1
        if 0 <= limit < built[0]:
            return plain(preset, scenario=scenario, **options)  # type: ignore[arg-type]
        return plain(preset, scenario=scenario, lost_at_s=float(lost_at_s), back_at_s=float(back_at_s), **options)

    cuagent.MockDevice = faulty  # type: ignore[attr-defined]  # what the CLI builds devices with
    from cuagent.cli import main as cli_main

    return cli_main(["run", *flags])


if __name__ == "__main__":
    sys.exit(main())
