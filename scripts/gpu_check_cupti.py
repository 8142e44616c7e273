#!/usr/bin/env python3
"""scripts/gpu-check step 6 (cuptihw): CUPTI PM sampling on the GPU, the checks of issue 10.

Everything goes through what users run: `cuagent run --driver nvml --cupti on`, its feed
read by `cuagent watch`, and `cuagent profiling pause|resume|status` on its socket. Four
sub-checks, each under its own time limit inside one budget (150 s, less if gpu-check has
less left), so that one hang costs its own share only:

  rest   the agent at 1 kHz, no workload: is a process or GPU memory of ours in nvidia-smi
         (--query-compute-apps, memory.used before and during), the agent's RSS and CPU;
         the idle windows; the 1 kHz sampling counters
  load   one PyTorch process (a subprocess, so a hang is killable): a bf16 8192^3 matmul loop
         with sampling on, paused (`cuagent profiling pause`), on again: pm_sm_active must
         follow the matmul, NVML's sm_clock on vs off under the same load (no clock lock),
         GPM sm_active present throughout; then 16 one-block kernels on 16 streams
         (torch.cuda._sleep spins one thread for a given number of cycles: each keeps one
         SM active and nothing else, so the busiest SM reads ~1, the idlest 0 and the mean
         ~16/132; a small matmul would leave the block count to cuBLAS and the launch gaps
         to the CPU): the max-min spread must widen
  ncu    ncu (if the image has it) on a small PyTorch program while the agent samples: what
         ncu says and which profiling_paused/_resumed events the feed carries; then the
         operator's path: pause, ncu, resume, and the events that bracket it
  rates  the agent at 5, 10 and 20 kHz (and with CUPTI off, for the RSS and CPU baseline):
         the highest rate whose windows hold their samples with no overflow and no drops

Figures go to the summary (notes.<step>, one line each) and in full to $OUT/cupti-hw.json.
Exit 0 when every check held, 1 when one did not; what the image lacks (ncu, nvidia-smi,
PyTorch) is recorded as not available, never a failure.

Without a GPU (gpu-check's dry run) the same code runs against the fake libnvidia-ml
(replaying tests/data/h100-nvml-trace.json) and the fake libcupti through
tests/fakes/cupti_agent.py, which makes the fake follow the phases: the logic is exercised,
no figure is a GPU's.

Subcommands (internal): `load SOCKET` (the PyTorch load), `ncu-target` (ncu's program).
"""
from __future__ import annotations

import glob
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
WINDOW_S = 0.1  # the agent's default window
DRY = os.environ.get("DRY") == "1"
BUDGET_S = 150.0
# Sub-check limits (s); they add up to the budget.
LIMITS = {"rest": 20.0, "load": 40.0, "ncu": 60.0, "rates": 30.0}
# Phase lengths (s): several 100 ms windows each after a settling margin; short in a dry run.
if DRY:
    T = {"idle": 2.0, "seg": 2.0, "block": 1.5, "rate": 1.5, "settle": 0.4, "tail": 0.1}
else:
    T = {"idle": 6.0, "seg": 4.0, "block": 5.0, "rate": 2.5, "settle": 1.0, "tail": 0.2}
RATES = (5000, 10000, 20000)
NCU_METRIC = "sm__cycles_active.avg"


class OutOfTime(Exception):
    pass


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds
        self.seconds = seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def check(self, what: str) -> None:
        if self.left() <= 0:
            raise OutOfTime(what)

    def sleep(self, seconds: float) -> None:
        if seconds > self.left():
            raise OutOfTime(f"sleeping {seconds:.1f} s")
        time.sleep(max(0.0, seconds))


def env() -> Dict[str, str]:
    e = dict(os.environ)
    e["PYTHONUNBUFFERED"] = "1"
    return e


def mark(phases: Path, name: str) -> float:
    t = time.time()
    with open(phases, "a") as f:
        f.write(f"{name} {t}\n")
    return t


def read_marks(phases: Path) -> Dict[str, float]:
    marks: Dict[str, float] = {}
    if phases.exists():
        for line in phases.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2:
                marks[parts[0]] = float(parts[1])
    return marks


def finite(v: Any) -> Optional[float]:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def mean(xs: Sequence[float]) -> Optional[float]:
    return statistics.fmean(xs) if xs else None


def fmt(v: Optional[float], spec: str = ".3f", scale: float = 1.0) -> str:
    return "-" if v is None else format(v / scale, spec)


# ---- the GPU's side: nvidia-smi, /proc --------------------------------------------------

def nvidia_smi(args: List[str], timeout: float = 10.0) -> Optional[List[str]]:
    """Lines nvidia-smi printed, or None where it is not there or sees no GPU (the dry run)."""
    if os.environ.get("GPU") != "1" or shutil.which("nvidia-smi") is None:
        return None
    try:
        proc = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return ["(nvidia-smi timed out)"]
    return [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]


def compute_apps() -> Optional[List[Dict[str, Any]]]:
    lines = nvidia_smi(["--query-compute-apps=pid,process_name,used_memory", "--format=csv,noheader,nounits"])
    if lines is None:
        return None
    apps = []
    for line in lines:
        f = [x.strip() for x in line.split(",")]
        if len(f) == 3 and f[0].isdigit():
            apps.append({"pid": int(f[0]), "name": f[1], "used_mib": finite(float(f[2])) if f[2].replace(".", "", 1).isdigit() else None})
    return apps


def gpu_memory_used_mib() -> Optional[float]:
    lines = nvidia_smi(["-i", "0", "--query-gpu=memory.used", "--format=csv,noheader,nounits"])
    if not lines:
        return None
    try:
        return float(lines[0])
    except ValueError:
        return None


def rss_mib(pid: int) -> Optional[float]:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def cpu_seconds(pid: int) -> Optional[float]:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


# ---- the agent, as users run it ---------------------------------------------------------

class Fakes:
    """The dry run's fake libnvidia-ml (replaying the real H100 trace) and fake libcupti."""

    def __init__(self, work: Path) -> None:
        sys.path.insert(0, str(ROOT / "tests"))
        import cupti_fake
        import nvml_fake

        self.nvml = nvml_fake.build("full", work / "fake-nvml")
        self.cupti = cupti_fake.build(work / "fake-cupti")
        trace = nvml_fake.trace_table(work / "h100-trace.tsv")
        self.script = work / "fake-nvml-script.txt"
        self.script.write_text(f"devices 1\ntrace 0 {trace}\n")


class Agent:
    """`cuagent run --driver nvml` with its own feed, read by `cuagent watch` into a file."""

    def __init__(self, work: Path, name: str, phases: Path, fakes: Optional[Fakes], cupti: str = "on",
                 rate_hz: int = 1000) -> None:
        self.dir = work / f"cuptihw-{name}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name, self.rate_hz, self.cupti = name, rate_hz, cupti
        self.socket = self.dir / "profiling.sock"
        self.feed_path = self.dir / "feed.jsonl"
        self.log_path = self.dir / "agent.log"
        feed, sync = f"ipc://{self.dir}/feed", f"ipc://{self.dir}/sync"
        e = env()
        flags = ["run", "--driver", "nvml", "--node", "gpu-check-cupti", "--feed", feed, "--sync", sync,
                 "--cupti", cupti, "--process-interval-s", "1", "--topo-interval-s", "5", "--log-level", "info"]
        if cupti != "off":
            flags += ["--cupti-rate-hz", str(rate_hz), "--profiling-socket", str(self.socket)]
        if fakes is not None:
            flags += ["--nvml-library", str(fakes.nvml)]
            if cupti != "off":
                flags += ["--cupti-library", str(fakes.cupti)]
            cmd = [PY, str(ROOT / "tests" / "fakes" / "cupti_agent.py"), str(fakes.cupti), str(phases), *flags]
            e["FAKE_NVML_SCRIPT"] = str(fakes.script)
        else:
            cmd = [PY, "-m", "cuagent.cli", *flags]
        cwd = ROOT / "tests"
        # The subscriber first, so it sees the agent's first messages (ZeroMQ connects early).
        self.watch = subprocess.Popen(
            [PY, "-m", "cuagent.cli", "watch", f"{feed},{sync}", "--prefix", "cua1/state/", "--prefix", "cua1/event/"],
            stdout=open(self.feed_path, "w"), stderr=open(self.dir / "watch.err", "w"), cwd=cwd, env=e)
        self.proc = subprocess.Popen(cmd, stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT, cwd=cwd, env=e)
        self.pid = self.proc.pid
        self.started = time.time()

    def log_tail(self, n: int = 8) -> List[str]:
        try:
            return self.log_path.read_text(errors="replace").splitlines()[-n:]
        except OSError:
            return []

    def request(self, command: str) -> Dict[str, Any]:
        from cuagent import profiling  # the function `cuagent profiling` calls

        return profiling.request(str(self.socket), command, timeout=5.0)

    def cli(self, *args: str, timeout: float = 20.0) -> Tuple[int, str]:
        """`cuagent profiling ARGS --socket S`: (exit status, output)."""
        proc = subprocess.run([PY, "-m", "cuagent.cli", "profiling", *args, "--socket", str(self.socket)],
                              capture_output=True, text=True, timeout=timeout, cwd=ROOT / "tests", env=env())
        return proc.returncode, proc.stdout + proc.stderr

    def device_status(self) -> Dict[str, Any]:
        """The first device of `cuagent profiling status`."""
        rc, text = self.cli("status")
        if rc != 0:
            raise RuntimeError(f"cuagent profiling status: rc {rc}: {text.strip()[-300:]}")
        return dict(json.loads(text)["sources"][0]["devices"][0])

    def wait_sampling(self, deadline: Deadline) -> Dict[str, Any]:
        """Until CUPTI samples (the status says so and samples arrive); the agent's own words if it cannot."""
        last: Dict[str, Any] = {}
        while deadline.left() > 0:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the agent exited with {self.proc.returncode}: " + " | ".join(self.log_tail(4)))
            if self.cupti == "off":
                if self.windows():
                    return {}
            elif self.socket.exists():
                try:
                    last = dict(self.request("status")["sources"][0]["devices"][0])
                except (OSError, ValueError, KeyError, IndexError):
                    last = {}
                if last.get("state") == "sampling" and last.get("samples", 0) > 0 and self.windows():
                    return last
            time.sleep(0.1)
        raise OutOfTime(f"CUPTI not sampling after {deadline.seconds:.0f} s: state {last.get('state')!r} "
                        f"reason {last.get('reason')!r}; log: " + " | ".join(self.log_tail(3)))

    def messages(self) -> List[Dict[str, Any]]:
        out = []
        try:
            text = self.feed_path.read_text(errors="replace")
        except OSError:
            return []
        for line in text.splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass  # the line being written
        return out

    def windows(self) -> List[Tuple[float, Dict[str, Any]]]:
        """(end of window in s since the epoch, device counters) of every state message."""
        return [(m["header"]["ts"] / 1e9, m["body"].get("device", {}) or {}) for m in self.messages()
                if str(m.get("topic", "")).startswith("cua1/state/")]

    def processes(self) -> List[int]:
        pids = set()
        for m in self.messages():
            if str(m.get("topic", "")).startswith("cua1/state/"):
                for p in m["body"].get("processes") or []:
                    if isinstance(p.get("pid"), int):
                        pids.add(p["pid"])
        return sorted(pids)

    def events(self) -> List[Dict[str, Any]]:
        return [{"t": m["header"]["ts"] / 1e9, "type": m["body"].get("type"), "detail": m["body"].get("detail")}
                for m in self.messages() if str(m.get("topic", "")).startswith("cua1/event/")]

    def wait_event(self, kind: str, after: float, deadline: Deadline, limit: float) -> Optional[Dict[str, Any]]:
        end = min(time.monotonic() + limit, deadline.end - 1)
        while True:
            hit = next((e for e in self.events() if e["type"] == kind and e["t"] >= after), None)
            if hit is not None or time.monotonic() >= end:
                return hit
            time.sleep(0.1)

    def stop(self) -> Optional[int]:
        rc: Optional[int] = None
        for p in (self.proc, self.watch):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
            if p is self.proc:
                rc = p.returncode
        return rc


PM_KEYS = ("pm_sm_active", "pm_sm_active_max", "pm_sm_active_min", "pm_sm_active_peak", "pm_samples",
           "pm_tensor_active", "pm_gpc_clock", "sm_active", "tensor_active", "sm_clock", "power")


def phase_stats(windows: List[Tuple[float, Dict[str, Any]]], t0: Optional[float], t1: Optional[float]) -> Dict[str, Any]:
    """Means over the windows wholly inside [t0 + settle, t1 - tail]."""
    if t0 is None or t1 is None:
        return {"windows": 0}
    lo, hi = t0 + T["settle"], t1 - T["tail"]
    ws = [d for ts, d in windows if ts - WINDOW_S >= lo and ts <= hi]
    out: Dict[str, Any] = {"windows": len(ws), "from": lo, "to": hi}
    if not ws:
        return out
    for k in PM_KEYS:
        vals = [v for v in (finite(w.get(k)) for w in ws) if v is not None]
        out[k] = mean(vals)
    out["with_pm"] = sum(1 for w in ws if finite(w.get("pm_sm_active")) is not None) / len(ws)
    out["with_gpm"] = sum(1 for w in ws if finite(w.get("sm_active")) is not None) / len(ws)
    spreads = [hi_ - lo_ for hi_, lo_ in ((finite(w.get("pm_sm_active_max")), finite(w.get("pm_sm_active_min")))
                                          for w in ws) if hi_ is not None and lo_ is not None]
    out["spread"] = mean(spreads)
    samples = [v for v in (finite(w.get("pm_samples")) for w in ws) if v is not None]
    out["pm_samples_median"] = statistics.median(samples) if samples else None
    out["pm_samples_min"] = min(samples) if samples else None
    return out


def stats_line(name: str, s: Dict[str, Any]) -> str:
    cols = [fmt(s.get(k)) for k in ("pm_sm_active", "pm_sm_active_max", "pm_sm_active_min", "spread")]
    cols += [fmt(s.get("pm_samples"), ".1f"), fmt(s.get("sm_active")), fmt(s.get("sm_clock"), ".0f", 1e6),
             fmt(s.get("pm_gpc_clock"), ".0f", 1e6), fmt(s.get("power"), ".0f")]
    widths = (6, 5, 5, 6, 7, 7, 6, 6, 7)
    return (f"{name:<11} {s.get('windows', 0):>3} " + " ".join(f"{c:>{w}}" for c, w in zip(cols, widths)) +
            f" {fmt(s.get('with_pm'), '.2f')}/{fmt(s.get('with_gpm'), '.2f')}")


STATS_HEAD = ("phase         n pm_act max   min   spread samples gpm_act sm_MHz pm_MHz power_W "
              "with_pm/gpm")


# ---- the check ---------------------------------------------------------------------------

class Check:
    def __init__(self) -> None:
        self.out = Path(os.environ.get("OUT", ROOT / "gpu-check-out"))
        self.work = Path(os.environ["WORK"]) if os.environ.get("WORK") else Path(os.environ.get("TMPDIR", "/tmp"))
        self.step = os.environ.get("STEP", "cuptihw")
        self.notes_path = self.work / f"notes.{self.step}"
        self.gpu = os.environ.get("GPU") == "1"
        self.phases = self.work / "cuptihw-phases"
        self.phases.write_text("")
        self.report: Dict[str, Any] = {"dry": not self.gpu, "limits_s": LIMITS, "phases_s": T, "took_s": {}}
        self.failures: List[str] = []
        step_limit = float(os.environ.get("STEP_LIMIT", BUDGET_S + 10))
        self.budget = Deadline(min(BUDGET_S, step_limit - 8))
        self.fakes: Optional[Fakes] = None
        self.agent: Optional[Agent] = None  # the 1 kHz agent of rest, load and ncu
        self.sampling = False  # that agent reached CUPTI sampling
        self.idle: Dict[str, Any] = {}

    def note(self, line: str) -> None:
        print(line, flush=True)
        with open(self.notes_path, "a") as f:
            f.write(line + "\n")

    def fail(self, line: str) -> None:
        self.failures.append(line)
        self.note("FAIL: " + line)

    def save(self) -> None:
        (self.out / "cupti-hw.json").write_text(json.dumps(self.report, indent=1, default=str))

    def sub(self, name: str, fn: Callable[[Deadline], None]) -> None:
        limit = min(LIMITS[name], self.budget.left() - 2)
        if limit < 3:
            self.note(f"{name}: not run, out of the step's {BUDGET_S:.0f} s")
            self.report.setdefault("not_run", []).append(name)
            return
        t0 = time.monotonic()
        print(f"--- cuptihw {name} (limit {limit:.0f} s)", flush=True)
        try:
            fn(Deadline(limit))
        except (OutOfTime, subprocess.TimeoutExpired) as e:
            self.fail(f"{name}: out of its {limit:.0f} s ({e})")
        except Exception as e:  # one sub-check's error never loses the others
            traceback.print_exc()
            self.fail(f"{name}: {type(e).__name__}: {e}")
        self.report["took_s"][name] = round(time.monotonic() - t0, 1)
        self.save()

    # -- rest: CUPTI on, nothing running
    def rest(self, d: Deadline) -> None:
        before_mib, apps_before = gpu_memory_used_mib(), compute_apps()
        mark(self.phases, "start")
        self.agent = a = Agent(self.work, "khz1", self.phases, self.fakes, rate_hz=1000)
        st = a.wait_sampling(d)
        self.sampling = True
        self.report["chip"] = st.get("chip")
        cpu0, t_idle = cpu_seconds(a.pid), mark(self.phases, "idle")
        status0 = a.device_status()
        d.sleep(T["idle"])
        t_end = mark(self.phases, "idle_end")
        status1 = a.device_status()
        cpu1 = cpu_seconds(a.pid)
        apps, during_mib, rss = compute_apps(), gpu_memory_used_mib(), rss_mib(a.pid)
        idle = phase_stats(a.windows(), t_idle, t_end)
        cpu = None if cpu0 is None or cpu1 is None else 100.0 * (cpu1 - cpu0) / (t_end - t_idle)
        ours = None if apps is None else [x for x in apps if x["pid"] == a.pid]
        feed_pids = a.processes()
        self.report["rest"] = {"agent_pid": a.pid, "compute_apps_before": apps_before, "compute_apps": apps,
                               "memory_used_mib_before": before_mib, "memory_used_mib": during_mib,
                               "agent_rss_mib": rss, "agent_cpu_pct": cpu, "feed_process_pids": feed_pids,
                               "windows": idle, "status": status1}
        self.report["rates"] = {"1000": self.rate_figures(1000, status0, status1, idle, cpu)}
        if apps is None:
            smi = "nvidia-smi: not available"
        else:
            listed = ", ".join(f"{x['pid']} {x['name']} {x['used_mib']} MiB" for x in apps) or "none"
            smi = (f"agent pid {a.pid} in nvidia-smi compute-apps: {'YES' if ours else 'no'} (apps: {listed}); "
                   f"GPU memory.used {fmt(before_mib, '.0f')} MiB before the agent, {fmt(during_mib, '.0f')} MiB "
                   f"with CUPTI sampling")
        self.note(f"rest (CUPTI on at 1 kHz, no workload): {smi}; agent pid in its own feed's processes: "
                  f"{'YES' if a.pid in feed_pids else 'no'}; agent RSS {fmt(rss, '.0f')} MiB, CPU {fmt(cpu, '.1f')} % "
                  f"of a core; libcupti chip {st.get('chip')}")
        if ours:
            self.fail(f"rest: the agent holds a GPU context: {ours}")
        if a.pid in feed_pids:
            self.fail("rest: the agent's own pid is in the GPU's process list")
        self.idle = idle

    def rate_figures(self, rate: int, s0: Dict[str, Any], s1: Dict[str, Any], w: Dict[str, Any],
                     cpu: Optional[float]) -> Dict[str, Any]:
        """One rate's counters over a phase (status deltas) and its windows; clean or not."""
        delta = {k: int(s1.get(k, 0)) - int(s0.get(k, 0)) for k in
                 ("samples", "late", "dropped", "overflows", "data_full", "decode_calls", "evaluate_ns")}
        expected = rate * WINDOW_S
        med = w.get("pm_samples_median")
        full = med is not None and med >= 0.9 * expected
        clean = delta["overflows"] == 0 and delta["dropped"] == 0 and full and w.get("windows", 0) > 0
        return {"rate_hz": rate, "expected_per_window": expected, "median_per_window": med,
                "min_per_window": w.get("pm_samples_min"), "windows": w.get("windows", 0), **delta,
                "late_pct": 100.0 * delta["late"] / delta["samples"] if delta["samples"] else None,
                "evaluate_us_per_sample": delta["evaluate_ns"] / delta["samples"] / 1e3 if delta["samples"] else None,
                "agent_cpu_pct": cpu, "clean": clean, "state": s1.get("state"), "reason": s1.get("reason")}

    # -- load: bf16 matmul on / paused / on, then 16 one-block kernels
    def load(self, d: Deadline) -> None:
        a = self.need_agent()
        proc = subprocess.run([PY, str(Path(__file__).resolve()), "load", str(a.socket)], capture_output=True,
                              text=True, timeout=d.left() - 1, env={**env(), "CUAGENT_CUPTIHW_PHASES": str(self.phases)},
                              cwd=ROOT / "tests")
        print(proc.stdout + proc.stderr, flush=True)
        said = [line for line in proc.stdout.splitlines() if line.startswith(("load:", "matmul:", "block16:"))]
        time.sleep(2 * WINDOW_S + 0.1)  # the last windows reach the feed
        m, ws = read_marks(self.phases), a.windows()
        phases = {
            "idle": self.idle,
            "matmul": phase_stats(ws, m.get("matmul_on"), m.get("pause_asked")),
            "paused": phase_stats(ws, m.get("matmul_off"), m.get("resume_asked")),
            "matmul2": phase_stats(ws, m.get("matmul_on2"), m.get("block16")),
            "block16": phase_stats(ws, m.get("block16"), m.get("end")),
        }
        self.report["load"] = {"rc": proc.returncode, "said": said, "phases": phases, "marks": m}
        for line in said:
            self.note(line)
        self.note(STATS_HEAD)
        for name, s in phases.items():
            self.note(stats_line(name, s))
        if proc.returncode != 0 or "end" not in m:
            self.fail(f"load: the PyTorch load exited with {proc.returncode} before its end: {said[-1:] or proc.stderr[-300:]}")
            return
        if self.gpu and any(line.startswith("load: no torch") for line in said):
            return  # nothing to compare: PyTorch is not on this image
        idle, on, off, on2, b16 = (phases[k] for k in ("idle", "matmul", "paused", "matmul2", "block16"))
        # pm_sm_active follows the matmul; the 16 one-block kernels widen the spread.
        def act(s: Dict[str, Any]) -> float:
            return float(s["pm_sm_active"]) if s.get("pm_sm_active") is not None else math.nan

        def spread(s: Dict[str, Any]) -> float:
            return float(s["spread"]) if s.get("spread") is not None else math.nan

        if not act(on) > act(idle) + 0.5:
            self.fail(f"load: pm_sm_active under the matmul {act(on):.3f} is not above idle {act(idle):.3f} + 0.5")
        if not (spread(b16) > 0.5 and spread(b16) > spread(on) + 0.3):
            self.fail(f"load: the 16-block max-min spread {spread(b16):.3f} is not wide (> 0.5 and matmul's "
                      f"{spread(on):.3f} + 0.3)")
        if off.get("with_pm", 1.0) > 0:
            self.fail(f"load: pm_ counters present in {off.get('with_pm'):.0%} of the paused windows (must be absent)")
        gpm = {k: s.get("with_gpm") for k, s in phases.items()}
        if any(v is None or v < 0.9 for v in gpm.values()):
            self.fail(f"load: GPM sm_active missing from windows: present in {gpm}")
        else:
            least = min(v for v in gpm.values() if v is not None)
            self.note(f"GPM sm_active present in {'every window' if least == 1 else f'at least {least:.0%} of the windows'}"
                      f" of each phase (CUPTI sampling, paused, 16 blocks); under the matmul GPM "
                      f"{fmt(on.get('sm_active'))} vs CUPTI {fmt(on.get('pm_sm_active'))}")
        # GPM working, not only present: busy under the matmul with CUPTI sampling beside it. (The dry
        # run's GPM replays a recorded trace that does not follow the phases: real GPU only.)
        gpm_busy = [s.get("sm_active") for s in (on, on2)]
        if self.gpu and not all(v is not None and v > 0.5 for v in gpm_busy):
            self.fail(f"load: GPM sm_active under the matmul with CUPTI sampling {gpm_busy} (expected > 0.5)")
        clocks = [s.get("sm_clock") for s in (on, off, on2)]
        if all(c is not None for c in clocks):
            c_on = statistics.fmean([c for c in (clocks[0], clocks[2]) if c is not None])
            c_off = clocks[1] or float("nan")
            self.report["load"]["sm_clock_on_off_mhz"] = [c_on / 1e6, c_off / 1e6]
            self.note(f"clocks under the matmul (no lock), NVML sm_clock: {fmt(clocks[0], '.0f', 1e6)} MHz sampling on, "
                      f"{fmt(clocks[1], '.0f', 1e6)} MHz paused, {fmt(clocks[2], '.0f', 1e6)} MHz on again "
                      f"(on vs off {100.0 * (c_on - c_off) / c_off:+.1f} %); power {fmt(on.get('power'), '.0f')} / "
                      f"{fmt(off.get('power'), '.0f')} / {fmt(on2.get('power'), '.0f')} W")

    # -- ncu while we sample, then the operator's pause path
    def ncu(self, d: Deadline) -> None:
        a = self.need_agent()
        ncu = find_ncu() if self.gpu else None  # without a GPU, ncu has nothing to profile
        result: Dict[str, Any] = {"ncu": ncu}
        self.report["ncu"] = result
        if ncu is None:
            self.note("ncu: not available on this machine (PATH, /usr/local/cuda*/bin, /opt/nvidia/nsight-compute)"
                      if self.gpu else "ncu: not run without a GPU; the operator's pause path alone")
        else:
            t0 = mark(self.phases, "ncu_sampling")
            run = run_ncu(ncu, min(25.0, d.left() - 35))  # the rest for the operator path
            t1 = mark(self.phases, "ncu_sampling_end")
            paused = next((e for e in a.events() if e["type"] == "profiling_paused" and e["t"] >= t0), None)
            resumed = a.wait_event("profiling_resumed", t0, d, 12.0) if paused else None
            run.update({"our_paused": paused, "our_resumed": resumed,
                        "status_after": a.request("status")["sources"][0]["devices"][0]})
            result["while_sampling"] = run
            ours = ("no profiling_paused event" if paused is None else
                    f"profiling_paused {paused['detail']!r} {paused['t'] - t0:.1f} s after ncu started")
            if paused is not None:
                ours += ("; no profiling_resumed within 12 s of ncu's end" if resumed is None else
                         f"; profiling_resumed {resumed['t'] - t1:+.1f} s from ncu's end")
            self.note(f"ncu while sampling: rc {run['rc']}, {NCU_METRIC} {run['metric'] or 'not read'}"
                      f"{'; ncu said: ' + ' | '.join(run['errors'][-2:]) if run['errors'] else ''}; ours: {ours}")
        # The operator's path (README): pause, profile, resume.
        t_pause = time.time()
        rc, text = a.cli("pause", "gpu-check:", "ncu", "session", timeout=max(1.0, min(20.0, d.left())))
        paused = a.wait_event("profiling_paused", t_pause, d, 5.0)
        op: Dict[str, Any] = {"pause_rc": rc, "paused": paused}
        if paused is None:
            self.fail(f"ncu: `cuagent profiling pause` (rc {rc}) gave no profiling_paused event: {text.strip()[-200:]}")
        if ncu is not None:
            op["ncu"] = run_ncu(ncu, min(25.0, d.left() - 6))
        t_resume = time.time()
        rc, text = a.cli("resume", timeout=max(1.0, min(20.0, d.left())))
        resumed = a.wait_event("profiling_resumed", t_resume, d, 5.0)
        op.update({"resume_rc": rc, "resumed": resumed})
        result["operator"] = op
        if resumed is None:
            self.fail(f"ncu: `cuagent profiling resume` (rc {rc}) gave no profiling_resumed event: {text.strip()[-200:]}")
        prof = "" if ncu is None else (f"; ncu meanwhile: rc {op['ncu']['rc']}, {NCU_METRIC} "
                                      f"{op['ncu']['metric'] or 'not read'}"
                                      f"{' (' + ' | '.join(op['ncu']['errors'][-1:]) + ')' if op['ncu']['errors'] else ''}")
        self.note("operator pause: " + (f"profiling_paused {paused['detail']!r} {paused['t'] - t_pause:.2f} s after "
                                        "`cuagent profiling pause`" if paused else "no event") + prof + "; " +
                  (f"profiling_resumed {resumed['t'] - t_resume:.2f} s after `resume`" if resumed else "no resume event"))
        if ncu is not None and op["ncu"]["metric"] is None:
            if isinstance(op["ncu"]["rc"], int):
                self.fail("ncu: ncu read no counter even with our sampling paused")
            else:
                self.note(f"NOTE: ncu with our sampling paused: {op['ncu']['rc']}: no verdict")

    # -- rates: the highest CUPTI rate with full windows, no overflow, no drops
    def rates(self, d: Deadline) -> None:
        rates: Dict[str, Any] = self.report.setdefault("rates", {})
        # CUPTI off: the baseline of the agent's RSS and CPU.
        off = Agent(self.work, "off", self.phases, self.fakes, cupti="off")
        try:
            off.wait_sampling(Deadline(min(10.0, d.left() - 1)))
            c0, t0 = cpu_seconds(off.pid), time.time()
            d.sleep(T["rate"])
            c1, t1 = cpu_seconds(off.pid), time.time()
            rates["off"] = {"agent_rss_mib": rss_mib(off.pid), "memory_used_mib": gpu_memory_used_mib(),
                            "agent_cpu_pct": None if c0 is None or c1 is None else 100.0 * (c1 - c0) / (t1 - t0)}
        finally:
            off.stop()
        for rate in RATES:
            if d.left() < T["rate"] + 4:
                rates[str(rate)] = {"rate_hz": rate, "not_run": "out of time"}
                continue
            a = Agent(self.work, f"khz{rate // 1000}", self.phases, self.fakes, rate_hz=rate)
            try:
                a.wait_sampling(Deadline(min(12.0, d.left() - T["rate"] - 2)))
                s0, c0 = a.device_status(), cpu_seconds(a.pid)
                t0 = mark(self.phases, f"rate{rate}")
                d.sleep(T["rate"] + T["settle"])
                t1 = time.time()
                s1, c1 = a.device_status(), cpu_seconds(a.pid)
                time.sleep(WINDOW_S + 0.1)
                cpu = None if c0 is None or c1 is None else 100.0 * (c1 - c0) / (t1 - t0)
                rates[str(rate)] = self.rate_figures(rate, s0, s1, phase_stats(a.windows(), t0, t1), cpu)
            except (RuntimeError, OutOfTime) as e:
                rates[str(rate)] = {"rate_hz": rate, "clean": False, "error": str(e)}
            finally:
                a.stop()
        off_fig = rates.get("off", {})
        self.note(f"CUPTI off: agent RSS {fmt(off_fig.get('agent_rss_mib'), '.0f')} MiB, CPU "
                  f"{fmt(off_fig.get('agent_cpu_pct'), '.1f')} %, GPU memory.used {fmt(off_fig.get('memory_used_mib'), '.0f')} MiB")
        for key in ["1000", *map(str, RATES)]:
            r = rates.get(key)
            if r is None:
                continue
            if "error" in r or "not_run" in r:
                self.note(f"rate {key} Hz: {r.get('error') or r.get('not_run')}")
                continue
            self.note(f"rate {key} Hz: {fmt(r['median_per_window'], '.0f')}/{r['expected_per_window']:.0f} samples "
                      f"a window (min {fmt(r['min_per_window'], '.0f')}, {r['windows']} windows), overflows "
                      f"{r['overflows']}, dropped {r['dropped']}, late {fmt(r['late_pct'], '.1f')} %, data_full "
                      f"{r['data_full']}, decode {fmt(r['evaluate_us_per_sample'], '.1f')} us/sample, agent CPU "
                      f"{fmt(r['agent_cpu_pct'], '.1f')} %: {'clean' if r['clean'] else 'NOT clean'}")
        clean = [int(k) for k, r in rates.items() if k.isdigit() and r.get("clean")]
        # The highest rate below which every rate tried was clean too.
        tried = sorted(int(k) for k in rates if k.isdigit() and "not_run" not in rates[k])
        highest = None
        for rate in tried:
            if rate not in clean:
                break
            highest = rate
        self.report["highest_clean_rate_hz"] = highest
        self.note(f"highest clean CUPTI rate: {highest} Hz ({1e6 / highest:.0f} us interval)" if highest else
                  "highest clean CUPTI rate: none of those tried")
        if "1000" in rates and not rates["1000"].get("clean"):
            if self.gpu:
                self.fail("rates: the default 1 kHz is not clean")
            else:  # a fake on a shared CPU: whether its windows fill is that CPU's timing, not a finding
                self.note("rates: the default 1 kHz is not clean here (dry run: not judged)")

    def need_agent(self) -> Agent:
        if self.agent is None or self.agent.proc.poll() is not None:
            raise RuntimeError("no sampling agent (rest did not start one)")
        return self.agent

    def run(self) -> int:
        self.notes_path.touch()
        if not self.gpu:
            self.fakes = Fakes(self.work)
            self.note("DRY: fake libnvidia-ml (H100 trace) + fake libcupti following the phases; no figure is a GPU's")
        try:
            self.sub("rest", self.rest)
            if self.sampling and self.agent is not None and self.agent.proc.poll() is None:
                self.sub("load", self.load)
                self.sub("ncu", self.ncu)
            else:
                self.note("load, ncu: not run (no sampling agent)")
        finally:
            if self.agent is not None:
                rc = self.agent.stop()
                print("--- agent log (1 kHz)\n" + "\n".join(self.agent.log_tail(40)), flush=True)
                self.report["agent_exit"] = rc
                if rc not in (0, None):
                    self.fail(f"the 1 kHz agent exited with {rc} on SIGTERM")
        self.sub("rates", self.rates)
        self.report["failures"] = self.failures
        self.save()
        return 1 if self.failures else 0


# ---- ncu ---------------------------------------------------------------------------------

def find_ncu() -> Optional[str]:
    found = shutil.which("ncu")
    if found:
        return found
    for pattern in ("/usr/local/cuda*/bin/ncu", "/opt/nvidia/nsight-compute/*/ncu"):
        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[-1]
    return None


def run_ncu(ncu: str, timeout: float) -> Dict[str, Any]:
    """ncu on a small PyTorch program, one metric, its clocks left alone."""
    cmd = [ncu, "--metrics", NCU_METRIC, "--clock-control", "none", "--launch-count", "3",
           PY, str(Path(__file__).resolve()), "ncu-target"]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max(1.0, timeout), env=env())
        rc: Any = proc.returncode
        text = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        rc = f"timeout after {timeout:.0f} s"
        text = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else str(e.stdout or "")
    lines = text.splitlines()
    metric = next((" ".join(line.split()[1:]) for line in lines if line.strip().startswith(NCU_METRIC)), None)
    errors = [line.strip()[:200] for line in lines if line.startswith(("==ERROR==", "==WARNING=="))]
    print(f"--- {' '.join(cmd)}: rc {rc}\n" + "\n".join(lines[-25:]), flush=True)
    return {"rc": rc, "metric": metric, "errors": errors, "seconds": round(time.monotonic() - t0, 1),
            "tail": lines[-12:]}


def ncu_target() -> int:
    import torch

    x = torch.ones(1 << 20, device="cuda")
    for _ in range(5):
        x.mul_(1.0001)
    torch.cuda.synchronize()
    print("ncu-target: done", flush=True)
    return 0


# ---- the load (its own process: a GPU hang is killable) ---------------------------------

def load(socket: str) -> int:
    phases = Path(os.environ["CUAGENT_CUPTIHW_PHASES"])
    seg, block = T["seg"], T["block"]
    try:
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError("no CUDA device")
        ok = True
    except Exception as e:  # the dry run, or an image without PyTorch: the phases, no load
        print(f"load: no torch/CUDA ({type(e).__name__}: {e}): phases without a load", flush=True)
        ok = False

    def cli(*args: str) -> "subprocess.Popen[bytes]":
        return subprocess.Popen([PY, "-m", "cuagent.cli", "profiling", *args, "--socket", socket],
                                stdout=subprocess.DEVNULL)

    products = [0]
    if ok:
        n = 8192
        a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        a @ b
        torch.cuda.synchronize()

    def matmul(seconds: float, waiting: "Optional[subprocess.Popen[bytes]]" = None, then: str = "") -> None:
        """Products for `seconds`; `then` marked when the CLI command `waiting` returns."""
        end = time.time() + seconds
        while time.time() < end:
            if ok:
                for _ in range(10):
                    a @ b
                torch.cuda.synchronize()
                products[0] += 10
            else:
                time.sleep(0.01)
            if waiting is not None and waiting.poll() is not None:
                if waiting.returncode != 0:
                    print(f"load: cuagent profiling exited with {waiting.returncode}", flush=True)
                mark(phases, then)
                waiting = None
        if waiting is not None:
            waiting.wait(timeout=20)
            mark(phases, then)

    t0 = mark(phases, "matmul_on")
    matmul(seg)
    mark(phases, "pause_asked")
    matmul(seg, cli("pause", "gpu-check:", "clocks", "without", "sampling"), "matmul_off")
    mark(phases, "resume_asked")
    matmul(seg, cli("resume"), "matmul_on2")
    took = time.time() - t0
    if ok:
        print(f"matmul: {products[0]} bf16 products of 8192^3 in {took:.1f} s = "
              f"{products[0] * 2 * 8192 ** 3 / took / 1e12:.0f} TFLOP/s", flush=True)
    mark(phases, "block16")
    end, rounds = time.time() + block, 0
    if ok:
        streams = [torch.cuda.Stream() for _ in range(16)]
        hz = 1.98e9  # H100 boost clock: each spin about 0.1 s
        while time.time() < end:
            for s in streams:
                with torch.cuda.stream(s):
                    torch.cuda._sleep(int(0.1 * hz))
            torch.cuda.synchronize()
            rounds += 1
        sms = torch.cuda.get_device_properties(0).multi_processor_count
        print(f"block16: {rounds} rounds of 16 one-block spin kernels on 16 streams; {sms} SMs, so a mean "
              f"of {16 / sms:.3f} if each got its own SM", flush=True)
    else:
        time.sleep(max(0.0, end - time.time()))
    mark(phases, "end")
    return 0


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["load"]:
        return load(argv[1])
    if argv[:1] == ["ncu-target"]:
        return ncu_target()
    return Check().run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
