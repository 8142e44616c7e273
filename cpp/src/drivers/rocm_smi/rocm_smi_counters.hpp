// Every counter the rocm_smi driver can serve, declared once. Discovery
// declares those a GPU's library and gpu_metrics table provide; the read path
// writes them by id (common/counter_table.hpp).
#pragma once

#include <cstdint>

#include "common/counter_table.hpp"

namespace cuagent::rocm {

enum Counter : std::uint32_t {
    kActive, kGrActive, kMemUsed, kPower, kTemp, kSmClock, kMemClock, kThrottle, kPowerViolation,
    kThermalViolation,
};

inline constexpr drivers::CounterDef kCounters[] = {
    {kActive, "active", "xcd", "ratio", "XCD graphics busy (gpu_metrics xcp_stats gfx_busy_acc, or gfx_busy_inst)",
     Aggregation::Mean, "sm_active"},
    // gr_active and mem_used: partition level when the library shows one device per partition.
    {kGrActive, "gr_active", kDeviceLevel, "ratio", "graphics engine busy (rsmi_dev_busy_percent_get)"},
    {kMemUsed, "mem_used", kDeviceLevel, "bytes", "VRAM in use (rsmi_dev_memory_usage_get)", Aggregation::Last},
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
};
static_assert(drivers::rows_in_order(kCounters), "kCounters rows must follow the Counter enum");

}  // namespace cuagent::rocm
