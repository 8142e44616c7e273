"""CPU cost of CUPTI PM sampling beside NVML: `cuagent run --driver nvml` with 8 GPUs,
`--cupti on` at 1 kHz per GPU against `--cupti off` (before and after, in the same run), as %
of one core over `--seconds` each after a warm-up; and the decode thread's cost per sample.

Runs on the test fakes (libnvidia-ml with 8 GPUs, libcupti producing one sample per ms per
GPU). The fake libcupti's own time is measured, not guessed: the source times every libcupti
call on its decode thread (`library_ns` in `cuagent profiling status`), so the figure that
counts, cuagent's share (decode loop, folding, hand-off, the aggregator taking the windows, the
extra counters through publishing), is CUPTI's added CPU minus the fake's. Real CUPTI's decode
and metric evaluation replace the fake's on a GPU (not measured yet). Target: cuagent's share
<= 1 % of one core for 8 GPUs at 1 kHz.

    python bench/cupti_agent_cpu.py [--seconds 30]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from machine import Steal  # noqa: E402

from cuagent import profiling  # noqa: E402


def status(sock: str) -> Dict[str, int]:
    """The CUPTI source's totals so far: decode thread CPU, time in libcupti, samples."""
    (src,) = profiling.request(sock, "status")["sources"]
    devices = src["devices"]
    return {"cpu_ns": src["decode_cpu_ns"], "library_ns": sum(d["library_ns"] for d in devices),
            "samples": sum(d["samples"] for d in devices), "late": sum(d["late"] for d in devices),
            "dropped": sum(d["dropped"] for d in devices), "decode_calls": sum(d["decode_calls"] for d in devices)}


def measure(args: Sequence[str], seconds: float, env: Dict[str, str], sock: Optional[str] = None,
            warmup_s: float = 4.0) -> Tuple[float, Dict[str, int]]:
    """(% of one core over `seconds` after `warmup_s`, the source's status deltas if `sock`)."""
    proc = subprocess.Popen(list(args), env=env, stdout=subprocess.DEVNULL)
    try:
        time.sleep(warmup_s)
        ps = psutil.Process(proc.pid)
        s0 = status(sock) if sock else {}
        t0, c0 = time.monotonic(), ps.cpu_times()
        time.sleep(seconds)
        t1, c1 = time.monotonic(), ps.cpu_times()
        s1 = status(sock) if sock else {}
        if proc.poll() is not None:
            raise SystemExit(f"{list(args)[:4]} exited early with {proc.returncode}")
        cpu = 100 * ((c1.user - c0.user) + (c1.system - c0.system)) / (t1 - t0)
        delta = {k: s1[k] - s0[k] for k in s1}
        delta["wall_ns"] = int((t1 - t0) * 1e9)
        return cpu, delta
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0)
    a = ap.parse_args()
    import cupti_fake
    import nvml_fake

    with tempfile.TemporaryDirectory() as tmp, Steal() as steal:
        fake = nvml_fake.FakeNvml(nvml_fake.build("full", Path(tmp)), Path(tmp))
        cupti = str(cupti_fake.build(Path(tmp) / "cupti"))
        env = fake.env(fake.script("devices 8\n"))
        sock = f"{tmp}/profiling.sock"
        base = [sys.executable, "-m", "cuagent.cli", "run", "--driver", "nvml", "--nvml-library", str(fake.library),
                "--feed", f"ipc://{tmp}/f", "--sync", f"ipc://{tmp}/s", "--log-level", "warning"]
        load0 = os.getloadavg()[0]
        off, _ = measure(base + ["--cupti", "off"], a.seconds, env)
        on, d = measure(base + ["--cupti", "on", "--cupti-library", cupti, "--profiling-socket", sock], a.seconds,
                        env, sock)
        off2, _ = measure(base + ["--cupti", "off"], a.seconds, env)
        load1 = os.getloadavg()[0]
    added = on - (off + off2) / 2
    fake_share = 100 * d["library_ns"] / d["wall_ns"]
    rows: List[Tuple[str, Any]] = [
        ("`--cupti off` (before / after)", f"{off:.2f} % / {off2:.2f} %"),
        ("`--cupti on`, 8 GPUs x 1 kHz", f"{on:.2f} %"),
        ("CUPTI adds", f"{added:.2f} %"),
        ("of which the fake libcupti's own calls", f"{fake_share:.2f} %"),
        ("of which cuagent's", f"**{added - fake_share:.2f} %** (target <= 1 %)"),
    ]
    print(f"agent CPU, 8 GPUs (fakes), NVML at 10 Hz, CUPTI at 1 kHz per GPU, {a.seconds:g} s each "
          f"(% of one core; load average {load0:.1f} -> {load1:.1f}):")
    for name, value in rows:
        print(f"| {name} | {value} |")
    n = d["samples"]
    cpu_ns = d["cpu_ns"]
    print(f"decode thread: {100 * cpu_ns / d['wall_ns']:.2f} % of a core, {n} samples in {d['decode_calls']} decode "
          f"calls; {cpu_ns / n:.0f} ns CPU per sample, of which {d['library_ns'] / n:.0f} ns in the fake libcupti "
          f"(wall time) and {(cpu_ns - d['library_ns']) / n:.0f} ns cuagent's; late {d['late']}, dropped {d['dropped']}")
    print(steal.summary())


if __name__ == "__main__":
    main()
