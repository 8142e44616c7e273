"""`cuagent run` on a fake AMD SMI host scripted in the agent's own process.

The fake libamd_smi keeps its state per process (there is no file or variable another
process could script it through), so the host is built here, then the real CLI runs. The
test changes the host mid-run by creating files in the work directory: `lose` (the last GPU
falls off the bus), `back` (it returns), `nps4` (the first GPU's memory partition mode
becomes NPS4).

    python amdsmi_agent.py <fake library> <work dir> <SPX|CPX> <gpus> [cuagent run flags...]

Without --driver among the flags it runs --driver amdsmi on the fake. With AMDSMI_AGENT_ROCM
set to a fake librocm_smi64 path, the same GPUs are on a fake ROCm SMI host too (same KFD
tree), for --driver auto to choose between the two.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fakes.amdsmi import FakeAmdSmiHost  # noqa: E402

# Busy % per XCD: clearly idle (0) and clearly active (>= 50) XCDs, none near a threshold.
BUSY = [90.0, 0.0, 0.0, 60.0, 50.0, 60.0, 70.0, 100.0]
#: The process on the first GPU's first partition: its VRAM and the GFX engine share it uses.
PROCESS = (424242, "trainer", 2 << 30, 0.5)


def main() -> int:
    library, work, compute, gpus, *flags = sys.argv[1:]
    if flags[:1] == ["run"]:  # the test passes a whole `cuagent run ...` command line
        flags = flags[1:]
    work_dir = Path(work)
    kfd = work_dir / "kfd"
    host = FakeAmdSmiHost(Path(library), kfd)
    added = [host.add_mi300x(compute=compute, memory="NPS1", fw_period_ns=1_000_000) for _ in range(int(gpus))]
    for gpu in added:
        host.set_xcd_busy(gpu, BUSY)
    pid, name, vram, busy = PROCESS
    host.fake.add_process(added[0].processors[0], pid, name, vram, gfx_ns=0, busy=busy)
    rocm_library = os.environ.get("AMDSMI_AGENT_ROCM")
    if rocm_library:
        from fakes.rocm import FakeAmdHost

        rocm = FakeAmdHost(Path(rocm_library), kfd)  # the same GPUs, so the same KFD tree
        for _ in added:
            rocm.set_xcd_busy(rocm.add_mi300x(compute=compute, memory="NPS1", fw_period_ns=1_000_000), BUSY)

    def script() -> None:
        done: set[str] = set()
        while True:
            for trigger in ("lose", "back", "nps4"):
                if trigger not in done and (work_dir / trigger).exists():
                    done.add(trigger)
                    if trigger == "lose":
                        host.set_lost(added[-1])
                    elif trigger == "back":
                        host.set_back(added[-1])
                    else:
                        host.set_partition_modes(added[0], compute, "NPS4")
                    print(f"amdsmi_agent: {trigger}", file=sys.stderr, flush=True)
            time.sleep(0.02)

    threading.Thread(target=script, daemon=True).start()
    from cuagent.cli import main as cli_main

    driver = [] if "--driver" in flags else ["--driver", "amdsmi", "--amdsmi-library", library,
                                              "--kfd-root", str(kfd)]
    return cli_main(["run", *driver, *flags])


if __name__ == "__main__":
    sys.exit(main())
