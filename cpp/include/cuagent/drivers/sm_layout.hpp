// Recovering the GPC/TPC arrangement of an NVIDIA GPU's SMs from
// thread-block-cluster co-residency (docs/ARCHITECTURE.md, "NVIDIA SM layout").
//
// Blocks of one cluster always run together on one GPC, so two SMs seen in
// the same cluster share a GPC; clusters of 2 land on the two SMs of a TPC.
// The grouping is the union of those observations: connected components over
// all clusters give the GPC-level groups, components over clusters of 2 the
// TPCs. An SM only ever seen in small clusters forms a group with just the SMs
// it was seen with: it is reported as its own group, never guessed into a GPC.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cuagent {

// One launched cluster: its size and the SM each of its blocks ran on.
struct ClusterObservation {
    std::uint32_t cluster_size = 0;
    std::vector<std::uint16_t> sms;
};

struct SmLayout {
    std::uint32_t units = 0;
    std::vector<std::uint16_t> gpc;  // per SM: index of its GPC-level group
    std::vector<std::uint16_t> tpc;  // per SM: index of its TPC
    std::uint32_t gpcs = 0;
    std::uint32_t tpcs = 0;
    // Per GPC-level group: the largest cluster size seen on it (a group whose
    // largest cluster is small may be part of a GPC the probe could not fill).
    std::vector<std::uint32_t> gpc_max_cluster;
    std::vector<std::string> notes;  // what could not be placed, and why
};

// Groups `units` SMs from the observations. Group indices follow the smallest
// SM id in each group, so the result does not depend on observation order.
// Throws std::invalid_argument for an SM id >= units.
SmLayout group_sms(std::uint32_t units, const std::vector<ClusterObservation>& observations);

// Text form for the per-UUID cache: "units gpcs tpcs\n" then per SM
// "gpc tpc\n", then "max <per-group max cluster...>\n". parse returns false on
// anything malformed (the cache is then ignored and the probe reruns).
std::string format_sm_layout(const SmLayout& layout);
bool parse_sm_layout(const std::string& text, SmLayout& layout);

struct SmProbeOptions {
    std::string cuda_library = "libcuda.so.1";
    std::uint32_t launches_per_size = 50;
    std::uint32_t max_cluster_size = 16;
    std::uint64_t spin_cycles = 20000;  // keeps blocks resident so clusters spread
};

// Runs the probe on the CUDA device with this PCI bus id ("00000000:18:00.0").
// Creates and destroys its own context. Returns false with `why` set when it
// cannot run (libcuda missing, no such device, pre-Hopper, launch failure).
bool probe_sm_layout(const std::string& pci_bus_id, const SmProbeOptions& options,
                     SmLayout& layout, std::string& why);

}  // namespace cuagent
