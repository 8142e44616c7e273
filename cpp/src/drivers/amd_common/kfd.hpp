// The compute topology of AMD GPUs, from the KFD sysfs tree, for both AMD
// drivers (rocm_smi, amdsmi)
// (<root>/topology/nodes/<n>/properties, "name value" lines). Each GPU compute
// partition is one KFD node: an MI300X in SPX is one node of 8 XCCs, in CPX
// eight nodes of 1 XCC, all on the same PCI device; kernels put the
// partition's node id into location_id (bits 31:28 since 2024, the function
// bits before), so nodes group by PCI bus/device.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pci.hpp"

namespace cuagent::amd {

struct KfdNode {
    unsigned node = 0;               // directory number under topology/nodes
    std::uint32_t domain = 0;        // PCI domain
    std::uint32_t location_id = 0;   // bus << 8 | devfn, partition bits ORed in
    std::uint64_t unique_id = 0;     // 0 when the kernel does not report it
    std::uint32_t device_id = 0;     // PCI device id
    std::uint32_t cus = 0;           // simd_count / simd_per_cu
    std::uint32_t shader_engines = 0;  // array_count / simd_arrays_per_engine
    std::uint32_t xccs = 1;          // num_xcc (absent on pre-MI300 kernels: 1)

    // PCI bus and device number (bits 15:3 of location_id); function and
    // partition bits excluded, so every partition of one GPU shares it.
    std::uint32_t bus_device() const { return (location_id >> 3) & 0x1FFFu; }
    // Orders the partitions of one GPU: new kernels' bits 31:28, then old
    // kernels' function bits.
    std::uint32_t partition_key() const { return (location_id >> 28) << 4 | (location_id & 7u); }
};

// GPU nodes (simd_count > 0) under `root` in node order. Empty when the tree
// does not exist; throws std::runtime_error, prefixed with `backend` (the
// driver reading it), naming the file and property when a GPU node is
// inconsistent (e.g. simd_count not a multiple of simd_per_cu).
std::vector<KfdNode> read_kfd_gpu_nodes(const char* backend, const std::string& root);

// The nodes of the physical GPU `at` among `nodes`, in partition order; none
// for a GPU whose library gives no PCI location.
std::vector<KfdNode> nodes_of_gpu(const std::vector<KfdNode>& nodes, const std::optional<PciLocation>& at);

}  // namespace cuagent::amd
