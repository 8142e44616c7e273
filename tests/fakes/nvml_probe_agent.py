"""`cuagent run --driver nvml` with the SM-layout probe on, its layout read from a cache.

The probe is turned on with `cuagent run`'s own flags (`--nvml-sm-layout probe
--nvml-probe-cache DIR`). The fake libnvidia-ml has no libcuda beside it, so this launcher
points the probe's libcuda at nothing (a make_driver default with no flag) and the layout
comes from the per-UUID cache the probe keeps (cpp/src/drivers/nvml/nvml_probe_cache.cpp), written by the test from a grouping of
observations (tests/test_nvml_sm_layout.py):

    python nvml_probe_agent.py <probe cache dir> [cuagent run flags...]
"""

from __future__ import annotations

import sys


def main() -> int:
    cache, *flags = sys.argv[1:]
    if flags[:1] == ["run"]:
        flags = flags[1:]
    from cuagent.backends import nvml

    defaults = nvml.make_driver.__kwdefaults__
    assert defaults is not None
    defaults.update(cuda_library="/nonexistent/libcuda.so.1")
    from cuagent.cli import main as cli_main

    return cli_main(["run", "--nvml-sm-layout", "probe", "--nvml-probe-cache", cache, *flags])


if __name__ == "__main__":
    sys.exit(main())
