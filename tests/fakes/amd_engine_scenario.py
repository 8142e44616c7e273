"""Run one Engine scenario of an AMD backend (rocm_smi or amdsmi) against its fake host; print
JSON.

Runs in its own process (tests start it with a timeout), so a hang in the
engine fails a test instead of hanging the suite:

    python amd_engine_scenario.py <rocm_smi|amdsmi> <scenario> <fake library> <work dir>
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cuagent import Engine  # noqa: E402
from fakes.amd_backends import BACKENDS, AmdBackend  # noqa: E402

# 20 %, not 10 %: clear of the idle hysteresis band (idle holds until active >= 0.10).
BUSY = [90.0, 0.0, 0.0, 20.0, 50.0, 60.0, 70.0, 100.0]
DEADLINE_S = 20.0


def wait_for(predicate, what: str):
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise SystemExit(f"timed out waiting for {what}")


def state_json(s) -> dict:
    return {
        "samples": s.samples,
        "window_seq": s.window_seq,
        "levels": {
            level: {name: (v.tolist() if name == "state" else {"mean": v.mean.tolist(), "max": v.max.tolist()})
                    for name, v in entries.items()}
            for level, entries in s.levels.items()
        },
        "partition": s.partition,
        "device": s.device,
        "idle_units": s.idle_units,
    }


def topo_json(t) -> dict:
    return {
        "id": t.id, "vendor": t.vendor, "backend": t.backend, "unit": t.unit, "units": t.units,
        "levels": t.levels, "counts": t.counts, "layout_source": t.layout_source,
        "partitions": [{"id": p.id, "kind": p.kind, "units": p.units, "profile": p.profile} for p in t.partitions],
        "counters": {name: c.level for name, c in t.counters.items()},
    }


def engine(backend: AmdBackend, host) -> Engine:
    return Engine(driver=backend.name, library=str(host.library), kfd_root=str(host.kfd_root),
                  rate_hz=1000, window_ms=50, min_read_interval_ms=2)


def fresh_state(e: Engine, index: int, after_seq: int = -1, level: str | None = None):
    def ready():
        s = e.snapshot()[index]
        if s is None or s.window_seq <= after_seq or s.samples == 0:
            return None
        if level is not None and level not in s.levels:
            return None
        return s
    return wait_for(ready, f"a window of device {index}")


def steady(e: Engine, level: str | None) -> dict:
    """The topology, and the state of device 0 under a steady load (with `level` present)."""
    out: dict = {"backend": e.backend, "topology": [topo_json(t) for t in e.topology()]}
    first = fresh_state(e, 0, level=level)
    # A later window, all of whose samples saw the steady load.
    out["state"] = state_json(fresh_state(e, 0, after_seq=first.window_seq, level=level))
    return out


def lost(backend: AmdBackend, host) -> dict:
    """Two GPUs on `host`; the first is lost, then comes back: the events, and the other GPU's
    windows going on meanwhile."""
    first_gpu = host.add_mi300x(fw_period_ns=1_000_000)
    second_gpu = host.add_mi300x(fw_period_ns=1_000_000)
    host.set_xcd_busy(first_gpu, BUSY)
    host.set_xcd_busy(second_gpu, BUSY)
    out: dict = {}
    with engine(backend, host) as e:
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
    return out


def run(backend: AmdBackend, scenario: str, library: Path, work: Path) -> dict:
    host = backend.host(library, work / "kfd")
    if scenario in ("spx", "cpx", "v14", "unsupported"):
        compute = "CPX" if scenario == "cpx" else "SPX"
        gpu = host.add_mi300x(compute=compute, memory="NPS1", fw_period_ns=1_000_000,
                              metrics_revision=4 if scenario == "v14" else 8)
        host.set_xcd_busy(gpu, BUSY)
        if scenario == "cpx":  # each partition's own engine activity: its one XCD's
            for p in range(gpu.partitions):
                host.set_partition_value(gpu, p, "busy_pct", BUSY[p])
        if scenario == "unsupported":
            host.set_unsupported(gpu, backend.memory_usage_call)
        with engine(backend, host) as e:
            return steady(e, level=None if scenario == "v14" else "xcd")
    if scenario == "lost":
        return lost(backend, host)
    raise SystemExit(f"unknown scenario {scenario!r}")


if __name__ == "__main__":
    print(json.dumps(run(BACKENDS[sys.argv[1]], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))))
