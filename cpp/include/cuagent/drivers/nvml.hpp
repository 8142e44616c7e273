// The NVIDIA backend: device-level (and per-MIG-instance) counters from NVML
// and GPM, read at the 100 ms cadence at which the hardware refreshes them.
// libnvidia-ml is dlopen'd at run time, so this builds and imports on machines
// without the NVIDIA driver. NVML has no per-SM counter: the description
// carries the SM hierarchy (from the layout probe when it ran) and counters at
// "device" level, or "partition" level for GPM under MIG.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cuagent/driver.hpp"

namespace cuagent {

struct NvmlOptions {
    // Library to dlopen: a soname searched by the loader, or a path (tests
    // point it at a fake).
    std::string library = "libnvidia-ml.so.1";
    // NVML device indices to serve; empty = every device.
    std::vector<std::uint32_t> devices;
    // Read GPM (Hopper and later). Off: those counters are absent.
    bool gpm = true;
    // Consecutive NOT_SUPPORTED answers after which a counter is no longer asked.
    std::uint32_t unsupported_limit = 3;

    // SM layout probe (see cuagent/drivers/sm_layout.hpp): runs once per device at
    // construction when enabled, needs libcuda and a device without MIG.
    bool probe_layout = false;
    std::string cuda_library = "libcuda.so.1";
    std::string probe_cache_dir;  // empty: no cache
};

// Throws std::runtime_error with one clear message when the library cannot be
// loaded or initialised (naming it and the dlerror / NVML error), and
// std::invalid_argument for a device index that does not exist. `notes`
// receives one line per thing worth logging (a skipped probe, a counter left
// out and why).
std::unique_ptr<Driver> make_nvml_driver(const NvmlOptions& options,
                                         std::vector<std::string>* notes = nullptr);

// A whole GPU's SMs (NVML counts them only for MIG handles), sm_count.cpp:
// FP32 cores per SM of a compute capability (0: not known), the SMs that NVML's
// core count makes (0 when the capability is unknown or the cores are no whole
// number of SMs), and the model table's count (0 when the model is not in it;
// names match as whole words).
std::uint32_t nvidia_cores_per_sm(int major, int minor);
std::uint32_t nvidia_sm_count_from_cores(std::uint32_t cores, int major, int minor);
std::uint32_t nvidia_sm_count_for_model(const std::string& model);

}  // namespace cuagent
