"""A fake AMD host for the rocm_smi driver: a fake librocm_smi64.so plus KFD sysfs trees.

Reusable by any test (driver, engine, feed) and by bench/rocm_read.py:

    lib = build_fake_rocm_smi(tmp_dir)              # cc -shared -fPIC
    host = FakeAmdHost(lib, tmp_dir / "kfd")         # resets the fake's state
    gpu = host.add_mi300x(compute="CPX", memory="NPS4")
    host.set_xcd_busy(gpu, [90, 0, 0, 0, 50, 50, 50, 50])
    make_driver(None, 0, library=str(lib), kfd_root=str(host.kfd_root))

The fake library keeps its state per process (the driver dlopens the same path
as ctypes here, so both see one copy). A device appears the way ROCm >= 6.3
enumerates it: in SPX one rsmi device; in DPX/QPX/CPX one rsmi device per
compute partition, each with the partition id in bits 31:28 of its PCI id, and
one KFD topology node per partition whose location_id carries the same bits.
Only the first partition's device answers rsmi_dev_gpu_metrics_info_get; its
table holds every partition's xcp_stats. What the AMD SMI fake host shares with
this one is in amd_host.py and kfd_tree.py.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .amd_host import LAYOUT_V18, FakeAmdHostBase, FakeAmdLibrary
from .build import build_fake_library
from .kfd_tree import GpuModel, KfdGpu, place_gpu

SOURCE = Path(__file__).with_name("rocm_smi_fake.c")

# rsmi_status_t values (rocm_smi.h)
RSMI_STATUS_SUCCESS = 0
RSMI_STATUS_INVALID_ARGS = 1
RSMI_STATUS_NOT_SUPPORTED = 2
RSMI_STATUS_FILE_ERROR = 3
RSMI_STATUS_INIT_ERROR = 8
RSMI_STATUS_BUSY = 16


def build_fake_rocm_smi(out_dir: Path, omit: Sequence[str] = ()) -> Path:
    """Compile the fake into out_dir/librocm_smi64.so; `omit` names FAKE_OMIT_* guards."""
    return build_fake_library(SOURCE, out_dir / "librocm_smi64.so", omit)


class FakeRocmSmi(FakeAmdLibrary):
    """ctypes handle on the fake's fake_* control functions; a device is an rsmi device index."""

    def __init__(self, library: Path):
        super().__init__(library, "rocm_smi", {
            "fake_add_device": ([ctypes.c_char_p, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_int32, ctypes.c_uint64],
                                ctypes.c_int),
        })

    def add_device(self, name: str, unique_id: int, bdfid: int, numa: int, vram_total: int) -> int:
        index = self.lib.fake_add_device(name.encode(), unique_id, bdfid, numa, vram_total)
        if index < 0:
            raise ValueError("fake rocm_smi is full")
        return index

    def set_lost(self, device: int, status: int = RSMI_STATUS_FILE_ERROR) -> None:
        super().set_lost(device, status)


@dataclass
class FakeGpu(KfdGpu):
    """One physical GPU of the fake ROCm SMI host: its rsmi devices, one per compute partition."""
    rsmi_devices: list[int] = field(default_factory=list)

    @property
    def metrics_device(self) -> int:
        """The rsmi device that answers the GPU's gpu_metrics table (and its sensors)."""
        return self.rsmi_devices[0]


class FakeAmdHost(FakeAmdHostBase[FakeRocmSmi, FakeGpu]):
    """A whole fake host: rsmi devices in the fake library and a KFD tree on disk."""

    LOST_STATUS = RSMI_STATUS_FILE_ERROR

    def __init__(self, library: Path, kfd_root: Path, layout: int = LAYOUT_V18):
        super().__init__(FakeRocmSmi(library), kfd_root, layout)

    def add_gpu(self, model: GpuModel, compute: str = "SPX", memory: str = "NPS1",
                metrics_revision: int = 8, fw_period_ns: int = 0, numa: int = 0,
                enumerate_partitions: bool = True, kernel_partition_bits: str = "31:28") -> FakeGpu:
        """Add a GPU. enumerate_partitions=False: a library older than ROCm 6.3, which
        shows a partitioned GPU as one device. kernel_partition_bits="function": a
        kernel from before 2024, which ORs the KFD node id into location_id's low bits."""
        gpu = place_gpu(FakeGpu, model, compute, memory, kernel_partition_bits, len(self.gpus))
        partitions = gpu.partitions
        for p in range(partitions if enumerate_partitions else 1):
            bdfid = (gpu.domain << 32) | ((p << 28) if enumerate_partitions and partitions > 1 else 0) \
                | (gpu.bus << 8)
            dev = self.fake.add_device(model.name, gpu.unique_id, bdfid, numa, gpu.vram_per_partition)
            self.fake.set_partition_modes(dev, compute, memory)
            gpu.rsmi_devices.append(dev)
        self.fake.set_metrics(gpu.metrics_device, metrics_revision, partitions, model.xcds // partitions,
                              fw_period_ns)
        for dev in gpu.rsmi_devices[1:]:
            self.fake.set_metrics(dev, 0, 0, 0, 0)  # secondary partitions have no table
        return self._added(gpu)

    def devices(self, gpu: FakeGpu) -> list[int]:
        return gpu.rsmi_devices

    def table_index(self, gpu: FakeGpu) -> int:
        return gpu.metrics_device

    def set_gpu_value(self, gpu: FakeGpu, key: str, value: float) -> None:
        self.fake.set_value(gpu.metrics_device, key, value)
