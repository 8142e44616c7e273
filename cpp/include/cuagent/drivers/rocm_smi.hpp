// The AMD backend: ROCm SMI (librocm_smi64, loaded with dlopen) for device
// counters and the per-XCD activity of the gpu_metrics table, the KFD sysfs
// tree for the compute topology (XCD -> shader engine -> CU) and compute
// partitions. Built against the documented API; tested against fakes only.
#pragma once

#include <memory>

#include "cuagent/driver.hpp"
#include "cuagent/drivers/amd_options.hpp"

namespace cuagent {

// The library is librocm_smi64.so (then .so.7, .so.6, .so.5, .so.1, then
// /opt/rocm/lib) unless `library` names one.
struct RocmSmiOptions : AmdDriverOptions {};

// Throws std::runtime_error with one clear message when the library is
// missing or fails to initialise, or a device has no KFD topology node;
// std::invalid_argument for an unknown device in `devices`.
std::unique_ptr<Driver> make_rocm_smi_driver(const RocmSmiOptions& options);

}  // namespace cuagent
