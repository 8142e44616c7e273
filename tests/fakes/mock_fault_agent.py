"""`cuagent run --driver mock` whose devices fall off the bus and come back, so that the feed
carries `event` messages:

    python mock_fault_agent.py <lost_at_s> <back_at_s> [cuagent run flags...]

The same as ``cuagent run ... --mock-faults '*:lost@<lost_at_s>s..<back_at_s>s'``; kept so
that tests read as what they rehearse.
"""

from __future__ import annotations

import sys


def main() -> int:
    lost_at_s, back_at_s, *flags = sys.argv[1:]
    if flags[:1] == ["run"]:
        flags = flags[1:]
    from cuagent.cli import main as cli_main

    return cli_main(["run", *flags, "--mock-faults", f"*:lost@{lost_at_s}s..{back_at_s}s"])


if __name__ == "__main__":
    sys.exit(main())
