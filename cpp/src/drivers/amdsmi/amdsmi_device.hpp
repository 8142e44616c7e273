// One physical AMD GPU as the amdsmi driver sees it: what both AMD drivers
// know of it (amd_common/physical_gpu.hpp), the processor handles behind it
// (one per compute partition), which source feeds each counter and the ECC
// counts it carries between re-reads.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "amd_common/physical_gpu.hpp"
#include "amdsmi_abi.hpp"
#include "amdsmi_counters.hpp"
#include "amdsmi_library.hpp"

namespace cuagent {
struct AmdSmiOptions;
}

namespace cuagent::amdsmi {

// Where a counter's value comes from, chosen once at discovery by probing:
// the gpu_metrics table first (one call feeds them all), the dedicated call
// where the table lacks the field.
enum class Source : std::uint8_t { None, Table, Call };

struct Gpu : amd::PhysicalGpu {
    Gpu() : PhysicalGpu(kCounters) {}

    std::vector<Handle> processors;    // partition order; processors[0] is the primary
    Handle table_processor = nullptr;  // the processor that answers the table for the GPU

    Source activity = Source::None;    // gr_active, dram_active
    Source power = Source::None;
    Source temp = Source::None;
    std::uint32_t temp_sensor = kTempHotspot;  // for Source::Call
    Source sm_clock = Source::None;
    Source mem_clock = Source::None;

    // ECC counts between re-reads (sampler thread only).
    std::int64_t ecc_due_ns = std::numeric_limits<std::int64_t>::min();
    float ecc_corrected = std::numeric_limits<float>::quiet_NaN();
    float ecc_uncorrected = std::numeric_limits<float>::quiet_NaN();
};

// Enumerates sockets and processors, groups partitions into physical GPUs,
// reads their KFD topology and probes every counter source. Slow path.
std::vector<Gpu> discover(const Library& library, const AmdSmiOptions& options, std::vector<std::string>* notes);

}  // namespace cuagent::amdsmi
