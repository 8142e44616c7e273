"""A fake AMD host for the amdsmi driver: a fake libamd_smi.so plus the same KFD sysfs trees
the ROCm SMI fake host writes (tests/fakes/rocm.py).

Reusable by any test (driver, engine, feed) and by bench/amdsmi_read.py:

    lib = build_fake_amdsmi(tmp_dir)                  # cc -shared -fPIC
    host = FakeAmdSmiHost(lib, tmp_dir / "kfd")       # resets the fake's state
    gpu = host.add_mi300x(compute="CPX", memory="NPS4")
    host.set_xcd_busy(gpu, [90, 0, 0, 0, 50, 50, 50, 50])
    make_driver(None, 0, library=str(lib), kfd_root=str(host.kfd_root))

The fake keeps its state per process (the driver dlopens the same path as ctypes here, so
both see one copy). A GPU is one socket with one processor per compute partition, as AMD SMI
enumerates it; the first partition's processor answers amdsmi_get_gpu_metrics_info with
every partition's xcp_stats. What it shares with the ROCm SMI fake host is in amd_host.py and
kfd_tree.py.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .amd_host import LAYOUT_V18, FakeAmdHostBase, FakeAmdLibrary
from .build import build_fake_library
from .kfd_tree import GpuModel, KfdGpu, place_gpu

SOURCE = Path(__file__).with_name("amdsmi_fake.c")

# amdsmi_status_t values (amdsmi.h)
AMDSMI_STATUS_SUCCESS = 0
AMDSMI_STATUS_INVAL = 1
AMDSMI_STATUS_NOT_SUPPORTED = 2
AMDSMI_STATUS_FILE_ERROR = 14
AMDSMI_STATUS_INIT_ERROR = 18
AMDSMI_STATUS_BUSY = 30
AMDSMI_STATUS_NOT_FOUND = 31


def build_fake_amdsmi(out_dir: Path, omit: Sequence[str] = ()) -> Path:
    """Compile the fake into out_dir/libamd_smi.so; `omit` names FAKE_OMIT_* guards
    (ACTIVITY: no amdsmi_get_gpu_activity; INIT: no amdsmi_init, not an AMD SMI library)."""
    return build_fake_library(SOURCE, out_dir / "libamd_smi.so", omit)


class FakeAmdSmi(FakeAmdLibrary):
    """ctypes handle on the fake's fake_* control functions; a device is a processor index, a
    table index a GPU (socket) index."""

    def __init__(self, library: Path):
        u32, u64, dbl, s, i = ctypes.c_uint, ctypes.c_uint64, ctypes.c_double, ctypes.c_char_p, ctypes.c_int
        super().__init__(library, "amdsmi", {
            "fake_add_gpu": ([s, u32, u32, u32, u32, u64, u32, i, i], i),
            "fake_processor": ([u32, u32], i),
            "fake_set_version": ([u32, u32, u32], None),
            "fake_set_gpu_value": ([u32, s, dbl], i),
            "fake_add_process": ([u32, u32, s, u64, u64, dbl], i),
            "fake_clear_processes": ([u32], i),
            "fake_init_calls": ([], u64),
            "fake_shutdown_calls": ([], u64),
        })

    def add_gpu(self, name: str, device_id: int, domain: int, bus: int, partitions: int, vram_per_partition: int,
                first_kfd_node: int, function_bits: bool, reversed_order: bool) -> int:
        index = self.lib.fake_add_gpu(name.encode(), device_id, domain, bus, partitions, vram_per_partition,
                                      first_kfd_node, int(function_bits), int(reversed_order))
        if index < 0:
            raise ValueError("fake amdsmi is full")
        return index

    def processor(self, gpu: int, partition: int) -> int:
        index = self.lib.fake_processor(gpu, partition)
        if index < 0:
            raise ValueError(f"fake amdsmi: no partition {partition} on GPU {gpu}")
        return index

    def set_version(self, major: int, minor: int = 0, release: int = 0) -> None:
        self.lib.fake_set_version(major, minor, release)

    def set_gpu_value(self, gpu: int, key: str, value: float) -> None:
        self._check(self.lib.fake_set_gpu_value(gpu, key.encode(), value), f"GPU value {key!r}")

    def add_process(self, processor: int, pid: int, name: str, vram: int, gfx_ns: int = 0, busy: float = 0.0) -> None:
        """A process (or new figures for it): its GFX time so far, then `busy` of the engine."""
        self._check(self.lib.fake_add_process(processor, pid, name.encode(), vram, gfx_ns, busy), f"process {pid}")

    def clear_processes(self, processor: int) -> None:
        self._check(self.lib.fake_clear_processes(processor), "clear processes")

    def init_calls(self) -> int:
        return int(self.lib.fake_init_calls())

    def shutdown_calls(self) -> int:
        return int(self.lib.fake_shutdown_calls())


@dataclass
class FakeAmdSmiGpu(KfdGpu):
    """One physical GPU of the fake AMD SMI host: a socket of the fake library."""
    index: int = 0                                        # the fake's GPU (socket) index
    processors: list[int] = field(default_factory=list)   # processor indices, by partition


class FakeAmdSmiHost(FakeAmdHostBase[FakeAmdSmi, FakeAmdSmiGpu]):
    """A whole fake host: sockets and processors in the fake libamd_smi and a KFD tree on disk."""

    LOST_STATUS = AMDSMI_STATUS_FILE_ERROR

    def __init__(self, library: Path, kfd_root: Path, layout: int = LAYOUT_V18):
        super().__init__(FakeAmdSmi(library), kfd_root, layout)

    def add_gpu(self, model: GpuModel, compute: str = "SPX", memory: str = "NPS1", metrics_revision: int = 8,
                fw_period_ns: int = 0, kernel_partition_bits: str = "31:28",
                reversed_order: bool = False) -> FakeAmdSmiGpu:
        """Add a GPU. kernel_partition_bits="function": a kernel from before 2024, whose
        partitions differ in their PCI function (the library then shows them as sockets of
        their own). reversed_order: the library enumerates the partitions last to first."""
        gpu = place_gpu(FakeAmdSmiGpu, model, compute, memory, kernel_partition_bits, len(self.gpus))
        partitions = gpu.partitions
        first_node = 1 + sum(g.partitions for g in self.gpus)
        gpu.index = self.fake.add_gpu(model.name, model.device_id, gpu.domain, gpu.bus, partitions,
                                      gpu.vram_per_partition, first_node, kernel_partition_bits == "function",
                                      reversed_order)
        gpu.processors = [self.fake.processor(gpu.index, p) for p in range(partitions)]
        for proc in gpu.processors:
            self.fake.set_partition_modes(proc, compute, memory)
        self.fake.set_metrics(gpu.index, metrics_revision, partitions, model.xcds // partitions, fw_period_ns)
        return self._added(gpu)

    def devices(self, gpu: FakeAmdSmiGpu) -> list[int]:
        return gpu.processors

    def table_index(self, gpu: FakeAmdSmiGpu) -> int:
        return gpu.index

    def set_gpu_value(self, gpu: FakeAmdSmiGpu, key: str, value: float) -> None:
        self.fake.set_gpu_value(gpu.index, key, value)
