// Static description of one device: its units, their hierarchy, partitions and
// the counters a driver will fill each tick. Built once by a driver (slow path,
// may allocate); read-only while an engine runs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cuagent {

// How a counter's raw samples combine over a window. Ratios, watts and clocks
// average; a vendor bitmask ORs (a reason seen once in the window matters); a
// cumulative count keeps its latest (largest) value; a count of events per
// read (e.g. kHz samples folded into one read) sums; a burst peak keeps the
// largest value of the window.
enum class Aggregation : std::uint8_t { Mean, BitOr, Last, Sum, Max };

// Levels a counter can be measured at besides the device's own hierarchy.
inline constexpr const char* kPartitionLevel = "partition";
inline constexpr const char* kDeviceLevel = "device";

struct CounterSpec {
    std::string name;   // canonical name, PROTOCOL.md §3.2 ("active", "power", ...)
    std::string level;  // one of the device's levels, "partition" or "device"
    std::string unit;   // "ratio" | "W" | "C" | "bytes" | "Hz" | "B/s" | "count" | "mask"
    std::string help;
    Aggregation aggregation = Aggregation::Mean;
    // For a counter measured at a hierarchy level: the name under which its mean
    // over a partition's / the device's units is published ("active" ->
    // "sm_active"). Empty: not rolled up. This one field decides it all: the
    // aggregator computes exactly these means, the topology declares each at
    // "partition" level (cuagent/topology.py), and the encoder sends them.
    // The name must be new (validate() rejects a counter's name, its own too).
    std::string rollup;
};

struct Partition {
    std::string id;                   // "0" for a whole device
    std::string kind;                 // "whole" | "mig" | "xcp"
    std::uint32_t units = 0;
    std::vector<std::uint16_t> unit_ids;  // which units, where known (may be empty)
    std::uint64_t memory_bytes = 0;
    std::string profile;              // "MIG 3g.40gb", "CPX", ... (may be empty)
};

struct Link {
    std::string peer;   // peer device id
    std::string type;   // "nvlink" | "xgmi" | "pcie"
    std::uint32_t count = 0;
    std::string path;   // "PIX", "NODE", "SYS", ...
};

struct DeviceDescription {
    std::string id;       // stable id: vendor UUID, or "mock-<n>"
    std::uint32_t index = 0;
    std::string vendor;   // "nvidia" | "amd" | "mock"
    std::string model;
    std::string backend;  // "nvml" | "rocm_smi" | "cupti" | "mock"
    std::string unit_kind;  // "sm" | "cu"
    std::uint32_t units = 0;
    std::vector<std::string> levels;  // coarse to fine, ending in unit_kind
    std::vector<std::uint32_t> counts;  // elements per level; counts.back() == units
    // layout[l][u]: index of unit u's ancestor at levels[l], for every level but
    // the last. Empty when the arrangement is unknown.
    std::vector<std::vector<std::uint16_t>> layout;
    std::string layout_source = "none";  // "probe" | "vendor" | "mock" | "none"
    std::vector<Partition> partitions;   // at least one
    std::uint64_t memory_bytes = 0;
    std::string pci;        // may be empty
    std::int32_t numa = -1; // -1: unknown
    std::vector<CounterSpec> counters;
    std::vector<Link> links;

    bool has_layout() const { return !layout.empty(); }
    // Index of `level` in `levels`, or -1.
    int level_index(const std::string& level) const;
    // Number of values one sample holds for a counter measured at `level`.
    std::uint32_t elements_at(const std::string& level) const;
    // Throws std::invalid_argument naming the first inconsistency (a driver bug).
    void validate() const;
};

}  // namespace cuagent
