"""pytest fixtures for the fake AMD host; import them into a test module:

    from fakes.rocm_fixtures import rocm_library, amd_host  # noqa: F401
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .rocm import FakeAmdHost, build_fake_rocm_smi


@pytest.fixture(scope="session")
def rocm_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake librocm_smi64.so, built once per test session."""
    return build_fake_rocm_smi(tmp_path_factory.mktemp("rocm-fake"))


@pytest.fixture(scope="session")
def rocm_library_without_socket_power(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake built without rsmi_dev_current_socket_power_get, like older releases."""
    return build_fake_rocm_smi(tmp_path_factory.mktemp("rocm-fake-old"), omit=["SOCKET_POWER"])


@pytest.fixture
def amd_host(rocm_library: Path, tmp_path: Path) -> FakeAmdHost:
    """An empty fake host (its state reset); add GPUs with add_mi300x / add_mi210."""
    return FakeAmdHost(rocm_library, tmp_path / "kfd")
