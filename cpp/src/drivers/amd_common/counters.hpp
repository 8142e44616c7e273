// The counters both AMD drivers serve (rocm_smi, amdsmi), under the same ids:
// the first rows of each driver's counter table (common/counter_table.hpp), so
// the same hardware publishes the same names, levels and units on either
// backend. The rows whose text is the same on both are defined here once;
// gr_active and mem_used name the library call that feeds them, so each driver
// writes its own. Also what both declare from the gpu_metrics table alone, and
// where the table's decoder writes.
#pragma once

#include <cstdint>

#include "common/counter_table.hpp"
#include "gpu_metrics_decoder.hpp"
#include "metrics_table.hpp"

namespace cuagent::amd::counters {

enum CommonCounter : std::uint32_t {
    kActive, kGrActive, kMemUsed, kPower, kTemp, kSmClock, kMemClock, kThrottle, kPowerViolation,
    kThermalViolation,
    kCommonCounters,  // how many: the id of a driver's first counter of its own
};

inline constexpr drivers::CounterDef kActiveRow{
    kActive, "active", "xcd", "ratio", "XCD graphics busy (gpu_metrics xcp_stats gfx_busy_acc, or gfx_busy_inst)",
    Aggregation::Mean, "sm_active"};
inline constexpr drivers::CounterDef kPowerRow{kPower, "power", kDeviceLevel, "W", "socket power"};
inline constexpr drivers::CounterDef kTempRow{kTemp, "temp", kDeviceLevel, "C", "junction (hotspot) temperature"};
inline constexpr drivers::CounterDef kSmClockRow{kSmClock, "sm_clock", kDeviceLevel, "Hz", "graphics clock"};
inline constexpr drivers::CounterDef kMemClockRow{kMemClock, "mem_clock", kDeviceLevel, "Hz", "memory clock"};
inline constexpr drivers::CounterDef kThrottleRow{
    kThrottle, "throttle", kDeviceLevel, "mask",
    "indep_throttle_status folded: 1 power, 2 current, 4 temperature, 8 other limits", Aggregation::BitOr};
inline constexpr drivers::CounterDef kPowerViolationRow{
    kPowerViolation, "power_violation", kDeviceLevel, "ratio",
    "share of firmware ticks held at the package power limit (ppt_residency_acc)"};
inline constexpr drivers::CounterDef kThermalViolationRow{
    kThermalViolation, "thermal_violation", kDeviceLevel, "ratio",
    "share of firmware ticks held at the socket thermal limit (socket_thm_residency_acc)"};

// Declares the counters only the table gives, after a GPU's device counters:
// throttle where the table carries indep_throttle_status, the power and
// thermal violation ratios where it carries the 1.6+ accumulators.
void declare_limit_counters(drivers::CounterTable& table, DeviceDescription& device, const MetricsTable& metrics);

// Which of a GPU's device counters its driver takes from the table rather
// than from a library call (chosen at discovery).
struct FromTable {
    bool gr_active = false;
    bool power = false;
    bool temp = false;
    bool sm_clock = false;
    bool mem_clock = false;
};

// Where the decoder writes: the counters `from` names, and those only the
// table gives (active, throttle, the violations), at their offsets in `table`
// (kNone for one not declared).
TableTargets table_targets(const drivers::CounterTable& table, const FromTable& from);

}  // namespace cuagent::amd::counters
