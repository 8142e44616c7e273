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
every partition's xcp_stats.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .build import build_fake_library
from .rocm import LAYOUT_V18, MI210, MI300X, FakeGpu, GpuModel, place_gpu, write_kfd_tree

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


class FakeAmdSmi:
    """ctypes handle on the fake's fake_* control functions."""

    def __init__(self, library: Path):
        self.path = Path(library)
        lib = ctypes.CDLL(str(self.path))
        u32, u64, dbl, s, i = ctypes.c_uint, ctypes.c_uint64, ctypes.c_double, ctypes.c_char_p, ctypes.c_int
        signatures = {
            "fake_reset": ([], None),
            "fake_add_gpu": ([s, u32, u32, u32, u32, u64, u32, i, i], i),
            "fake_processor": ([u32, u32], i),
            "fake_set_library_layout": ([u32], i),
            "fake_set_version": ([u32, u32, u32], None),
            "fake_set_init_status": ([i], None),
            "fake_set_metrics": ([u32, u32, u32, u32, u64], i),
            "fake_set_xcd_busy": ([u32, u32, dbl], i),
            "fake_tick": ([u32, u64], i),
            "fake_set_gpu_value": ([u32, s, dbl], i),
            "fake_set_value": ([u32, s, dbl], i),
            "fake_set_partition_modes": ([u32, s, s], i),
            "fake_set_unsupported": ([u32, s], i),
            "fake_set_lost": ([u32, i], i),
            "fake_add_process": ([u32, u32, s, u64, u64, dbl], i),
            "fake_clear_processes": ([u32], i),
            "fake_call_count": ([], u64),
            "fake_calls_of": ([s], u64),
            "fake_initialized": ([], i),
            "fake_init_calls": ([], u64),
            "fake_shutdown_calls": ([], u64),
        }
        for name, (args, result) in signatures.items():
            fn = getattr(lib, name)
            fn.argtypes = args
            fn.restype = result
        self.lib = lib

    def _check(self, rc: int, what: str) -> None:
        if rc != 0:
            raise ValueError(f"fake amdsmi rejected {what} (rc={rc})")

    def reset(self) -> None:
        self.lib.fake_reset()

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

    def set_library_layout(self, size: int) -> None:
        self._check(self.lib.fake_set_library_layout(size), f"layout {size}")

    def set_version(self, major: int, minor: int = 0, release: int = 0) -> None:
        self.lib.fake_set_version(major, minor, release)

    def set_init_status(self, status: int) -> None:
        self.lib.fake_set_init_status(status)

    def set_metrics(self, gpu: int, revision: int, num_partition: int, xcc_per_partition: int,
                    fw_period_ns: int) -> None:
        self._check(self.lib.fake_set_metrics(gpu, revision, num_partition, xcc_per_partition, fw_period_ns),
                    f"metrics of GPU {gpu}")

    def set_gpu_value(self, gpu: int, key: str, value: float) -> None:
        self._check(self.lib.fake_set_gpu_value(gpu, key.encode(), value), f"GPU value {key!r}")

    def set_value(self, processor: int, key: str, value: float) -> None:
        self._check(self.lib.fake_set_value(processor, key.encode(), value), f"value {key!r}")

    def set_partition_modes(self, processor: int, compute: str, memory: str) -> None:
        self._check(self.lib.fake_set_partition_modes(processor, compute.encode(), memory.encode()), "modes")

    def set_unsupported(self, processor: int, function: str) -> None:
        self._check(self.lib.fake_set_unsupported(processor, function.encode()), f"unsupported {function}")

    def set_lost(self, processor: int, status: int) -> None:
        self._check(self.lib.fake_set_lost(processor, status), f"lost processor {processor}")

    def add_process(self, processor: int, pid: int, name: str, vram: int, gfx_ns: int = 0, busy: float = 0.0) -> None:
        """A process (or new figures for it): its GFX time so far, then `busy` of the engine."""
        self._check(self.lib.fake_add_process(processor, pid, name.encode(), vram, gfx_ns, busy), f"process {pid}")

    def clear_processes(self, processor: int) -> None:
        self._check(self.lib.fake_clear_processes(processor), "clear processes")

    def call_count(self) -> int:
        return int(self.lib.fake_call_count())

    def calls_of(self, function: str) -> int:
        return int(self.lib.fake_calls_of(function.encode()))

    def initialized(self) -> int:
        return int(self.lib.fake_initialized())

    def init_calls(self) -> int:
        return int(self.lib.fake_init_calls())

    def shutdown_calls(self) -> int:
        return int(self.lib.fake_shutdown_calls())


@dataclass
class FakeAmdSmiGpu(FakeGpu):
    """One physical GPU of the fake AMD SMI host: a socket of the fake library."""
    index: int = 0                                        # the fake's GPU (socket) index
    processors: list[int] = field(default_factory=list)   # processor indices, by partition


class FakeAmdSmiHost:
    """A whole fake host: sockets and processors in the fake libamd_smi and a KFD tree on disk."""

    def __init__(self, library: Path, kfd_root: Path, layout: int = LAYOUT_V18):
        self.fake = FakeAmdSmi(library)
        self.fake.reset()
        self.fake.set_library_layout(layout)
        self.library = Path(library)
        self.kfd_root = Path(kfd_root)
        self.gpus: list[FakeAmdSmiGpu] = []
        write_kfd_tree(self.kfd_root, self.gpus)

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
        self.gpus.append(gpu)
        write_kfd_tree(self.kfd_root, self.gpus)
        return gpu

    def add_mi300x(self, **kwargs) -> FakeAmdSmiGpu:
        return self.add_gpu(MI300X, **kwargs)

    def add_mi210(self, **kwargs) -> FakeAmdSmiGpu:
        kwargs.setdefault("metrics_revision", 3)
        return self.add_gpu(MI210, **kwargs)

    def set_xcd_busy(self, gpu: FakeAmdSmiGpu, percents: Sequence[float]) -> None:
        if len(percents) != gpu.model.xcds:
            raise ValueError(f"{gpu.model.name} has {gpu.model.xcds} XCDs, got {len(percents)} values")
        for xcd, pct in enumerate(percents):
            self.fake.lib.fake_set_xcd_busy(gpu.index, xcd, pct)

    def tick(self, gpu: FakeAmdSmiGpu, n: int = 1) -> None:
        self.fake.lib.fake_tick(gpu.index, n)

    def set_lost(self, gpu: FakeAmdSmiGpu, status: int = AMDSMI_STATUS_FILE_ERROR) -> None:
        for proc in gpu.processors:
            self.fake.set_lost(proc, status)

    def set_back(self, gpu: FakeAmdSmiGpu) -> None:
        for proc in gpu.processors:
            self.fake.set_lost(proc, 0)

    def set_partition_modes(self, gpu: FakeAmdSmiGpu, compute: str, memory: str) -> None:
        """What the library says from now on (the KFD tree is left as it is)."""
        for proc in gpu.processors:
            self.fake.set_partition_modes(proc, compute, memory)
