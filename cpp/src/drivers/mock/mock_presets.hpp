// The parts the mock can simulate: topology (levels, layout), per-unit
// resource limits that decide how many blocks fit, and the power model.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mock_calibration.hpp"

namespace cuagent::mock {

// What one unit (SM / CU) can hold at once; a block fits when every resource
// still has room for it.
struct UnitLimits {
    std::uint32_t max_warps;       // resident warps (waves on AMD)
    std::uint32_t max_blocks;      // resident blocks (workgroups)
    std::uint32_t shared_bytes;    // shared memory / LDS
    std::uint32_t warp_size;       // threads per warp / wave
};

// A MIG-style slice of the device: which top-level groups it owns.
struct PartitionPlan {
    std::string profile;               // "MIG 3g.40gb", "CPX", ...
    std::vector<std::uint32_t> groups; // indices at levels[0]
    double memory_fraction;            // of the device's memory
};

struct Preset {
    std::string name;
    std::string model;
    std::string unit_kind;             // "sm" | "cu"
    std::uint32_t units = 0;
    std::vector<std::string> levels;   // coarse to fine, ending in unit_kind
    std::vector<std::uint32_t> counts;
    std::vector<std::vector<std::uint16_t>> layout;  // [level][unit] ancestor index
    std::uint64_t memory_bytes = 0;
    UnitLimits limits{};
    PowerCalibration power{};
    bool clusters = false;             // thread-block clusters (Hopper and later)
    // Order in which the block dispatcher visits units: the hardware's SM order
    // on NVIDIA (ids already interleave GPCs), round-robin over XCDs on AMD.
    std::vector<std::uint16_t> dispatch_order;
    std::string partition_kind;        // "mig" | "xcp" for the mig scenario
    std::vector<PartitionPlan> partition_plan;

    std::uint32_t groups() const { return counts.front(); }
    // Units of top-level group g, ascending.
    std::vector<std::uint16_t> group_units(std::uint32_t g) const;
};

// Throws std::invalid_argument naming a bad preset or unit count.
Preset make_preset(const std::string& name, std::uint32_t units);
std::vector<std::string> preset_names();

}  // namespace cuagent::mock
