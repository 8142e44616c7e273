// The AMD backend: ROCm SMI (librocm_smi64, loaded with dlopen) for device
// counters and the per-XCD activity of the gpu_metrics table, the KFD sysfs
// tree for the compute topology (XCD -> shader engine -> CU) and compute
// partitions. Built against the documented API; tested against fakes only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cuagent/driver.hpp"

namespace cuagent {

struct RocmSmiOptions {
    // File or bare name of the ROCm SMI library; empty: librocm_smi64.so, then
    // versioned names, then /opt/rocm/lib.
    std::string library;
    // The KFD sysfs directory holding topology/nodes/<n>/properties.
    std::string kfd_root = "/sys/class/kfd/kfd";
    // Physical devices to monitor, by index ("0") or id; empty: all.
    std::vector<std::string> devices;
    // Shortest interval between reads of one device. amdgpu re-reads the SMU
    // metrics table at most every 1 ms and every rsmi call is a sysfs read
    // under a process-shared mutex; the XCD activity is averaged from the
    // firmware's accumulators, so reading less often loses no activity.
    std::int64_t min_read_interval_ns = 10'000'000;
};

// Throws std::runtime_error with one clear message when the library is
// missing or fails to initialise, or a device has no KFD topology node;
// std::invalid_argument for an unknown device in `devices`.
std::unique_ptr<Driver> make_rocm_smi_driver(const RocmSmiOptions& options);

}  // namespace cuagent
