// Every counter the amdsmi driver can serve, declared once. Discovery
// declares those a GPU's library and gpu_metrics table provide; the read path
// writes them by id (common/counter_table.hpp). Names and levels match the
// rocm_smi backend's for the same hardware; AMD SMI adds memory activity and
// ECC counts.
#pragma once

#include <cstdint>

#include "common/counter_table.hpp"

namespace cuagent::amdsmi {

enum Counter : std::uint32_t {
    kActive, kGrActive, kDramActive, kMemUsed, kPower, kTemp, kSmClock, kMemClock, kThrottle, kPowerViolation,
    kThermalViolation, kEccCorrected, kEccUncorrected,
};

inline constexpr drivers::CounterDef kCounters[] = {
    {kActive, "active", "xcd", "ratio", "XCD graphics busy (gpu_metrics xcp_stats gfx_busy_acc, or gfx_busy_inst)",
     Aggregation::Mean, "sm_active"},
    // gr_active, dram_active and mem_used: partition level when the library shows one processor per partition.
    {kGrActive, "gr_active", kDeviceLevel, "ratio",
     "graphics engine busy (amdsmi_get_gpu_activity gfx_activity, or gpu_metrics average_gfx_activity)"},
    {kDramActive, "dram_active", kDeviceLevel, "ratio",
     "memory controller busy (amdsmi_get_gpu_activity umc_activity, or gpu_metrics average_umc_activity)"},
    {kMemUsed, "mem_used", kDeviceLevel, "bytes", "VRAM in use (amdsmi_get_gpu_memory_usage)", Aggregation::Last},
    {kPower, "power", kDeviceLevel, "W", "socket power"},
    {kTemp, "temp", kDeviceLevel, "C", "junction (hotspot) temperature"},
    {kSmClock, "sm_clock", kDeviceLevel, "Hz", "graphics clock"},
    {kMemClock, "mem_clock", kDeviceLevel, "Hz", "memory clock"},
    {kThrottle, "throttle", kDeviceLevel, "mask",
     "indep_throttle_status folded: 1 power, 2 current, 4 temperature, 8 other limits", Aggregation::BitOr},
    {kPowerViolation, "power_violation", kDeviceLevel, "ratio",
     "share of firmware ticks held at the package power limit (ppt_residency_acc)"},
    {kThermalViolation, "thermal_violation", kDeviceLevel, "ratio",
     "share of firmware ticks held at the socket thermal limit (socket_thm_residency_acc)"},
    {kEccCorrected, "ecc_corrected", kDeviceLevel, "count",
     "correctable ECC errors since boot (amdsmi_get_gpu_total_ecc_count)", Aggregation::Last},
    {kEccUncorrected, "ecc_uncorrected", kDeviceLevel, "count",
     "uncorrectable ECC errors since boot (amdsmi_get_gpu_total_ecc_count)", Aggregation::Last},
};
static_assert(drivers::rows_in_order(kCounters), "kCounters rows must follow the Counter enum");

}  // namespace cuagent::amdsmi
