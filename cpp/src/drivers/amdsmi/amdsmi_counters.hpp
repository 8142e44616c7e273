// Every counter the amdsmi driver can serve: the counters both AMD drivers
// serve (amd_common/counters.hpp), then AMD SMI's own: memory activity and ECC
// counts. Discovery declares those a GPU's library and gpu_metrics table
// provide; the read path writes them by id (common/counter_table.hpp).
#pragma once

#include <cstdint>

#include "amd_common/counters.hpp"
#include "common/counter_table.hpp"

namespace cuagent::amdsmi {

using namespace amd::counters;

enum AmdSmiCounter : std::uint32_t { kDramActive = kCommonCounters, kEccCorrected, kEccUncorrected };

inline constexpr drivers::CounterDef kCounters[] = {
    kActiveRow,
    // gr_active, dram_active and mem_used: partition level when the library shows one processor per partition.
    {kGrActive, "gr_active", kDeviceLevel, "ratio",
     "graphics engine busy (amdsmi_get_gpu_activity gfx_activity, or gpu_metrics average_gfx_activity)"},
    {kMemUsed, "mem_used", kDeviceLevel, "bytes", "VRAM in use (amdsmi_get_gpu_memory_usage)", Aggregation::Last},
    kPowerRow, kTempRow, kSmClockRow, kMemClockRow, kThrottleRow, kPowerViolationRow, kThermalViolationRow,
    {kDramActive, "dram_active", kDeviceLevel, "ratio",
     "memory controller busy (amdsmi_get_gpu_activity umc_activity, or gpu_metrics average_umc_activity)"},
    {kEccCorrected, "ecc_corrected", kDeviceLevel, "count",
     "correctable ECC errors since boot (amdsmi_get_gpu_total_ecc_count)", Aggregation::Last},
    {kEccUncorrected, "ecc_uncorrected", kDeviceLevel, "count",
     "uncorrectable ECC errors since boot (amdsmi_get_gpu_total_ecc_count)", Aggregation::Last},
};
static_assert(drivers::rows_in_order(kCounters), "kCounters rows must follow the counter ids");

}  // namespace cuagent::amdsmi
