"""scripts/gpu-check's dry runs: every step's logic in its GPU-less form (the fake libnvidia-ml
and libcupti, the mock driver, synthetic probe observations), its figures in the summary, and
the frame the device call relies on: one step failing or hanging leaves the others their time,
the summary is there even when the run is killed, $OUT stays within what the device tool
brings back (8 files, plain names, no folders), and a bad setting stops the script at once
instead of spending the call. The real run needs an H100 (the device machine); this keeps
the script from rotting between lent GPUs.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cupti_fake

pytest.importorskip("cuagent._core")
pytest.importorskip("zmq")
if cupti_fake.compiler() is None or shutil.which("bash") is None or shutil.which("timeout") is None:
    pytest.skip("needs a C compiler (the fakes), bash and timeout", allow_module_level=True)

ROOT = Path(__file__).resolve().parent.parent
# What the device tool brings back from $OUT: these names are the script's eight.
OUT_FILES = {"summary.txt", "gpu-check.log", "pytest.txt", "sm-layout.json", "feed.jsonl", "dmon.txt",
             "bench.txt", "cupti-hw.json"}


def dry_env(out: Path, steps: str, **extra: str) -> dict:
    env = dict(os.environ, OUT=str(out), PYTHON=sys.executable, CUAGENT_GPU_CHECK_DRY="1",
               CUAGENT_GPU_CHECK_BUILD="0", CUAGENT_GPU_CHECK_STEPS=steps)
    return {**env, **extra}


def run_dry(out: Path, steps: str, timeout: float, root: Path = ROOT, **extra: str) -> tuple:
    """(exit status, summary, log tail) of gpu-check's dry run of ``steps`` into ``out``."""
    proc = subprocess.run(["bash", str(root / "scripts" / "gpu-check")], env=dry_env(out, steps, **extra),
                          capture_output=True, text=True, timeout=timeout)
    summary = (out / "summary.txt").read_text()
    log = (out / "gpu-check.log").read_text() if (out / "gpu-check.log").exists() else ""
    return proc.returncode, summary, summary + "\n" + log[-4000:]


def dry_run(out: Path, step: str, timeout: float) -> str:
    """gpu-check's dry run of ``step`` (one or several) into ``out``: its summary, once the run passed."""
    rc, summary, why = run_dry(out, step, timeout)
    assert rc == 0, why
    for name in step.split(","):
        assert re.search(rf"^PASS +{name} ", summary, re.M), summary
    assert_out_fits(out)
    return summary


def assert_out_fits(out: Path) -> None:
    """$OUT as the device tool brings it back: at most 8 plain files, named as it allows."""
    entries = list(out.iterdir())
    assert all(p.is_file() for p in entries), entries
    names = {p.name for p in entries}
    assert names <= OUT_FILES, names - OUT_FILES
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", n) for n in names), names
    assert len(entries) <= 8


@pytest.mark.timeout(300)
def test_dry_run_of_the_cupti_hardware_step_writes_its_figures(tmp_path):
    out = tmp_path / "out"
    summary = dry_run(out, "cuptihw", 280)
    assert re.search(r"^SKIP +build +not selected", summary, re.M)  # only the step asked for ran

    # Figures, not only a verdict: the windows of each phase, clocks, GPM, rates, the pause path.
    for phase in ("idle", "matmul", "paused", "matmul2", "block16"):
        assert re.search(rf"^ +{phase} +\d+ ", summary, re.M), (phase, summary)
    assert "clocks under the matmul (no lock), NVML sm_clock:" in summary
    assert "GPM sm_active present in" in summary
    assert "ncu: not run without a GPU" in summary
    assert re.search(r"operator pause: profiling_paused 'gpu-check: ncu session' [\d.]+ s after", summary)
    # Whether the fake's 1 kHz windows fill depends on this machine's CPU at the time (not judged
    # in a dry run); the forced overflows at 20 kHz always make that rate NOT clean.
    assert re.search(r"rate 1000 Hz: \d+/100 samples a window .*: (clean|NOT clean)", summary)
    assert re.search(r"rate 20000 Hz: .*overflows [1-9]\d*.*NOT clean", summary)
    assert "highest clean CUPTI rate:" in summary

    report = json.loads((out / "cupti-hw.json").read_text())
    assert report["dry"] is True and report["failures"] == []
    phases = report["load"]["phases"]
    # The fake follows the phases: busy under the matmul, absent while paused, a wide spread
    # with 16 one-block kernels (the comparisons the step makes on a GPU).
    assert phases["matmul"]["pm_sm_active"] > phases["idle"]["pm_sm_active"] + 0.5
    assert phases["paused"]["with_pm"] == 0 and phases["paused"]["with_gpm"] == 1
    assert phases["block16"]["spread"] > phases["matmul"]["spread"] + 0.3
    assert report["rates"]["20000"]["overflows"] > 0 and report["rates"]["20000"]["clean"] is False
    assert report["highest_clean_rate_hz"] in (None, 1000, 5000, 10000)
    assert report["rest"]["agent_rss_mib"] > 0 and report["rates"]["off"]["agent_rss_mib"] > 0


@pytest.mark.timeout(240)
def test_dry_run_of_the_latency_step_writes_its_figures(tmp_path):
    # Step latency runs bench/feed_latency.py (mock driver, no GPU call) and puts its p50/p99 and
    # the libzmq floor into the summary: on the device machine's idle cores, issue 14's latency
    # target is measured where this VM's wake-ups do not dominate it.
    out = tmp_path / "out"
    summary = dry_run(out, "latency", 200)
    for what in ("decoded", "header only"):
        for q in ("p50", "p99"):
            assert re.search(rf"latency: {what}: {q} +cuagent +[\d.]+ ms +fixed-timer baseline +[\d.]+ ms", summary), summary
    assert re.search(r"latency: floor: one libzmq ipc hop.*p50 [\d.]+ ms, p99 [\d.]+ ms", summary), summary
    assert "## bench/feed_latency.py" in (out / "bench.txt").read_text()


@pytest.mark.timeout(300)
def test_dry_run_of_the_other_steps_fits_the_device_call(tmp_path):
    # The steps the two tests above leave out, in one run: each passes in its GPU-less form, the
    # head says what the machine has (what a first look at the device machine needs), the step
    # limits add up to no more than the budget (a hang in one step never takes another's
    # time), and $OUT holds only files the device tool brings back.
    out = tmp_path / "out"
    summary = dry_run(out, "build,pytest,layout,feed,bench", 280)
    m = re.search(r"^step limits: (.*) = (\d+)s of a (\d+)s budget$", summary, re.M)
    assert m, summary
    names = [part.split()[0] for part in m.group(1).split(" + ")]
    assert names == ["build", "pytest", "layout", "feed", "bench", "cuptihw", "latency"]
    assert sum(int(part.split()[1]) for part in m.group(1).split(" + ")) == int(m.group(2))
    assert int(m.group(2)) <= int(m.group(3)) == 450
    for line in ("image: ", "tools: ", "build: Python.h "):
        assert re.search(rf"^{line}", summary, re.M), (line, summary)
    # pytest ran on the files with GPU tests only (a module elsewhere that fails to import on
    # the image would stop a whole-suite collection).
    assert re.search(r"pytest -m gpu test_cupti_gpu\.py test_nvml_gpu\.py: \d+ skipped", summary), summary
    assert (out / "feed.jsonl").stat().st_size > 0 and "## bench/nvml_agent_cpu.py" in (out / "bench.txt").read_text()
    assert "RUNNING" not in summary and "total " in summary
    # What the agent will report on the machine, in the log before the feed's run.
    assert "cuagent run --check: every setting is valid" in (out / "gpu-check.log").read_text()


def partial_tree(tmp_path: Path, drop: str) -> Path:
    """A copy of the repository for the script (scripts/ copied, the rest linked) without the
    file ``drop`` of tests/data: a step that reads it fails as on a broken machine."""
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copytree(ROOT / "scripts", tree / "scripts")
    for name in ("bench", "cpp", "python", "CMakeLists.txt", "pyproject.toml"):
        (tree / name).symlink_to(ROOT / name)
    (tree / "tests").mkdir()
    for p in (ROOT / "tests").iterdir():
        if p.name not in ("data", "__pycache__"):
            (tree / "tests" / p.name).symlink_to(p)
    (tree / "tests" / "data").mkdir()
    for p in (ROOT / "tests" / "data").iterdir():
        if p.name != drop:
            (tree / "tests" / "data" / p.name).symlink_to(p)
    # A clean git checkout, as CI's (scripts/ committed, the rest ignored): the head's tree line
    # reads git there.
    git = ["git", "-C", str(tree), "-c", "user.name=gpu-check", "-c", "user.email=gpu-check@localhost"]
    subprocess.run([*git, "init", "-q"], check=True, timeout=30)
    (tree / ".git" / "info" / "exclude").write_text("/*\n!/scripts/\n")
    subprocess.run([*git, "add", "scripts"], check=True, timeout=30)
    subprocess.run([*git, "commit", "-q", "-m", "tree"], check=True, timeout=30)
    return tree


@pytest.mark.timeout(200)
def test_a_failing_and_a_hanging_step_leave_the_next_their_run(tmp_path):
    # layout fails (its reference is gone), bench is held to 3 s (CUAGENT_GPU_CHECK_LIMITS) and
    # is cut off with what it started; latency after them still runs and passes, and the
    # verdicts say which was which.
    tree = partial_tree(tmp_path, "h100-sxm-layout.json")
    out = tmp_path / "out"
    rc, summary, why = run_dry(out, "layout,bench,latency", 180, root=tree, CUAGENT_GPU_CHECK_LIMITS="bench:3")
    assert rc == 1, why
    assert re.search(r"^FAIL +layout ", summary, re.M), why
    assert re.search(r"^TIMEOUT +bench +\d+s \(limit 3s, rc 124\)", summary, re.M), why
    assert re.search(r"^PASS +latency ", summary, re.M), why
    assert re.search(r"^tree: sources [0-9a-f]{16}, git [0-9a-f]+$", summary, re.M), why  # clean: no "+ changes"
    assert_out_fits(out)


def start_dry(out: Path, steps: str) -> subprocess.Popen:
    return subprocess.Popen(["bash", str(ROOT / "scripts" / "gpu-check")], env=dry_env(out, steps),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def wait_for_summary(out: Path, text: str, proc: subprocess.Popen, limit_s: float = 120.0) -> str:
    """The summary once it holds ``text`` (bounded: fails rather than hangs)."""
    end = time.monotonic() + limit_s
    summary = ""
    while time.monotonic() < end and proc.poll() is None:
        path = out / "summary.txt"
        summary = path.read_text() if path.exists() else ""
        if text in summary:
            return summary
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    pytest.fail(f"no {text!r} in the summary (exit {proc.returncode}):\n{summary}")


@pytest.mark.timeout(200)
def test_a_run_killed_outright_leaves_the_summary_so_far(tmp_path):
    # The device tool stops a call at its limit: even a SIGKILL of the whole run (no trap runs)
    # leaves the verdicts of the finished steps and the step it was in.
    out = tmp_path / "out"
    proc = start_dry(out, "layout,latency")
    wait_for_summary(out, "RUNNING latency", proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    summary = (out / "summary.txt").read_text()
    assert re.search(r"^PASS +layout ", summary, re.M), summary
    assert re.search(r"^RUNNING latency \(limit \d+s, started at \d+s\)", summary, re.M), summary
    assert re.search(r"^image: ", summary, re.M), summary


@pytest.mark.timeout(200)
def test_a_terminated_run_says_so_and_stops_its_step(tmp_path):
    # SIGTERM to the script alone, mid-step: it stops the step (which runs in the background so
    # that the trap is not held until the step ends) and writes why it stopped.
    out = tmp_path / "out"
    proc = start_dry(out, "layout,latency")
    wait_for_summary(out, "RUNNING latency", proc)
    os.kill(proc.pid, signal.SIGTERM)
    try:
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert rc == 143
    summary = (out / "summary.txt").read_text()
    assert re.search(r"^PASS +layout ", summary, re.M), summary
    assert "INTERRUPTED by SIGTERM during step latency" in summary, summary
    assert_out_fits(out)


@pytest.mark.parametrize("setting, value, said", [
    ("CUAGENT_GPU_CHECK_STEPS", "layout,cupti", "unknown step 'cupti'"),
    ("CUAGENT_GPU_CHECK_LIMITS", "cuptihw=200", "'cuptihw=200': expected NAME:SECONDS"),
    ("CUAGENT_GPU_CHECK_LIMITS", "feed:0", "'feed:0': expected NAME:SECONDS"),
    ("CUAGENT_GPU_CHECK_BUDGET_S", "5000", "CUAGENT_GPU_CHECK_BUDGET_S='5000': expected whole seconds from 60 to 590"),
])
def test_a_bad_setting_stops_the_run_with_one_line(tmp_path, setting, value, said):
    # A typo must not spend a device call: a step name matching none ran nothing and passed.
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu-check")], env=dry_env(out, "layout", **{setting: value}),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and said in proc.stderr, proc.stderr
    assert not out.exists()


def test_chosen_steps_without_the_build_are_refused_where_the_run_builds(tmp_path):
    # Each run installs the package into a folder of its own: a rerun of one step on the device
    # machine without the build would find no package.
    env = dict(dry_env(tmp_path / "out", "cuptihw"), CUAGENT_GPU_CHECK_BUILD="1")
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu-check")], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "add build" in proc.stderr, proc.stderr
