"""Run one Engine(driver="amdsmi") scenario against the fake AMD SMI host; print JSON.

Runs in its own process (tests start it with a timeout), so a hang in the engine fails a
test instead of hanging the suite. The same scenarios as rocm_engine_scenario.py, whose
steps (steady, lost) it runs on this host:

    python amdsmi_engine_scenario.py <scenario> <fake library> <work dir>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cuagent import Engine  # noqa: E402
from fakes.amdsmi import FakeAmdSmiHost  # noqa: E402
from fakes.rocm_engine_scenario import BUSY, lost, steady  # noqa: E402


def engine(host: FakeAmdSmiHost) -> Engine:
    return Engine(driver="amdsmi", library=str(host.library), kfd_root=str(host.kfd_root),
                  rate_hz=1000, window_ms=50, min_read_interval_ms=2)


def run(scenario: str, library: Path, work: Path) -> dict:
    host = FakeAmdSmiHost(library, work / "kfd")
    if scenario in ("spx", "cpx", "unsupported"):
        gpu = host.add_mi300x(compute="CPX" if scenario == "cpx" else "SPX", memory="NPS1", fw_period_ns=1_000_000)
        host.set_xcd_busy(gpu, BUSY)
        if scenario == "unsupported":
            host.fake.set_unsupported(gpu.processors[0], "amdsmi_get_gpu_memory_usage")
        with engine(host) as e:
            return steady(e, level="xcd")
    if scenario == "lost":
        return lost(host, engine, level="xcd")
    raise SystemExit(f"unknown scenario {scenario!r}")


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))))
