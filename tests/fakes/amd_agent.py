"""`cuagent run` on a fake AMD host (ROCm SMI or AMD SMI) scripted in the agent's own process.

A fake library keeps its state per process (there is no file or variable another process
could script it through), so the host is built here, then the real CLI runs. The test changes
the host mid-run by creating files in the work directory: `lose` (the last GPU falls off the
bus), `back` (it returns), `nps4` (the first GPU's memory partition mode becomes NPS4).

    python amd_agent.py <rocm_smi|amdsmi> <fake library> <work dir> <SPX|CPX> <gpus> [cuagent run flags...]

On a backend that lists processes (AMD SMI), one process runs on the first GPU's first
partition (PROCESS).
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fakes.amd_backends import BACKENDS  # noqa: E402

# Busy % per XCD: clearly idle (0) and clearly active (>= 50) XCDs, none near a threshold.
BUSY = [90.0, 0.0, 0.0, 60.0, 50.0, 60.0, 70.0, 100.0]
#: The process on the first GPU's first partition: its VRAM and the GFX engine share it uses.
PROCESS = (424242, "trainer", 2 << 30, 0.5)
TRIGGERS = ("lose", "back", "nps4")


def main() -> int:
    name, library, work, compute, gpus, *flags = sys.argv[1:]
    if flags[:1] == ["run"]:  # the test passes a whole `cuagent run ...` command line
        flags = flags[1:]
    backend = BACKENDS[name]
    work_dir = Path(work)
    host = backend.host(Path(library), work_dir / "kfd")
    added = [host.add_mi300x(compute=compute, memory="NPS1", fw_period_ns=1_000_000) for _ in range(int(gpus))]
    for gpu in added:
        host.set_xcd_busy(gpu, BUSY)
    if backend.lists_processes:
        pid, process_name, vram, busy = PROCESS
        host.fake.add_process(added[0].processors[0], pid, process_name, vram, gfx_ns=0, busy=busy)

    def script() -> None:
        done: set[str] = set()
        while True:
            for trigger in TRIGGERS:
                if trigger not in done and (work_dir / trigger).exists():
                    done.add(trigger)
                    if trigger == "lose":
                        host.set_lost(added[-1])
                    elif trigger == "back":
                        host.set_back(added[-1])
                    else:
                        host.set_partition_modes(added[0], compute, "NPS4")
                    print(f"amd_agent: {trigger}", file=sys.stderr, flush=True)
            time.sleep(0.02)

    threading.Thread(target=script, daemon=True).start()
    from cuagent.cli import main as cli_main

    return cli_main(["run", "--driver", name, backend.library_flag, library, "--kfd-root", str(host.kfd_root),
                     *flags])


if __name__ == "__main__":
    sys.exit(main())
