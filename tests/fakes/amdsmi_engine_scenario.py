"""Run one Engine(driver="amdsmi") scenario against the fake AMD SMI host; print JSON.

Runs in its own process (tests start it with a timeout), so a hang in the engine fails a
test instead of hanging the suite. The same scenarios as rocm_engine_scenario.py, whose
helpers it uses:

    python amdsmi_engine_scenario.py <scenario> <fake library> <work dir>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cuagent import Engine  # noqa: E402
from fakes.amdsmi import FakeAmdSmiHost  # noqa: E402
from fakes.rocm_engine_scenario import BUSY, fresh_state, state_json, topo_json, wait_for  # noqa: E402


def engine(host: FakeAmdSmiHost) -> Engine:
    return Engine(driver="amdsmi", library=str(host.library), kfd_root=str(host.kfd_root),
                  rate_hz=1000, window_ms=50, min_read_interval_ms=2)


def run(scenario: str, library: Path, work: Path) -> dict:
    host = FakeAmdSmiHost(library, work / "kfd")
    out: dict = {}
    if scenario in ("spx", "cpx", "unsupported"):
        gpu = host.add_mi300x(compute="CPX" if scenario == "cpx" else "SPX", memory="NPS1", fw_period_ns=1_000_000)
        host.set_xcd_busy(gpu, BUSY)
        if scenario == "unsupported":
            host.fake.set_unsupported(gpu.processors[0], "amdsmi_get_gpu_memory_usage")
        with engine(host) as e:
            out["backend"] = e.backend
            out["topology"] = [topo_json(t) for t in e.topology()]
            first = fresh_state(e, 0, level="xcd")
            # A later window, all of whose samples saw the steady load.
            out["state"] = state_json(fresh_state(e, 0, after_seq=first.window_seq, level="xcd"))
    elif scenario == "lost":
        first_gpu = host.add_mi300x(fw_period_ns=1_000_000)
        second_gpu = host.add_mi300x(fw_period_ns=1_000_000)
        host.set_xcd_busy(first_gpu, BUSY)
        host.set_xcd_busy(second_gpu, BUSY)
        with engine(host) as e:
            fresh_state(e, 0)
            before = fresh_state(e, 1)
            host.set_lost(first_gpu)
            events: list = []
            wait_for(lambda: events.extend(e.events()) or any(ev.type == "device_lost" for ev in events),
                     "device_lost")
            lost_at = e.snapshot()[1].window_seq
            after = fresh_state(e, 1, after_seq=lost_at, level="xcd")  # the other device goes on
            host.set_back(first_gpu)
            wait_for(lambda: events.extend(e.events()) or any(ev.type == "device_back" for ev in events),
                     "device_back")
            out["events"] = [{"type": ev.type, "device": ev.device, "device_id": ev.device_id,
                              "detail": ev.detail} for ev in events]
            out["other_before"] = before.window_seq
            out["other_after"] = after.window_seq
            out["other_xcd"] = after.levels["xcd"]["active"].mean.tolist()
            out["ids"] = [t.id for t in e.topology()]
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    return out


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))))
