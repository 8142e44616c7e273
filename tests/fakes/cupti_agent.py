"""`cuagent run --driver nvml` against the fake libcupti, for gpu-check's dry run of its CUPTI step.

The fake can only be steered from inside the agent's process (ctypes on the copy the source
loaded), so this launcher does it, then runs the real CLI in-process:

    python cupti_agent.py <fake libcupti> <phases file> run --driver nvml [flags...]

What the fake's SMs do follows the last phase named in the phases file (one `name time` per
line, written by scripts/gpu_check_cupti.py and its load): the shape an H100 should give if
the design holds (idle near 0; a bf16 matmul near 1 on every SM; 16 one-block kernels: the
busiest SM at 1, the idlest at 0, the mean 16/132). At 20 kHz and above the fake reports a
hardware-buffer overflow on every decode, so the step's rate search meets a rate that is not
clean. None of this is a GPU reading: the dry run exercises the step's logic, nothing more.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time

ACTIVITY = {  # phase prefix -> (mean, busiest SM, idlest SM) fraction of cycles active
    "matmul": (0.97, 1.0, 0.92),
    "block16": (16 / 132, 1.0, 0.0),
}
IDLE = (0.002, 0.01, 0.0)
OVERFLOW_FROM_HZ = 20000.0


def phase(path: str) -> str:
    try:
        with open(path) as f:
            lines = [line.split()[0] for line in f if line.strip()]
    except OSError:
        return "idle"
    return lines[-1] if lines else "idle"


def main() -> int:
    library, phases, *flags = sys.argv[1:]
    fake = ctypes.CDLL(library)
    fake.fake_cupti_set_active.argtypes = [ctypes.c_double] * 3
    fake.fake_cupti_set_overflow.argtypes = [ctypes.c_int]
    rate = float(flags[flags.index("--cupti-rate-hz") + 1]) if "--cupti-rate-hz" in flags else 1000.0
    fake.fake_cupti_set_overflow(1 if rate >= OVERFLOW_FROM_HZ else 0)

    def follow() -> None:
        while True:
            name = phase(phases)
            avg, hi, lo = next((v for k, v in ACTIVITY.items() if name.startswith(k)), IDLE)
            fake.fake_cupti_set_active(avg, hi, lo)
            time.sleep(0.05)

    follow_thread = threading.Thread(target=follow, daemon=True)
    follow_thread.start()
    from cuagent.cli import main as cli_main

    return cli_main(flags)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
