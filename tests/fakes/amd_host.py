"""What the two fake AMD hosts share (rocm.py: ROCm SMI, amdsmi.py: AMD SMI): the ctypes handle
on the control functions both fake libraries export (fake_amd_library.h), and a host: GPUs in
the fake library plus their KFD tree on disk (kfd_tree.py), scripted through one set of
methods whichever library serves them.

The two libraries show a GPU differently (ROCm SMI: one device per compute partition in a flat
list; AMD SMI: a socket whose processors are its partitions), so each host says which library
devices a GPU has (``devices``) and under which index the fake keeps its gpu_metrics table
(``table_index``); the rest is written here once.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any, Generic, Optional, Sequence, TypeVar

from .kfd_tree import MI210, MI300X, GpuModel, KfdGpu, write_kfd_tree

# Public gpu_metrics struct sizes of the library releases the fakes can emulate (96: a ROCm 5.x
# release, which also has the old rsmi_frequencies_t).
LAYOUT_V13, LAYOUT_V15, LAYOUT_V16, LAYOUT_V17, LAYOUT_V18 = 96, 424, 1832, 2368, 4544

_u32, _u64, _dbl, _str, _int = ctypes.c_uint, ctypes.c_uint64, ctypes.c_double, ctypes.c_char_p, ctypes.c_int

#: The control functions both fakes export, with their ctypes signatures.
COMMON_CONTROLS: dict[str, tuple[list[Any], Any]] = {
    "fake_reset": ([], None),
    "fake_set_library_layout": ([_u32], _int),
    "fake_set_init_status": ([_int], None),
    "fake_set_metrics": ([_u32, _u32, _u32, _u32, _u64], _int),
    "fake_set_xcd_busy": ([_u32, _u32, _dbl], _int),
    "fake_tick": ([_u32, _u64], _int),
    "fake_set_value": ([_u32, _str, _dbl], _int),
    "fake_set_partition_modes": ([_u32, _str, _str], _int),
    "fake_set_unsupported": ([_u32, _str], _int),
    "fake_set_lost": ([_u32, _int], _int),
    "fake_call_count": ([], _u64),
    "fake_calls_of": ([_str], _u64),
    "fake_initialized": ([], _int),
}


class FakeAmdLibrary:
    """ctypes handle on a fake AMD library's fake_* control functions: those both fakes export,
    plus the fake's own (`own`, name -> (argtypes, restype)). A "device" is what the library
    enumerates (a ROCm SMI device, an AMD SMI processor); a "table" index is the GPU whose
    gpu_metrics table the call scripts (a ROCm SMI device, an AMD SMI socket)."""

    def __init__(self, library: Path, name: str, own: dict[str, tuple[list[Any], Any]]):
        self.path = Path(library)
        self.name = name
        lib = ctypes.CDLL(str(self.path))
        for fn_name, (args, result) in {**COMMON_CONTROLS, **own}.items():
            fn = getattr(lib, fn_name)
            fn.argtypes = args
            fn.restype = result
        self.lib = lib

    def _check(self, rc: int, what: str) -> None:
        if rc != 0:
            raise ValueError(f"fake {self.name} rejected {what} (rc={rc})")

    def reset(self) -> None:
        self.lib.fake_reset()

    def set_library_layout(self, size: int) -> None:
        self._check(self.lib.fake_set_library_layout(size), f"layout {size}")

    def set_init_status(self, status: int) -> None:
        self.lib.fake_set_init_status(status)

    def set_metrics(self, table: int, revision: int, num_partition: int, xcc_per_partition: int,
                    fw_period_ns: int) -> None:
        self._check(self.lib.fake_set_metrics(table, revision, num_partition, xcc_per_partition, fw_period_ns),
                    f"metrics of table {table}")

    def set_xcd_busy(self, table: int, xcd: int, percent: float) -> None:
        self._check(self.lib.fake_set_xcd_busy(table, xcd, percent), f"xcd {xcd} of table {table}")

    def tick(self, table: int, n: int = 1) -> None:
        self._check(self.lib.fake_tick(table, n), f"tick of table {table}")

    def set_value(self, device: int, key: str, value: float) -> None:
        self._check(self.lib.fake_set_value(device, key.encode(), value), f"value {key!r}")

    def set_partition_modes(self, device: int, compute: str, memory: str) -> None:
        self._check(self.lib.fake_set_partition_modes(device, compute.encode(), memory.encode()), "modes")

    def set_unsupported(self, device: int, function: str) -> None:
        self._check(self.lib.fake_set_unsupported(device, function.encode()), f"unsupported {function}")

    def set_lost(self, device: int, status: int) -> None:
        self._check(self.lib.fake_set_lost(device, status), f"lost device {device}")

    def call_count(self) -> int:
        return int(self.lib.fake_call_count())

    def calls_of(self, function: str) -> int:
        return int(self.lib.fake_calls_of(function.encode()))

    def initialized(self) -> int:
        return int(self.lib.fake_initialized())


L = TypeVar("L", bound=FakeAmdLibrary)
G = TypeVar("G", bound=KfdGpu)


class FakeAmdHostBase(Generic[L, G]):
    """A whole fake host: GPUs in a fake library (its state reset) and their KFD tree on disk.
    A subclass adds GPUs (``add_gpu``) and says which library devices each has."""

    #: The status a lost GPU's calls answer unless told otherwise (the library's FILE_ERROR).
    LOST_STATUS = 0

    def __init__(self, fake: L, kfd_root: Path, layout: int):
        self.fake = fake
        self.fake.reset()
        self.fake.set_library_layout(layout)
        self.library = fake.path
        self.kfd_root = Path(kfd_root)
        self.gpus: list[G] = []
        write_kfd_tree(self.kfd_root, self.gpus)

    def add_gpu(self, model: GpuModel, **kwargs: Any) -> G:
        raise NotImplementedError

    def _added(self, gpu: G) -> G:
        self.gpus.append(gpu)
        write_kfd_tree(self.kfd_root, self.gpus)
        return gpu

    def add_mi300x(self, **kwargs: Any) -> G:
        return self.add_gpu(MI300X, **kwargs)

    def add_mi210(self, **kwargs: Any) -> G:
        kwargs.setdefault("metrics_revision", 3)
        return self.add_gpu(MI210, **kwargs)

    def devices(self, gpu: G) -> list[int]:
        """The library devices that show `gpu`, in partition order (the first is its primary)."""
        raise NotImplementedError

    def table_index(self, gpu: G) -> int:
        """The index the fake keeps `gpu`'s gpu_metrics table under."""
        raise NotImplementedError

    def set_xcd_busy(self, gpu: G, percents: Sequence[float]) -> None:
        if len(percents) != gpu.model.xcds:
            raise ValueError(f"{gpu.model.name} has {gpu.model.xcds} XCDs, got {len(percents)} values")
        for xcd, pct in enumerate(percents):
            self.fake.set_xcd_busy(self.table_index(gpu), xcd, pct)

    def tick(self, gpu: G, n: int = 1) -> None:
        self.fake.tick(self.table_index(gpu), n)

    def set_gpu_value(self, gpu: G, key: str, value: float) -> None:
        """A GPU-wide value: a sensor (power_w, temp_c, sclk_mhz, ...) or a table value
        (ppt_violation, thermal_violation, throttle_mask)."""
        raise NotImplementedError

    def set_partition_value(self, gpu: G, partition: int, key: str, value: float) -> None:
        """What one partition's library device reports (vram_used, vram_total, busy_pct)."""
        self.fake.set_value(self.devices(gpu)[partition], key, value)

    def set_unsupported(self, gpu: G, function: str) -> None:
        """`function` answers NOT_SUPPORTED on the GPU's primary device."""
        self.fake.set_unsupported(self.devices(gpu)[0], function)

    def set_lost(self, gpu: G, status: Optional[int] = None) -> None:
        for device in self.devices(gpu):
            self.fake.set_lost(device, self.LOST_STATUS if status is None else status)

    def set_back(self, gpu: G) -> None:
        for device in self.devices(gpu):
            self.fake.set_lost(device, 0)

    def set_partition_modes(self, gpu: G, compute: str, memory: str) -> None:
        """What the library says from now on (the KFD tree is left as it is)."""
        for device in self.devices(gpu):
            self.fake.set_partition_modes(device, compute, memory)
