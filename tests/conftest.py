"""Shared fixtures: the fake libnvidia-ml built per test session; CURVE keys."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nvml_fake  # noqa: E402


@pytest.fixture(scope="session")
def fake_nvml_builds(tmp_path_factory):
    """variant name -> path of the compiled fake libnvidia-ml.so.1."""
    if nvml_fake.compiler() is None:
        pytest.skip("no C compiler (cc) to build the fake libnvidia-ml")
    out = tmp_path_factory.mktemp("fake-nvml")
    return {name: nvml_fake.build(name, out) for name in nvml_fake.VARIANTS}


@pytest.fixture
def fake_nvml(fake_nvml_builds, tmp_path):
    """The full fake (GPM, MIG, processes) and a scratch dir for its scripts."""
    return nvml_fake.FakeNvml(fake_nvml_builds["full"], tmp_path)


@pytest.fixture
def fake_nvml_variant(fake_nvml_builds, tmp_path):
    """Factory: fake_nvml_variant("no_gpm") -> FakeNvml for that build."""
    return lambda name: nvml_fake.FakeNvml(fake_nvml_builds[name], tmp_path)


@pytest.fixture
def trace_table(tmp_path):
    return nvml_fake.trace_table(tmp_path / "h100-trace.tsv")


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """CURVE key pairs "server", "good" and "bad" in one folder, and its allow/ folder admitting
    "good" only (test_curve.py, test_curve_refusals.py)."""
    from cuagent.curve import create_keys

    d = tmp_path_factory.mktemp("keys")
    for name in ("server", "good", "bad"):
        create_keys(str(d), name)
    allow = d / "allow"
    allow.mkdir()
    (allow / "good.key").write_bytes((d / "good.key").read_bytes())
    return d
