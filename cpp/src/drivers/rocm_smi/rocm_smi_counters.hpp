// Every counter the rocm_smi driver can serve: the counters both AMD drivers
// serve (amd_common/counters.hpp), no more. Discovery declares those a GPU's
// library and gpu_metrics table provide; the read path writes them by id
// (common/counter_table.hpp).
#pragma once

#include <iterator>

#include "amd_common/counters.hpp"
#include "common/counter_table.hpp"

namespace cuagent::rocm {

using namespace amd::counters;

inline constexpr drivers::CounterDef kCounters[] = {
    kActiveRow,
    // gr_active and mem_used: partition level when the library shows one device per partition.
    {kGrActive, "gr_active", kDeviceLevel, "ratio", "graphics engine busy (rsmi_dev_busy_percent_get)"},
    {kMemUsed, "mem_used", kDeviceLevel, "bytes", "VRAM in use (rsmi_dev_memory_usage_get)", Aggregation::Last},
    kPowerRow, kTempRow, kSmClockRow, kMemClockRow, kThrottleRow, kPowerViolationRow, kThermalViolationRow,
};
static_assert(drivers::rows_in_order(kCounters), "kCounters rows must follow the counter ids");
static_assert(std::size(kCounters) == kCommonCounters, "rocm_smi serves the common AMD counters");

}  // namespace cuagent::rocm
