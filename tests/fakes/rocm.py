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
table holds every partition's xcp_stats.
"""

from __future__ import annotations

import ctypes
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, TypeVar

from .build import build_fake_library

SOURCE = Path(__file__).with_name("rocm_smi_fake.c")

# rsmi_status_t values (rocm_smi.h)
RSMI_STATUS_SUCCESS = 0
RSMI_STATUS_INVALID_ARGS = 1
RSMI_STATUS_NOT_SUPPORTED = 2
RSMI_STATUS_FILE_ERROR = 3
RSMI_STATUS_INIT_ERROR = 8
RSMI_STATUS_BUSY = 16

# Public rsmi_gpu_metrics_t sizes of the library releases the fake can emulate
# (96: a ROCm 5.x release, which also has the old rsmi_frequencies_t).
LAYOUT_V13, LAYOUT_V15, LAYOUT_V16, LAYOUT_V17, LAYOUT_V18 = 96, 424, 1832, 2368, 4544

COMPUTE_PARTITIONS = {"SPX": 1, "DPX": 2, "QPX": 4, "CPX": 8}
MEMORY_PARTITIONS = ("NPS1", "NPS2", "NPS4", "NPS8")


def build_fake_rocm_smi(out_dir: Path, omit: Sequence[str] = ()) -> Path:
    """Compile the fake into out_dir/librocm_smi64.so; `omit` names FAKE_OMIT_* guards."""
    return build_fake_library(SOURCE, out_dir / "librocm_smi64.so", omit)


class FakeRocmSmi:
    """ctypes handle on the fake's fake_* control functions."""

    def __init__(self, library: Path):
        self.path = Path(library)
        lib = ctypes.CDLL(str(self.path))
        u32, u64, i32, dbl, s = ctypes.c_uint, ctypes.c_uint64, ctypes.c_int32, ctypes.c_double, ctypes.c_char_p
        signatures = {
            "fake_reset": ([], None),
            "fake_add_device": ([s, u64, u64, i32, u64], ctypes.c_int),
            "fake_set_library_layout": ([u32], ctypes.c_int),
            "fake_set_init_status": ([ctypes.c_int], None),
            "fake_set_metrics": ([u32, u32, u32, u32, u64], ctypes.c_int),
            "fake_set_xcd_busy": ([u32, u32, dbl], ctypes.c_int),
            "fake_tick": ([u32, u64], ctypes.c_int),
            "fake_set_value": ([u32, s, dbl], ctypes.c_int),
            "fake_set_partition_modes": ([u32, s, s], ctypes.c_int),
            "fake_set_unsupported": ([u32, s], ctypes.c_int),
            "fake_set_lost": ([u32, ctypes.c_int], ctypes.c_int),
            "fake_call_count": ([], u64),
            "fake_initialized": ([], ctypes.c_int),
        }
        for name, (args, result) in signatures.items():
            fn = getattr(lib, name)
            fn.argtypes = args
            fn.restype = result
        self.lib = lib

    def _check(self, rc: int, what: str) -> None:
        if rc != 0:
            raise ValueError(f"fake rocm_smi rejected {what} (rc={rc})")

    def reset(self) -> None:
        self.lib.fake_reset()

    def add_device(self, name: str, unique_id: int, bdfid: int, numa: int, vram_total: int) -> int:
        index = self.lib.fake_add_device(name.encode(), unique_id, bdfid, numa, vram_total)
        if index < 0:
            raise ValueError("fake rocm_smi is full")
        return index

    def set_library_layout(self, size: int) -> None:
        self._check(self.lib.fake_set_library_layout(size), f"layout {size}")

    def set_init_status(self, status: int) -> None:
        self.lib.fake_set_init_status(status)

    def set_metrics(self, dev: int, revision: int, num_partition: int, xcc_per_partition: int,
                    fw_period_ns: int) -> None:
        self._check(self.lib.fake_set_metrics(dev, revision, num_partition, xcc_per_partition, fw_period_ns),
                    f"metrics for device {dev}")

    def set_xcd_busy(self, dev: int, xcd: int, percent: float) -> None:
        self._check(self.lib.fake_set_xcd_busy(dev, xcd, percent), f"xcd {xcd} of device {dev}")

    def tick(self, dev: int, n: int = 1) -> None:
        self._check(self.lib.fake_tick(dev, n), f"tick of device {dev}")

    def set_value(self, dev: int, key: str, value: float) -> None:
        self._check(self.lib.fake_set_value(dev, key.encode(), value), f"value {key!r}")

    def set_partition_modes(self, dev: int, compute: str, memory: str) -> None:
        self._check(self.lib.fake_set_partition_modes(dev, compute.encode(), memory.encode()), "modes")

    def set_unsupported(self, dev: int, function: str) -> None:
        self._check(self.lib.fake_set_unsupported(dev, function.encode()), f"unsupported {function}")

    def set_lost(self, dev: int, status: int = RSMI_STATUS_FILE_ERROR) -> None:
        self._check(self.lib.fake_set_lost(dev, status), f"lost device {dev}")

    def call_count(self) -> int:
        return int(self.lib.fake_call_count())

    def initialized(self) -> int:
        return int(self.lib.fake_initialized())


# ---- KFD topology -----------------------------------------------------------

@dataclass(frozen=True)
class GpuModel:
    name: str
    device_id: int
    gfx_target_version: int
    xcds: int                 # XCDs (XCCs) on the whole device
    cus_per_xcd: int
    ses_per_xcd: int
    vram_bytes: int


MI300X = GpuModel("AMD Instinct MI300X", 0x74A1, 90402, xcds=8, cus_per_xcd=38, ses_per_xcd=4,
                  vram_bytes=192 << 30)
MI210 = GpuModel("AMD Instinct MI210", 0x740F, 90010, xcds=1, cus_per_xcd=104, ses_per_xcd=8,
                 vram_bytes=64 << 30)


@dataclass
class FakeGpu:
    """One physical GPU of the fake host."""
    model: GpuModel
    compute: str
    memory: str
    domain: int
    bus: int
    unique_id: int
    kernel_partition_bits: str = "31:28"
    rsmi_devices: list[int] = field(default_factory=list)  # one per compute partition
    kfd_nodes: list[int] = field(default_factory=list)

    @property
    def partitions(self) -> int:
        """Compute partitions (one KFD node, and one library device or processor, each)."""
        return COMPUTE_PARTITIONS[self.compute]

    @property
    def vram_per_partition(self) -> int:
        """What each partition's library device reports as VRAM: the whole pool in NPS1."""
        return self.model.vram_bytes // (self.partitions if self.memory != "NPS1" else 1)

    @property
    def metrics_device(self) -> int:
        return self.rsmi_devices[0]

    @property
    def bdf(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:00.0"


G = TypeVar("G", bound=FakeGpu)


def place_gpu(cls: type[G], model: GpuModel, compute: str, memory: str, kernel_partition_bits: str, n: int) -> G:
    """The n-th GPU of a fake host (either library's), its modes checked: PCI bus and unique id
    follow from n, so both fake hosts give the same GPU the same address and id."""
    if compute not in COMPUTE_PARTITIONS:
        raise ValueError(f"unknown compute partition {compute!r}")
    if memory not in MEMORY_PARTITIONS:
        raise ValueError(f"unknown memory partition {memory!r}")
    if model.xcds % COMPUTE_PARTITIONS[compute]:
        raise ValueError(f"{model.name} cannot run in {compute}")
    if kernel_partition_bits not in ("31:28", "function"):
        raise ValueError(f"kernel_partition_bits is '31:28' or 'function', got {kernel_partition_bits!r}")
    return cls(model, compute, memory, domain=0, bus=0x11 + 0x20 * n, unique_id=0x7E3D2A1F00000000 + n * 0x1111,
               kernel_partition_bits=kernel_partition_bits)


def _properties(values: dict[str, int]) -> str:
    return "".join(f"{key} {value}\n" for key, value in values.items())


def _cpu_node(gpu_count: int) -> dict[str, int]:
    return {
        "cpu_cores_count": 96, "simd_count": 0, "mem_banks_count": 1, "caches_count": 0,
        "io_links_count": gpu_count, "cpu_core_id_base": 0, "simd_id_base": 0,
        "max_waves_per_simd": 0, "lds_size_in_kb": 0, "gds_size_in_kb": 0, "num_gws": 0,
        "wave_front_size": 0, "array_count": 0, "simd_arrays_per_engine": 0,
        "cu_per_simd_array": 0, "simd_per_cu": 0, "max_slots_scratch_cu": 0,
        "gfx_target_version": 0, "vendor_id": 0, "device_id": 0, "location_id": 0,
        "domain": 0, "drm_render_minor": 0, "hive_id": 0, "num_sdma_engines": 0,
        "num_sdma_xgmi_engines": 0, "num_sdma_queues_per_engine": 0, "num_cp_queues": 0,
        "max_engine_clk_fcompute": 0, "max_engine_clk_ccompute": 3700, "local_mem_size": 0,
        "fw_version": 0, "capability": 0, "debug_prop": 0, "sdma_fw_version": 0,
        "unique_id": 0, "num_xcc": 0,
    }


def _gpu_node(gpu: FakeGpu, partition: int, partitions: int, render_minor: int) -> dict[str, int]:
    model = gpu.model
    xcds = model.xcds // partitions
    cus = xcds * model.cus_per_xcd
    arrays = xcds * model.ses_per_xcd
    if partitions == 1:
        location = gpu.bus << 8
    elif gpu.kernel_partition_bits == "31:28":
        location = (gpu.bus << 8) | (partition << 28)
    else:
        location = (gpu.bus << 8) | partition
    return {
        "cpu_cores_count": 0, "simd_count": cus * 4, "mem_banks_count": 1, "caches_count": 200,
        "io_links_count": 1, "p2p_links_count": 0, "cpu_core_id_base": 0,
        "simd_id_base": 2147487744, "max_waves_per_simd": 8, "lds_size_in_kb": 64,
        "gds_size_in_kb": 0, "num_gws": 64, "wave_front_size": 64, "array_count": arrays,
        "simd_arrays_per_engine": 1, "cu_per_simd_array": -(-model.cus_per_xcd // model.ses_per_xcd),
        "simd_per_cu": 4, "max_slots_scratch_cu": 32, "gfx_target_version": model.gfx_target_version,
        "vendor_id": 0x1002, "device_id": model.device_id, "location_id": location,
        "domain": gpu.domain, "drm_render_minor": render_minor, "hive_id": 0,
        "num_sdma_engines": 2, "num_sdma_xgmi_engines": 6, "num_sdma_queues_per_engine": 8,
        "num_cp_queues": 24, "max_engine_clk_fcompute": 2100, "local_mem_size": 0,
        "fw_version": 155, "capability": 746621568, "debug_prop": 1495, "sdma_fw_version": 19,
        "unique_id": gpu.unique_id, "num_xcc": xcds, "max_engine_clk_ccompute": 3700,
    }


class FakeAmdHost:
    """A whole fake host: rsmi devices in the fake library and a KFD tree on disk."""

    def __init__(self, library: Path, kfd_root: Path, layout: int = LAYOUT_V18):
        self.fake = FakeRocmSmi(library)
        self.fake.reset()
        self.fake.set_library_layout(layout)
        self.library = Path(library)
        self.kfd_root = Path(kfd_root)
        self.gpus: list[FakeGpu] = []
        self._write_kfd()

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
        xcc_per_partition = model.xcds // partitions
        self.fake.set_metrics(gpu.metrics_device, metrics_revision, partitions, xcc_per_partition,
                              fw_period_ns)
        for dev in gpu.rsmi_devices[1:]:
            self.fake.set_metrics(dev, 0, 0, 0, 0)  # secondary partitions have no table
        self.gpus.append(gpu)
        self._write_kfd()
        return gpu

    def add_mi300x(self, **kwargs) -> FakeGpu:
        return self.add_gpu(MI300X, **kwargs)

    def add_mi210(self, **kwargs) -> FakeGpu:
        kwargs.setdefault("metrics_revision", 3)
        return self.add_gpu(MI210, **kwargs)

    def set_xcd_busy(self, gpu: FakeGpu, percents: Sequence[float]) -> None:
        if len(percents) != gpu.model.xcds:
            raise ValueError(f"{gpu.model.name} has {gpu.model.xcds} XCDs, got {len(percents)} values")
        for xcd, pct in enumerate(percents):
            self.fake.set_xcd_busy(gpu.metrics_device, xcd, pct)

    def tick(self, gpu: FakeGpu, n: int = 1) -> None:
        self.fake.tick(gpu.metrics_device, n)

    def set_lost(self, gpu: FakeGpu, status: int = RSMI_STATUS_FILE_ERROR) -> None:
        for dev in gpu.rsmi_devices:
            self.fake.set_lost(dev, status)

    def set_back(self, gpu: FakeGpu) -> None:
        for dev in gpu.rsmi_devices:
            self.fake.set_lost(dev, 0)

    def _write_kfd(self) -> None:
        write_kfd_tree(self.kfd_root, self.gpus)


def gfx_name(gfx_target_version: int) -> str:
    """KFD's node name for a target version: 90402 -> gfx942, 90010 -> gfx90a."""
    major, minor, step = gfx_target_version // 10000, gfx_target_version // 100 % 100, gfx_target_version % 100
    return f"gfx{major}{minor:x}{step:x}"


def write_kfd_tree(kfd_root: Path, gpus: Sequence[FakeGpu]) -> None:
    """(Re)write kfd_root/topology/nodes as the amdgpu driver lays it out: node 0 the CPU,
    then one node per compute partition of each GPU (recorded in gpu.kfd_nodes). Each node
    has properties, gpu_id, name and the io_links/p2p_links/mem_banks directories (the real
    librocm_smi64 asserts when io_links is missing). Shared by the ROCm SMI and AMD SMI fake
    hosts: both backends read the same KFD tree."""
    nodes = Path(kfd_root) / "topology" / "nodes"
    if nodes.exists():
        shutil.rmtree(nodes)
    node = 0
    partitions_total = sum(g.partitions for g in gpus)
    _write_node(nodes / "0", _cpu_node(partitions_total), gpu_id=0, name="")
    render = 128
    for gpu in gpus:
        gpu.kfd_nodes.clear()
        for p in range(gpu.partitions):
            node += 1
            _write_node(nodes / str(node), _gpu_node(gpu, p, gpu.partitions, render), gpu_id=40000 + node,
                        name=gfx_name(gpu.model.gfx_target_version))
            gpu.kfd_nodes.append(node)
            render += 1


def _write_node(path: Path, props: dict[str, int], gpu_id: int, name: str) -> None:
    path.mkdir(parents=True)
    (path / "properties").write_text(_properties(props))
    (path / "gpu_id").write_text(f"{gpu_id}\n")
    (path / "name").write_text(f"{name}\n")
    for links in ("io_links", "p2p_links", "mem_banks", "caches"):
        (path / links).mkdir()
