"""`cuagent run --driver nvml` against the fake libnvidia-ml, re-scripted mid-run.

The fake reads $FAKE_NVML_SCRIPT once per process; a later layout (e.g. MIG reconfigured)
can only be loaded from inside the agent's process, so this launcher does it when the
test creates a trigger file:

    python nvml_agent.py <fake library> <second script> <trigger file> [cuagent run flags...]
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time


def main() -> int:
    library, second, trigger, *flags = sys.argv[1:]
    if flags[:1] == ["run"]:  # the test passes a whole `cuagent run ...` command line
        flags = flags[1:]

    def rescript() -> None:
        while not os.path.exists(trigger):
            time.sleep(0.05)
        lib = ctypes.CDLL(library)
        lib.fake_nvml_load.argtypes = [ctypes.c_char_p]
        if lib.fake_nvml_load(second.encode()) != 0:
            print(f"nvml_agent: fake_nvml_load({second}) failed", file=sys.stderr, flush=True)
        else:
            print(f"nvml_agent: loaded {second}", file=sys.stderr, flush=True)

    threading.Thread(target=rescript, daemon=True).start()
    from cuagent.cli import main as cli_main

    return cli_main(["run", "--driver", "nvml", "--nvml-library", library, *flags])


if __name__ == "__main__":
    sys.exit(main())
