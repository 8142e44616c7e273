// One physical AMD GPU as the rocm_smi driver sees it: its description, the
// rsmi devices behind it (one per compute partition on ROCm >= 6.3), which
// source feeds each counter, where each counter sits in the sample (its
// CounterTable), and the state carried from one read to the next
// (accumulators, table timestamp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cuagent/topology.hpp"
#include "common/counter_table.hpp"
#include "rocm_smi_abi.hpp"
#include "rocm_smi_counters.hpp"
#include "rocm_smi_library.hpp"
#include "rocm_smi_metrics.hpp"

namespace cuagent {
struct RocmSmiOptions;
}

namespace cuagent::rocm {

inline constexpr std::size_t kMaxXcd = metrics::kMaxXcp * metrics::kMaxXcc;

// Where a device-level counter's value comes from, chosen once at discovery
// by probing each call: the first source that answers wins.
enum class PowerSource : std::uint8_t { None, SocketPower, PowerAverage, Table };
enum class TempSource : std::uint8_t { None, Junction, Edge, Table };
enum class ClockSource : std::uint8_t { None, Table, Call };

struct Gpu {
    DeviceDescription desc;
    std::vector<std::uint32_t> rsmi;  // partition order; rsmi[0] is the primary
    bool per_partition = false;       // gr_active / mem_used read per partition device

    // gpu_metrics
    bool has_table = false;
    std::uint32_t table_device = 0;   // the rsmi device that answers for the GPU
    metrics::PublicLayout layout{0, 0, 0, 0};
    std::uint32_t xcp_count = 1;      // XCPs in the table (compute partitions)
    std::uint32_t xcc_per_xcp = 1;

    PowerSource power = PowerSource::None;
    TempSource temp = TempSource::None;
    ClockSource sm_clock = ClockSource::None;
    ClockSource mem_clock = ClockSource::None;
    FrequencyLayout frequency_layout = FrequencyLayout::Current;  // of rsmi_frequencies_t, probed
    drivers::CounterTable counters{kCounters};

    // Read-to-read state (sampler thread only).
    std::unique_ptr<unsigned char[]> table;  // metrics::kBufferBytes
    std::uint64_t last_firmware_timestamp = 0;
    bool seen_table = false;
    std::uint64_t last_accumulation = metrics::kNoData64;
    std::uint64_t last_ppt = metrics::kNoData64;
    std::uint64_t last_thm = metrics::kNoData64;
    std::uint64_t last_busy_acc[kMaxXcd];
};

// Enumerates the library's devices, groups partitions into physical GPUs,
// reads their KFD topology and probes every counter source. Slow path.
std::vector<Gpu> discover(const Library& library, const RocmSmiOptions& options);

}  // namespace cuagent::rocm
