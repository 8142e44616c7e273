"""`cuagent run --driver nvml` with the SM-layout probe on, its layout read from a cache.

`cuagent run` has no flag for the probe (it needs libcuda and a GPU of its own), so this
launcher turns it on in the nvml backend's make_driver defaults before the CLI runs. The fake
libnvidia-ml has no libcuda beside it: the layout comes from the per-UUID cache the probe
keeps (cpp/src/drivers/nvml/nvml_probe_cache.cpp), written by the test from a grouping of
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
    defaults.update(probe_layout=True, probe_cache_dir=cache, cuda_library="/nonexistent/libcuda.so.1")
    from cuagent.cli import main as cli_main

    return cli_main(["run", *flags])


if __name__ == "__main__":
    sys.exit(main())
