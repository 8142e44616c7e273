"""`cuagent run --driver mock` whose devices fall off the bus and come back, so that the feed
carries `event` messages:

    python mock_fault_agent.py <lost_at_s> <back_at_s> [cuagent run flags...]

Every device gets the faults, or only the first N with MOCK_FAULT_DEVICES=N in the environment.
The same as ``cuagent run ... --mock-faults '*:lost@<lost_at_s>s..<back_at_s>s'`` (or one such
fault per faulty device); kept so that tests read as what they rehearse.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    lost_at_s, back_at_s, *flags = sys.argv[1:]
    if flags[:1] == ["run"]:
        flags = flags[1:]
    fault = f"lost@{lost_at_s}s..{back_at_s}s"
    limit = int(os.environ.get("MOCK_FAULT_DEVICES", "-1"))
    if limit < 0:
        faults = [f"*:{fault}"]
    else:
        devices = flags[flags.index("--mock-devices") + 1].split(",") if "--mock-devices" in flags else ["default"]
        faults = [f"{i}:{fault}" for i in range(min(limit, len(devices)))]
    from cuagent.cli import main as cli_main

    return cli_main(["run", *flags, *(["--mock-faults", ",".join(faults)] if faults else [])])


if __name__ == "__main__":
    sys.exit(main())
