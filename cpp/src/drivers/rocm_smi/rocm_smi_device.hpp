// One physical AMD GPU as the rocm_smi driver sees it: its description, the
// rsmi devices behind it (one per compute partition on ROCm >= 6.3), which
// source feeds each counter, where each counter sits in the sample (its
// CounterTable), and its gpu_metrics table (amd_common/), which carries the
// table state from one read to the next.
#pragma once

#include <cstdint>
#include <vector>

#include "amd_common/compute_topology.hpp"
#include "amd_common/metrics_table.hpp"
#include "common/counter_table.hpp"
#include "cuagent/topology.hpp"
#include "rocm_smi_abi.hpp"
#include "rocm_smi_counters.hpp"
#include "rocm_smi_library.hpp"

namespace cuagent {
struct RocmSmiOptions;
}

namespace cuagent::rocm {

namespace metrics = amd::metrics;

// Where a device-level counter's value comes from, chosen once at discovery
// by probing each call: the first source that answers wins.
enum class PowerSource : std::uint8_t { None, SocketPower, PowerAverage, Table };
enum class TempSource : std::uint8_t { None, Junction, Edge, Table };
enum class ClockSource : std::uint8_t { None, Table, Call };

struct Gpu {
    DeviceDescription desc;
    std::vector<std::uint32_t> rsmi;  // partition order; rsmi[0] is the primary
    bool per_partition = false;       // gr_active / mem_used read per partition device
    amd::XcdShape shape;              // XCPs in the table (compute partitions), XCCs in each

    amd::MetricsTable table;          // read-to-read state: the sampler thread only
    std::uint32_t table_device = 0;   // the rsmi device that answers the table for the GPU

    PowerSource power = PowerSource::None;
    TempSource temp = TempSource::None;
    ClockSource sm_clock = ClockSource::None;
    ClockSource mem_clock = ClockSource::None;
    FrequencyLayout frequency_layout = FrequencyLayout::Current;  // of rsmi_frequencies_t, probed
    drivers::CounterTable counters{kCounters};
};

// Enumerates the library's devices, groups partitions into physical GPUs,
// reads their KFD topology and probes every counter source. Slow path.
std::vector<Gpu> discover(const Library& library, const RocmSmiOptions& options);

}  // namespace cuagent::rocm
