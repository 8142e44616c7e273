"""What the benchmarks share (imported by them, not one): what the machine itself did during a
measurement, and the per-sample timing of a driver's read path against a Python loop.

On a virtual machine the host can take the CPU away ("steal"): a sampler thread that is not
running cannot wake on time, whatever its code does. Benchmarks that measure timing print the
steal of their run next to the figures, so a bad figure on a busy host reads as such.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import TYPE_CHECKING, Callable, Mapping, Optional, Sequence

import psutil

if TYPE_CHECKING:
    from cuagent._core import Driver


def _steal_jiffies() -> int:
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) if fields[0] == "cpu" and len(fields) > 8 else 0
    except OSError:
        return 0


class Steal:
    """``with Steal() as s: ...`` then ``s.summary()``: CPU time the host took during the block."""

    def __enter__(self) -> "Steal":
        self._j0, self._t0 = _steal_jiffies(), time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.steal_s = (_steal_jiffies() - self._j0) / os.sysconf("SC_CLK_TCK")
        self.wall_s = time.monotonic() - self._t0

    def summary(self) -> str:
        cpus = os.cpu_count() or 1
        share = self.steal_s / (self.wall_s * cpus) if self.wall_s > 0 else 0.0
        return f"host steal during the run: {self.steal_s:.2f} CPU-s over {self.wall_s:.1f} s ({share:.1%} of {cpus} CPUs)"


def process_cpu(args: Sequence[str], seconds: float, env: Optional[Mapping[str, str]] = None,
                warmup_s: float = 3.0) -> float:
    """Fraction of one core a command uses over `seconds`, measured after `warmup_s` (imports,
    engine start, first windows). The command is terminated afterwards; it must not exit first."""
    proc = subprocess.Popen(list(args), env=dict(env) if env is not None else None, stdout=subprocess.DEVNULL)
    try:
        time.sleep(warmup_s)
        ps = psutil.Process(proc.pid)
        t0, c0 = time.monotonic(), ps.cpu_times()
        time.sleep(seconds)
        t1, c1 = time.monotonic(), ps.cpu_times()
        if proc.poll() is not None:
            raise SystemExit(f"{list(args)[:4]} exited early with {proc.returncode}")
        # psutil has no stubs: its cpu_times() fields are seconds as floats.
        cpu_s: float = (c1.user - c0.user) + (c1.system - c0.system)
        return cpu_s / (t1 - t0)
    finally:
        proc.terminate()
        proc.wait(10)


def _thread_times(pid: int) -> dict[int, tuple[str, int, int]]:
    """tid -> (name, ns on CPU, context switches) of each thread of a process, from /proc:
    schedstat counts CPU time in ns, where stat's clock ticks (10 ms) are too coarse for
    threads that use a few hundredths of a percent."""
    out: dict[int, tuple[str, int, int]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ns = int(f.read().split()[0])
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                status = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended meanwhile
        # voluntary (it slept: a wake-up each) and nonvoluntary (preempted) switches
        switches = sum(int(line.split()[1]) for line in status.splitlines() if "ctxt_switches:" in line)
        out[int(tid)] = (name, ns, switches)
    return out


def thread_cpu(args: Sequence[str], seconds: float, env: Optional[Mapping[str, str]] = None,
               warmup_s: float = 3.0) -> tuple[float, dict[str, tuple[float, float, int]]]:
    """Like :func:`process_cpu` (a fraction of one core, after `warmup_s`), measured per thread
    in ns: (total, {thread: (fraction of one core, wake-ups per second, threads)}). Threads
    are grouped by name (the engine names its own: cua-sampler, cua-aggregator, cua-reader);
    the process's first thread is "main" (for the agent, the Python publisher). Linux only."""
    proc = subprocess.Popen(list(args), env=dict(env) if env is not None else None, stdout=subprocess.DEVNULL)
    try:
        time.sleep(warmup_s)
        t0, before = time.monotonic(), _thread_times(proc.pid)
        time.sleep(seconds)
        t1, after = time.monotonic(), _thread_times(proc.pid)
        if proc.poll() is not None:
            raise SystemExit(f"{list(args)[:4]} exited early with {proc.returncode}")
    finally:
        proc.terminate()
        proc.wait(10)
    wall = t1 - t0
    groups: dict[str, tuple[float, float, int]] = {}
    for tid, (name, ns, switches) in after.items():
        if tid not in before:
            continue  # started during the measurement: its earlier part is unknown
        label = "main" if tid == proc.pid else name
        cpu, wakeups, count = groups.get(label, (0.0, 0.0, 0))
        groups[label] = (cpu + (ns - before[tid][1]) / 1e9 / wall, wakeups + (switches - before[tid][2]) / wall,
                         count + 1)
    return sum(cpu for cpu, _, _ in groups.values()), groups


def time_reads(label: str, driver: Driver, index: int, python_read: Callable[[], object],
               reads: int) -> tuple[float, float]:
    """Nanoseconds per sample of device `index` through the C++ driver (its read looped in C++,
    _core.driver_time_reads) and through `python_read` (looped here), printed on one line under
    `label`. Both read the same library in the same run, so the ratio holds on a busy host."""
    from cuagent import _core  # here: the benches that only time processes need no extension

    elapsed_ns, _ = _core.driver_time_reads(driver, index, reads)
    cpp_ns = elapsed_ns / reads
    start = time.perf_counter_ns()
    for _ in range(reads):
        python_read()
    py_ns = (time.perf_counter_ns() - start) / reads
    print(f"{label:<22} C++ {cpp_ns / 1000:8.2f} µs/sample   ctypes {py_ns / 1000:8.2f} µs/sample   "
          f"ratio {py_ns / cpp_ns:6.1f}x")
    return cpp_ns, py_ns
