// Physical GPUs from a library's devices, for both AMD drivers' discovery:
// ROCm SMI (6.3+) and AMD SMI list one device per compute partition, every
// partition of a GPU at the GPU's PCI domain, bus and device (they differ in
// the function bits on kernels before 2024, and in the partition bits
// 31:28 ROCm SMI puts in its PCI id). Slow path.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace cuagent::amd {

// Where a GPU sits: what every one of its partitions shares.
struct PciLocation {
    std::uint32_t domain = 0;
    std::uint32_t bus_device = 0;  // bus << 5 | device, as KfdNode::bus_device()
};

// "0000:11:00.0".
std::string format_pci(std::uint32_t domain, std::uint32_t bus, std::uint32_t device, std::uint32_t function);

// The library's devices grouped into physical GPUs by `location_of(device)`
// (a std::optional<PciLocation>), GPUs in the order the library first lists
// them; a device without a location stands alone. Each GPU's devices are
// ordered by `partition_of(device)` (stable: the library's order breaks ties).
template <typename Device, typename LocationOf, typename PartitionOf>
std::vector<std::vector<Device>> group_by_pci(const std::vector<Device>& devices, LocationOf location_of,
                                              PartitionOf partition_of) {
    std::map<std::tuple<std::uint32_t, std::uint32_t, std::uint32_t>, std::size_t> gpu_of;
    std::vector<std::vector<Device>> gpus;
    for (std::size_t i = 0; i < devices.size(); ++i) {
        const std::optional<PciLocation> at = location_of(devices[i]);
        const auto key = at ? std::make_tuple(0u, at->domain, at->bus_device)
                            : std::make_tuple(1u, static_cast<std::uint32_t>(i), 0u);
        const auto [it, added] = gpu_of.emplace(key, gpus.size());
        if (added) gpus.emplace_back();
        gpus[it->second].push_back(devices[i]);
    }
    for (auto& members : gpus) {
        std::stable_sort(members.begin(), members.end(),
                         [&](const Device& a, const Device& b) { return partition_of(a) < partition_of(b); });
    }
    return gpus;
}

}  // namespace cuagent::amd
