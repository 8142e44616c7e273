"""pytest fixtures for the fake AMD SMI host; import them into a test module:

    from fakes.amdsmi_fixtures import amdsmi_library, amdsmi_host  # noqa: F401
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .amdsmi import FakeAmdSmiHost, build_fake_amdsmi


@pytest.fixture(scope="session")
def amdsmi_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake libamd_smi.so, built once per test session."""
    return build_fake_amdsmi(tmp_path_factory.mktemp("amdsmi-fake"))


@pytest.fixture(scope="session")
def amdsmi_library_without_activity(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake built without amdsmi_get_gpu_activity (a release that lacks the symbol)."""
    return build_fake_amdsmi(tmp_path_factory.mktemp("amdsmi-fake-noact"), omit=["ACTIVITY"])


@pytest.fixture
def amdsmi_host(amdsmi_library: Path, tmp_path: Path) -> FakeAmdSmiHost:
    """An empty fake host (its state reset); add GPUs with add_mi300x / add_mi210."""
    return FakeAmdSmiHost(amdsmi_library, tmp_path / "kfd")
