// One physical AMD GPU as the rocm_smi driver sees it: what both AMD drivers
// know of it (amd_common/physical_gpu.hpp), the rsmi devices behind it (one
// per compute partition on ROCm >= 6.3) and which source feeds each counter.
#pragma once

#include <cstdint>
#include <vector>

#include "amd_common/physical_gpu.hpp"
#include "rocm_smi_abi.hpp"
#include "rocm_smi_counters.hpp"
#include "rocm_smi_library.hpp"

namespace cuagent {
struct RocmSmiOptions;
}

namespace cuagent::rocm {

// Where a device-level counter's value comes from, chosen once at discovery
// by probing each call: the first source that answers wins.
enum class PowerSource : std::uint8_t { None, SocketPower, PowerAverage, Table };
enum class TempSource : std::uint8_t { None, Junction, Edge, Table };
enum class ClockSource : std::uint8_t { None, Table, Call };

struct Gpu : amd::PhysicalGpu {
    Gpu() : PhysicalGpu(kCounters) {}

    std::vector<std::uint32_t> rsmi;  // partition order; rsmi[0] is the primary
    std::uint32_t table_device = 0;   // the rsmi device that answers the table for the GPU

    PowerSource power = PowerSource::None;
    TempSource temp = TempSource::None;
    ClockSource sm_clock = ClockSource::None;
    ClockSource mem_clock = ClockSource::None;
    FrequencyLayout frequency_layout = FrequencyLayout::Current;  // of rsmi_frequencies_t, probed
};

// Enumerates the library's devices, groups partitions into physical GPUs,
// reads their KFD topology and probes every counter source. Slow path.
std::vector<Gpu> discover(const Library& library, const RocmSmiOptions& options);

}  // namespace cuagent::rocm
