"""The KFD topology of fake AMD GPUs: the GPU models, one physical GPU in its partition modes,
and the KFD sysfs tree (<kfd_root>/topology/nodes) the amdgpu driver would write for them. Both
fake hosts (rocm.py, amdsmi.py) and the synthetic sysfs (amd_sysfs.py) write it: both AMD
backends read the same tree."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, TypeVar

COMPUTE_PARTITIONS = {"SPX": 1, "DPX": 2, "QPX": 4, "CPX": 8}
MEMORY_PARTITIONS = ("NPS1", "NPS2", "NPS4", "NPS8")


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
class KfdGpu:
    """One physical GPU of a fake AMD host, as its KFD nodes describe it."""
    model: GpuModel
    compute: str
    memory: str
    domain: int
    bus: int
    unique_id: int
    kernel_partition_bits: str = "31:28"
    kfd_nodes: list[int] = field(default_factory=list)  # one per compute partition

    @property
    def partitions(self) -> int:
        """Compute partitions (one KFD node, and one library device or processor, each)."""
        return COMPUTE_PARTITIONS[self.compute]

    @property
    def vram_per_partition(self) -> int:
        """What each partition's library device reports as VRAM: the whole pool in NPS1."""
        return self.model.vram_bytes // (self.partitions if self.memory != "NPS1" else 1)

    @property
    def bdf(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:00.0"


G = TypeVar("G", bound=KfdGpu)


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


def _gpu_node(gpu: KfdGpu, partition: int, partitions: int, render_minor: int) -> dict[str, int]:
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


def gfx_name(gfx_target_version: int) -> str:
    """KFD's node name for a target version: 90402 -> gfx942, 90010 -> gfx90a."""
    major, minor, step = gfx_target_version // 10000, gfx_target_version // 100 % 100, gfx_target_version % 100
    return f"gfx{major}{minor:x}{step:x}"


def write_kfd_tree(kfd_root: Path, gpus: Sequence[KfdGpu]) -> None:
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
