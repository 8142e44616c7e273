"""pytest fixtures for the fake AMD hosts, both libraries; import the ones a test module uses:

    from fakes.amd_fixtures import rocm_library, rocm_host  # noqa: F401

`amd` runs a test once per AMD backend (rocm_smi, amdsmi) and gives its description
(amd_backends.AmdBackend); `amd_library` and `amd_host` are that backend's fake library and an
empty fake host on it (a module using them imports rocm_library and amdsmi_library too).
`amd_agent` starts `cuagent run` on a fake host of a backend (amd_agent.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from feed_support import CheckedAgents, CheckedFeed, Proc, start_real_agent

from .amd_backends import BACKENDS, AmdBackend
from .amdsmi import FakeAmdSmiHost, build_fake_amdsmi
from .rocm import FakeAmdHost, build_fake_rocm_smi


@pytest.fixture(scope="session")
def rocm_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake librocm_smi64.so, built once per test session."""
    return build_fake_rocm_smi(tmp_path_factory.mktemp("rocm-fake"))


@pytest.fixture(scope="session")
def rocm_library_without_socket_power(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake built without rsmi_dev_current_socket_power_get, like older releases."""
    return build_fake_rocm_smi(tmp_path_factory.mktemp("rocm-fake-old"), omit=["SOCKET_POWER"])


@pytest.fixture(scope="session")
def amdsmi_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake libamd_smi.so, built once per test session."""
    return build_fake_amdsmi(tmp_path_factory.mktemp("amdsmi-fake"))


@pytest.fixture(scope="session")
def amdsmi_library_without_activity(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake built without amdsmi_get_gpu_activity (a release that lacks the symbol)."""
    return build_fake_amdsmi(tmp_path_factory.mktemp("amdsmi-fake-noact"), omit=["ACTIVITY"])


@pytest.fixture
def rocm_host(rocm_library: Path, tmp_path: Path) -> FakeAmdHost:
    """An empty fake ROCm SMI host (its state reset); add GPUs with add_mi300x / add_mi210."""
    return FakeAmdHost(rocm_library, tmp_path / "kfd")


@pytest.fixture
def amdsmi_host(amdsmi_library: Path, tmp_path: Path) -> FakeAmdSmiHost:
    """An empty fake AMD SMI host (its state reset); add GPUs with add_mi300x / add_mi210."""
    return FakeAmdSmiHost(amdsmi_library, tmp_path / "kfd")


@pytest.fixture(params=sorted(BACKENDS))
def amd(request: pytest.FixtureRequest) -> AmdBackend:
    """Each AMD backend in turn."""
    return BACKENDS[request.param]


#: The session fixture that builds each backend's fake library.
LIBRARY_FIXTURES = {"rocm_smi": "rocm_library", "amdsmi": "amdsmi_library"}


@pytest.fixture
def amd_library(amd: AmdBackend, request: pytest.FixtureRequest) -> Path:
    """The backend's fake library (built once per session)."""
    return Path(request.getfixturevalue(LIBRARY_FIXTURES[amd.name]))


@pytest.fixture
def amd_host(amd: AmdBackend, amd_library: Path, tmp_path: Path) -> Any:
    """An empty fake host of the backend's library (its state reset)."""
    return amd.host(amd_library, tmp_path / "kfd")


#: The agent's node name (the feed's topics carry it).
AGENT_NODE = "amd-s"
AGENT_LAUNCHER = Path(__file__).with_name("amd_agent.py")


@pytest.fixture
def amd_agent(tmp_path: Path) -> Iterator[Callable[..., tuple[Proc, CheckedFeed]]]:
    """start(backend, library, compute="SPX", gpus=1, flags=()): `cuagent run` on `gpus`
    MI300X of the backend's fake host, every message it publishes checked (CheckedFeed);
    each agent must stop cleanly when the test ends."""
    agents = CheckedAgents()

    def start(backend: AmdBackend, library: Path, compute: str = "SPX", gpus: int = 1,
              flags: tuple[str, ...] = ()) -> tuple[Proc, CheckedFeed]:
        launcher = [str(AGENT_LAUNCHER), backend.name, str(library), str(tmp_path), compute, str(gpus)]
        return agents.follow(start_real_agent(tmp_path, AGENT_NODE, [], launcher=launcher, extra=flags))

    yield start
    agents.close()
