"""Agent CPU on an NVIDIA node: `cuagent run --driver nvml` with 8 GPUs read at their 10 Hz
refresh and published at 10 Hz, % of one core (per thread from /proc, after a warm-up), split
by thread: main (the Python publisher), the engine's cua-sampler, cua-aggregator and one
cua-reader per GPU, and libzmq's. Baselines in the same run: a plain pynvml poller reading the
same device counters at 10 Hz and publishing nothing (what a minimal Python exporter does),
and with --old-tree an older cuagent (its python/ directory, with its _core built), run in
turn with this one, --rounds times.

Without --library it builds the fake libnvidia-ml from the tests (8 scripted GPUs); on a GPU
server pass --library libnvidia-ml.so.1 (it then reads every GPU the driver shows).

    python bench/nvml_agent_cpu.py [--seconds 30] [--library PATH] [--old-tree DIR ...] [--rounds 2]
                                   [--summary-every N]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
import tempfile
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from machine import Steal, process_cpu, thread_cpu  # noqa: E402

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


def breakdown(groups: dict[str, tuple[float, float, int]]) -> str:
    parts = []
    for name, (cpu, wakeups, count) in sorted(groups.items(), key=lambda kv: -kv[1][0]):
        label = f"{name} x{count}" if count > 1 else name
        parts.append(f"{label} {100 * cpu:.3f}% ({wakeups:.0f} wake-ups/s)")
    return ", ".join(parts)


def gpu_count(library: str) -> str:
    """How many GPUs the real library sees (the agent reads them all), said in words."""
    try:
        handle = ctypes.CDLL(library)
        count = ctypes.c_uint(0)
        if handle.nvmlInit_v2() != 0 or handle.nvmlDeviceGetCount_v2(ctypes.byref(count)) != 0:
            return "every GPU (nvmlInit/nvmlDeviceGetCount failed here)"
        handle.nvmlShutdown()
        return f"{count.value} GPU{'s' if count.value != 1 else ''}"
    except OSError as e:
        return f"every GPU ({library} did not load here: {e})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--library", help="libnvidia-ml to use (default: build the test fake with 8 GPUs)")
    ap.add_argument("--old-tree", action="append", default=[],
                    help="python/ directory of an older cuagent (with its _core built); repeatable")
    ap.add_argument("--rounds", type=int, default=1, help="runs of each agent, in turn")
    ap.add_argument("--summary-every", type=int,
                    help="this tree's --summary-every (0: no node summary, as before it existed)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Steal() as steal:
        env = dict(os.environ)
        library = a.library
        if library is None:
            import nvml_fake

            fake = nvml_fake.FakeNvml(nvml_fake.build("full", Path(tmp)), Path(tmp))
            library = str(fake.library)
            env = fake.env(fake.script("devices 8\n"))  # pynvml finds it through LD_LIBRARY_PATH
            print(f"library: fake libnvidia-ml, 8 GPUs ({library}); pass --library for a real GPU")
            gpus = "8 GPUs"
        else:
            gpus = gpu_count(library)
            print(f"library: {library}, {gpus}")
        agent = [sys.executable, "-m", "cuagent.cli", "run", "--driver", "nvml", "--nvml-library", library,
                 "--feed", f"ipc://{tmp}/f", "--sync", f"ipc://{tmp}/s", "--log-level", "warning"]
        this = [] if a.summary_every is None else ["--summary-every", str(a.summary_every)]
        trees = [("this tree", env)]
        for k, tree in enumerate(a.old_tree):
            old_env = dict(env, PYTHONPATH=os.pathsep.join(p for p in (tree, env.get("PYTHONPATH")) if p))
            trees.append((f"old tree {k + 1}" if len(a.old_tree) > 1 else "old tree", old_env))
        results: dict[str, list[tuple[float, dict[str, tuple[float, float, int]]]]] = {name: [] for name, _ in trees}
        for _ in range(a.rounds):
            for name, tree_env in trees:
                results[name].append(thread_cpu(agent + (this if name == "this tree" else []), a.seconds, tree_env))
        poller = 100 * process_cpu([sys.executable, "-c", POLLER], a.seconds, env)
    print(f"agent CPU, {gpus} read at 10 Hz, 10 Hz publish (% of one core, {a.seconds:g} s per run):")
    for k, tree in enumerate(a.old_tree):
        print(f"  old tree{f' {k + 1}' if len(a.old_tree) > 1 else ''}: {tree}")
    for name, runs in results.items():
        for total, groups in runs:
            print(f"  {name:<10} {100 * total:5.2f}%   {breakdown(groups)}")
    mean = {name: 100 * sum(t for t, _ in runs) / len(runs) for name, runs in results.items()}
    line = f"  mean: this tree {mean['this tree']:.2f}%"
    for name, value in mean.items():
        if name != "this tree":
            line += f", {name} {value:.2f}% (ratio {mean['this tree'] / value:.2f})"
    print(line + "   (target agent <= 0.5%)")
    print(f"  pynvml poller (no publishing) {poller:5.2f}%   ratio poller/agent "
          f"{poller / mean['this tree'] if mean['this tree'] else float('nan'):4.1f}x")
    print(steal.summary())


if __name__ == "__main__":
    main()
