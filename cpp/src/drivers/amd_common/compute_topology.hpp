// An AMD GPU's units, levels and partitions from its KFD nodes, the same for
// both AMD drivers: KFD gives counts (XCCs, shader engines, CUs per node), one
// node per compute partition.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cuagent/topology.hpp"
#include "kfd.hpp"

namespace cuagent::amd {

// How the GPU's XCDs split into compute partitions: what a gpu_metrics table's
// xcp_stats[p].gfx_busy_*[x] indexes.
struct XcdShape {
    std::uint32_t xcps = 1;          // compute partitions (KFD nodes)
    std::uint32_t xccs_per_xcp = 1;  // XCDs in each
};

// Fills `d`'s unit kind ("cu"), units, levels ["xcd", "se", "cu"], counts,
// layout (layout_source "vendor") and partitions from `nodes` (one GPU's, in
// partition order). CUs are numbered XCD by XCD and split evenly over each
// XCD's engines (38 CUs over 4 engines: 10, 9, 10, 9): KFD says how many, not
// which. `profile` names the partition modes ("CPX NPS4"); `partition_memory`
// holds each partition's memory where known (else the device's). Throws
// std::runtime_error, naming `d.backend` and `d.pci`, when the partitions do
// not hold the same number of XCDs (xcp_stats could not be mapped).
XcdShape describe_compute(DeviceDescription& d, const std::vector<KfdNode>& nodes, const std::string& profile,
                          const std::vector<std::uint64_t>& partition_memory);

// "CPX", "NPS4": the first word of a library's partition string, upper case.
std::string partition_token(std::string text);

// The compute and memory modes joined as a partition profile ("SPX NPS1").
std::string partition_profile(const std::string& compute, const std::string& memory);

// The device's memory in bytes: `whole` (what its primary partition reports),
// unless it is read per partition (`partition_memory` holds each one's) in a
// memory mode other than NPS1: then each partition sees its own share and the
// device holds their sum. In NPS1 every partition sees the one pool, so the
// device has it once.
std::uint64_t device_memory(std::uint64_t whole, const std::vector<std::uint64_t>& partition_memory,
                            const std::string& memory);

}  // namespace cuagent::amd
