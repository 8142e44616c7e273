"""The simulated cluster: nodes of H100s, what each GPU has given out, and MIG's rules.

The H100 is the mock driver's ``h100-sxm`` preset (132 SMs in the GPC/TPC layout measured on
a real H100, 80 GB), read through the wire codec as a client sees it. MIG profiles are the
H100 80GB's (``nvidia-smi mig -lgip``): SMs, memory slices (of 8) and the slots each may
start at (a GPU instance may not overlap another's memory slices; NVML's placement rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import numpy as np

from .. import protocol


@dataclass(frozen=True)
class MigProfile:
    name: str
    sms: int
    slices: int  # memory slices of 8
    starts: tuple[int, ...]  # memory slices it may start at

    @property
    def memory_share(self) -> float:
        return self.slices / 8.0

    def mask(self, start: int) -> int:
        return ((1 << self.slices) - 1) << start


#: H100 80GB GPU-instance profiles, smallest first.
MIG_PROFILES: tuple[MigProfile, ...] = (
    MigProfile("1g.10gb", 16, 1, (0, 1, 2, 3, 4, 5, 6)),
    MigProfile("1g.20gb", 26, 2, (0, 2, 4, 6)),
    MigProfile("2g.20gb", 32, 2, (0, 2, 4)),
    MigProfile("3g.40gb", 60, 4, (0, 4)),
    MigProfile("4g.40gb", 64, 4, (0,)),
    MigProfile("7g.80gb", 132, 8, (0,)),
)
WHOLE_GPU_PROFILE = MIG_PROFILES[-1]
#: MPS / green-context SM shares are whole multiples of this many SMs.
SHARE_GRANULE = 8


def mig_profile_for(memory_share: float, sms: float) -> MigProfile:
    """The smallest profile (fewest SMs, then fewest slices) with at least ``memory_share`` of
    the GPU's memory and ``sms`` SMs; the whole GPU when none is smaller."""
    for p in MIG_PROFILES:
        if p.memory_share + 1e-9 >= memory_share and p.sms + 1e-9 >= sms:
            return p
    return WHOLE_GPU_PROFILE


def mig_start(mask: int, profile: MigProfile) -> Optional[int]:
    """The lowest slot ``profile`` can start at on a GPU whose used memory slices are ``mask``."""
    for s in profile.starts:
        if not mask & profile.mask(s):
            return s
    return None


def sm_share(sms: float, units: int) -> int:
    """An MPS/green-context share covering ``sms``: whole granules, at least one, at most the GPU."""
    granules = max(1, int(np.ceil(sms / SHARE_GRANULE - 1e-9)))
    return min(units, granules * SHARE_GRANULE)


@lru_cache(maxsize=1)
def h100_topology() -> protocol.Device:
    """The H100 preset's topology as a client decodes it from a ``topo`` message."""
    from .. import _core
    from ..mock import MockDevice
    from ..topology import DeviceTopology

    driver = _core.make_mock_driver([MockDevice("h100-sxm", "idle").to_spec()])
    topo = DeviceTopology.from_description(driver.device(0))
    body = protocol.unpack(protocol.pack(protocol.encode_topo_body(
        [topo], protocol.AgentInfo("sim", "sim", 0, 0))))
    return protocol.decode_topo_body(body).devices[0]


class Cluster:
    """``gpus`` H100s in nodes of ``gpus_per_node`` (the last node holds the remainder), and
    per GPU what has been given out: GPU share (``milli``, of 1000), SM shares (MPS/green
    contexts), MIG memory slices in use (a bit mask) and pods placed."""

    def __init__(self, gpus: int, gpus_per_node: int = 8, units: int = 132, memory_bytes: int = 80 * 10**9) -> None:
        if gpus < 1:
            raise ValueError(f"a cluster needs at least 1 GPU, got {gpus}")
        if gpus_per_node < 1:
            raise ValueError(f"gpus per node must be >= 1, got {gpus_per_node}")
        self.gpus = gpus
        self.gpus_per_node = gpus_per_node
        self.units = units
        self.memory_bytes = memory_bytes
        self.node_of = np.arange(gpus) // gpus_per_node
        self.nodes = int(self.node_of[-1]) + 1
        self.node_size = np.bincount(self.node_of, minlength=self.nodes)
        self.milli = np.zeros(gpus, np.int64)
        self.sm = np.zeros(gpus, np.int64)
        self.mig = np.zeros(gpus, np.int64)
        self.pods = np.zeros(gpus, np.int64)
        self.empty_per_node = self.node_size.copy()

    def node_name(self, node: int) -> str:
        return f"node-{node:04d}"

    def device_name(self, gpu: int) -> str:
        return f"GPU-sim-{gpu:05d}"

    def occupy(self, gpu: int, milli: int, sm: int = 0, mig_mask: int = 0) -> None:
        if self.pods[gpu] == 0:
            self.empty_per_node[self.node_of[gpu]] -= 1
        self.pods[gpu] += 1
        self.milli[gpu] += milli
        self.sm[gpu] += sm
        self.mig[gpu] |= mig_mask
        # Conservation: nothing is given out beyond the GPU.
        assert self.milli[gpu] <= 1000 and self.sm[gpu] <= self.units, (gpu, self.milli[gpu], self.sm[gpu])

    def vacate(self, gpu: int, milli: int, sm: int = 0, mig_mask: int = 0) -> None:
        self.pods[gpu] -= 1
        self.milli[gpu] -= milli
        self.sm[gpu] -= sm
        assert self.mig[gpu] & mig_mask == mig_mask
        self.mig[gpu] &= ~mig_mask
        assert self.pods[gpu] >= 0 and self.milli[gpu] >= 0 and self.sm[gpu] >= 0
        if self.pods[gpu] == 0:
            self.empty_per_node[self.node_of[gpu]] += 1

    def empty(self) -> np.ndarray:
        return self.pods == 0

    def whole_gpus(self, count: int) -> Optional[list[int]]:
        """``count`` empty GPUs on one node: the node with the fewest empty GPUs that has
        enough (best fit: keeps whole nodes free for whole-node pods), its lowest GPUs."""
        ok = np.flatnonzero(self.empty_per_node >= count)
        if not ok.size:
            return None
        node = int(ok[np.argmin(self.empty_per_node[ok])])
        first = node * self.gpus_per_node
        gpus = first + np.flatnonzero(self.pods[first:first + int(self.node_size[node])] == 0)[:count]
        return [int(g) for g in gpus]
