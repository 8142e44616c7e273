"""Shared fixtures: the fake libnvidia-ml built per test session."""
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
