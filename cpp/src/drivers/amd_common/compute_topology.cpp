#include "compute_topology.hpp"

#include <cctype>
#include <stdexcept>

namespace cuagent::amd {

namespace {

std::string partition_profile(const PartitionModes& modes) {
    if (modes.memory.empty()) return modes.compute;
    return modes.compute.empty() ? modes.memory : modes.compute + " " + modes.memory;
}

std::uint64_t device_memory(std::uint64_t whole, const std::vector<std::uint64_t>& partition_memory,
                            const std::string& memory) {
    if (partition_memory.empty() || memory.empty() || memory == "NPS1") return whole;
    std::uint64_t sum = 0;
    for (const std::uint64_t part : partition_memory) sum += part;
    return sum;
}

}  // namespace

XcdShape describe_compute(DeviceDescription& d, const std::vector<KfdNode>& nodes, const PartitionModes& modes,
                          std::uint64_t whole_memory, const std::vector<std::uint64_t>& partition_memory) {
    d.memory_bytes = device_memory(whole_memory, partition_memory, modes.memory);
    const std::string profile = partition_profile(modes);
    std::uint32_t xcds = 0, ses = 0, cus = 0;
    for (const auto& n : nodes) {
        xcds += n.xccs;
        ses += n.shader_engines;
        cus += n.cus;
    }
    d.unit_kind = "cu";
    d.units = cus;
    d.levels = {"xcd", "se", "cu"};
    d.counts = {xcds, ses, cus};
    d.layout.assign(2, std::vector<std::uint16_t>(cus));
    d.layout_source = "vendor";

    std::uint32_t cu = 0, xcd = 0, se = 0;
    for (std::size_t p = 0; p < nodes.size(); ++p) {
        const KfdNode& n = nodes[p];
        const std::uint32_t cus_per_xcd = n.cus / n.xccs;
        const std::uint32_t ses_per_xcd = n.shader_engines / n.xccs;
        Partition part;
        part.id = std::to_string(p);
        part.kind = nodes.size() == 1 ? "whole" : "xcp";
        part.units = n.cus;
        part.profile = profile;
        part.memory_bytes = p < partition_memory.size() ? partition_memory[p] : d.memory_bytes;
        for (std::uint32_t x = 0; x < n.xccs; ++x, ++xcd) {
            for (std::uint32_t c = 0; c < cus_per_xcd; ++c, ++cu) {
                d.layout[0][cu] = static_cast<std::uint16_t>(xcd);
                d.layout[1][cu] = static_cast<std::uint16_t>(se + c * ses_per_xcd / cus_per_xcd);
                if (nodes.size() > 1) part.unit_ids.push_back(static_cast<std::uint16_t>(cu));
            }
            se += ses_per_xcd;
        }
        d.partitions.push_back(std::move(part));
    }
    XcdShape shape;
    shape.xcps = static_cast<std::uint32_t>(nodes.size());
    shape.xccs_per_xcp = nodes.front().xccs;
    for (const auto& n : nodes) {
        if (n.xccs != shape.xccs_per_xcp) {
            throw std::runtime_error(d.backend + ": device " + d.pci + " has partitions with different XCC counts; "
                                     "the gpu_metrics xcp_stats cannot be mapped to XCDs");
        }
    }
    return shape;
}

std::string partition_token(std::string text) {
    // Partition strings come back as "SPX", "CPX", "NPS1"; keep the first word.
    const auto end = text.find_first_of(" \t\n");
    if (end != std::string::npos) text.resize(end);
    for (auto& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return text;
}

}  // namespace cuagent::amd
