"""kHz samples per window: NVML + CUPTI on the fakes (libcupti at 1 kHz per GPU), an engine
at 1 kHz with windows of `--window-ms`; for device 0, how many CUPTI samples each published
window holds (`pm_samples`, most frequent values), in how many windows NVML's `power` is
(against the windows that hold one of its 100 ms reads), and the late samples per device.
Each window should hold window_ms samples, none lost at the edges, none of another window.

    python bench/cupti_window_edges.py [--window-ms 100] [--seconds 20] [--python PY]

`--python` runs the engine with another interpreter (another build: main's, for a before).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

RUN = """
import collections, json, sys, time
from cuagent import Engine
library, cupti, window_ms, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
e = Engine(driver="nvml", library=library, cupti="on", cupti_library=cupti, rate_hz=1000, window_ms=window_ms)
e.start()
seen = {}
t0 = time.monotonic()
while time.monotonic() - t0 < seconds:
    s = e.snapshot()[0]
    if s is not None:
        seen[s.t_ns] = ("power" in s.device, s.device.get("pm_samples"))
    time.sleep(0.005)
stats = e.stats()
e.stop()
ends = sorted(seen)[1:]  # the first window is partial
w = int(window_ms * 1e6)
print(json.dumps({"windows": len(ends), "expected": (ends[-1] - ends[0]) // w + 1,
                  "with_power": sum(seen[t][0] for t in ends),
                  "nvml_windows": sum((t - w) % 100_000_000 < w for t in range(ends[0], ends[-1] + 1, w)),
                  "pm_samples": collections.Counter(seen[t][1] for t in ends).most_common(5),
                  "late": [d["late_samples"] for d in stats.devices]}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--window-ms", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--python", default=sys.executable)
    a = ap.parse_args()
    import cupti_fake
    import nvml_fake

    with tempfile.TemporaryDirectory() as tmp:
        fake = nvml_fake.FakeNvml(nvml_fake.build("full", Path(tmp)), Path(tmp))
        cupti = cupti_fake.build(Path(tmp) / "cupti")
        out = subprocess.run([a.python, "-c", RUN, str(fake.library), str(cupti), str(a.window_ms), str(a.seconds)],
                             env=fake.env(fake.script("devices 2\n")), capture_output=True, text=True,
                             timeout=a.seconds + 120)
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    print(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
