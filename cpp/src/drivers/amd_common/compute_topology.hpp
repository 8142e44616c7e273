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

// A GPU's partition modes as partition_token() reads its library's strings
// ("CPX", "NPS4"); empty where the library does not say.
struct PartitionModes {
    std::string compute;
    std::string memory;
};

// Fills `d`'s memory, unit kind ("cu"), units, levels ["xcd", "se", "cu"],
// counts, layout (layout_source "vendor") and partitions from `nodes` (one
// GPU's, in partition order). CUs are numbered XCD by XCD and split evenly
// over each XCD's engines (38 CUs over 4 engines: 10, 9, 10, 9): KFD says how
// many, not which. The partitions' profile names the modes ("CPX NPS4").
// `whole_memory` is what the GPU's primary partition reports;
// `partition_memory` holds each partition's where the library reads them
// apart (else empty): in a memory mode other than NPS1 each partition sees its
// own share and the device holds their sum; in NPS1 every partition sees the
// one pool, so the device has it once. Throws std::runtime_error, naming
// `d.backend` and `d.pci`, when the partitions do not hold the same number of
// XCDs (xcp_stats could not be mapped).
XcdShape describe_compute(DeviceDescription& d, const std::vector<KfdNode>& nodes, const PartitionModes& modes,
                          std::uint64_t whole_memory, const std::vector<std::uint64_t>& partition_memory);

// "CPX", "NPS4": the first word of a library's partition string, upper case.
std::string partition_token(std::string text);

}  // namespace cuagent::amd
