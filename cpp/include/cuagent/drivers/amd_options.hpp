// What both AMD backends take (rocm_smi, amdsmi): both read the vendor
// library for counters and the KFD sysfs tree for the compute topology, and
// name devices the same way.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cuagent {

struct AmdDriverOptions {
    // File or bare name of the vendor library; empty: the backend's own names
    // (unversioned, then versioned, then /opt/rocm/lib).
    std::string library;
    // The KFD sysfs directory holding topology/nodes/<n>/properties.
    std::string kfd_root = "/sys/class/kfd/kfd";
    // Physical devices to monitor, by index ("0") or id; empty: all.
    std::vector<std::string> devices;
    // Shortest interval between reads of one device. The firmware refreshes
    // the metrics table about every 1 ms (amdgpu re-reads it at most that
    // often) and every library call is a sysfs read; the XCD activity is
    // averaged from the firmware's accumulators, so reading less often loses
    // no activity.
    std::int64_t min_read_interval_ns = 10'000'000;
};

}  // namespace cuagent
