"""scripts/gpu-check's dry run of its CUPTI hardware step (cuptihw): the step's whole logic
against the fake libnvidia-ml and the fake libcupti, its figures in the summary and in
cupti-hw.json; and of its latency step. The real run needs an H100 (the device machine);
this keeps the steps from rotting between lent GPUs.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cupti_fake

pytest.importorskip("cuagent._core")
pytest.importorskip("zmq")
if cupti_fake.compiler() is None or shutil.which("bash") is None or shutil.which("timeout") is None:
    pytest.skip("needs a C compiler (the fakes), bash and timeout", allow_module_level=True)

ROOT = Path(__file__).resolve().parent.parent


def dry_run(out: Path, step: str, timeout: float) -> str:
    """gpu-check's dry run of one step into ``out``: its summary, once the run passed."""
    env = dict(os.environ, OUT=str(out), PYTHON=sys.executable, CUAGENT_GPU_CHECK_DRY="1",
               CUAGENT_GPU_CHECK_BUILD="0", CUAGENT_GPU_CHECK_STEPS=step)
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu-check")], env=env, capture_output=True, text=True,
                          timeout=timeout)
    summary = (out / "summary.txt").read_text()
    log = (out / "gpu-check.log").read_text() if (out / "gpu-check.log").exists() else ""
    assert proc.returncode == 0, summary + "\n" + log[-4000:]
    assert re.search(rf"^PASS +{step} ", summary, re.M), summary
    return summary


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
    # The cupti step's files stay within the device tool's eight.
    assert len(list(out.iterdir())) <= 8


@pytest.mark.timeout(240)
def test_dry_run_of_the_latency_step_writes_its_figures(tmp_path):
    # Step 7 runs bench/feed_latency.py (mock driver, no GPU call) and puts its p50/p99 and the
    # libzmq floor into the summary: on the device machine's idle cores, issue 14's latency
    # target is measured where this VM's wake-ups do not dominate it.
    out = tmp_path / "out"
    summary = dry_run(out, "latency", 200)
    for what in ("decoded", "header only"):
        for q in ("p50", "p99"):
            assert re.search(rf"latency: {what}: {q} +cuagent +[\d.]+ ms +fixed-timer baseline +[\d.]+ ms", summary), summary
    assert re.search(r"latency: floor: one libzmq ipc hop.*p50 [\d.]+ ms, p99 [\d.]+ ms", summary), summary
    assert "## bench/feed_latency.py" in (out / "bench.txt").read_text()
