"""Agent CPU on an NVIDIA node: `cuagent run --driver nvml` with 8 GPUs read at their 10 Hz
refresh and published at 10 Hz, % of one core (psutil, after a warm-up). Baseline in the same
run: a plain pynvml poller reading the same device counters at 10 Hz and publishing nothing
(what a minimal Python exporter does).

Without --library it builds the fake libnvidia-ml from the tests (8 scripted GPUs); on a GPU
server pass --library libnvidia-ml.so.1 (it then reads every GPU the driver shows).

    python bench/nvml_agent_cpu.py [--seconds 10] [--library PATH]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from machine import process_cpu  # noqa: E402

POLLER = """
import sys, time
import pynvml
pynvml.nvmlInit()
handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
next_t = time.monotonic()
while True:
    for h in handles:  # the device counters cuagent's nvml driver reads besides GPM
        pynvml.nvmlDeviceGetUtilizationRates(h); pynvml.nvmlDeviceGetMemoryInfo(h)
        pynvml.nvmlDeviceGetPowerUsage(h); pynvml.nvmlDeviceGetTemperature(h, 0)
        pynvml.nvmlDeviceGetClockInfo(h, 1); pynvml.nvmlDeviceGetClockInfo(h, 2)
        try:
            pynvml.nvmlDeviceGetCurrentClocksEventReasons(h)
        except Exception:
            pass
    next_t += 0.1
    time.sleep(max(0.0, next_t - time.monotonic()))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--library", help="libnvidia-ml to use (default: build the test fake with 8 GPUs)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        library = a.library
        if library is None:
            import nvml_fake

            fake = nvml_fake.FakeNvml(nvml_fake.build("full", Path(tmp)), Path(tmp))
            library = str(fake.library)
            env = fake.env(fake.script("devices 8\n"))  # pynvml finds it through LD_LIBRARY_PATH
            print(f"library: fake libnvidia-ml, 8 GPUs ({library}); pass --library for a real GPU")
        agent = 100 * process_cpu([sys.executable, "-m", "cuagent.cli", "run", "--driver", "nvml",
                                   "--nvml-library", library, "--feed", f"ipc://{tmp}/f", "--sync",
                                   f"ipc://{tmp}/s", "--log-level", "warning"], a.seconds, env)
        poller = 100 * process_cpu([sys.executable, "-c", POLLER], a.seconds, env)
    print("agent CPU, 8 GPUs read at 10 Hz, 10 Hz publish (% of one core):")
    print(f"  cuagent run --driver nvml {agent:5.2f}%   pynvml poller (no publishing) {poller:5.2f}%   "
          f"ratio {poller / agent if agent else float('nan'):4.1f}x  (target agent <= 0.5%)")


if __name__ == "__main__":
    main()
