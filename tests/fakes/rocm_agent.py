"""`cuagent run --driver rocm_smi` on a fake AMD host scripted in the agent's own process.

The fake librocm_smi64 keeps its state per process (there is no file or variable another
process could script it through), so the host is built here, then the real CLI runs:

    python rocm_agent.py <fake library> <work dir> <SPX|CPX> [cuagent run flags...]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fakes.rocm import FakeAmdHost  # noqa: E402

# Busy % per XCD: clearly idle (0) and clearly active (>= 50) XCDs, none near a threshold.
BUSY = [90.0, 0.0, 0.0, 60.0, 50.0, 60.0, 70.0, 100.0]


def main() -> int:
    library, work, compute, *flags = sys.argv[1:]
    if flags[:1] == ["run"]:  # the test passes a whole `cuagent run ...` command line
        flags = flags[1:]
    host = FakeAmdHost(Path(library), Path(work) / "kfd")
    gpu = host.add_mi300x(compute=compute, memory="NPS1", fw_period_ns=1_000_000)
    host.set_xcd_busy(gpu, BUSY)
    from cuagent.cli import main as cli_main

    return cli_main(["run", "--driver", "rocm_smi", "--rocm-smi-library", library,
                     "--kfd-root", str(host.kfd_root), *flags])


if __name__ == "__main__":
    sys.exit(main())
