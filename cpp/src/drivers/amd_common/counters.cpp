#include "counters.hpp"

namespace cuagent::amd::counters {

void declare_limit_counters(drivers::CounterTable& table, DeviceDescription& device, const MetricsTable& metrics) {
    if (metrics.has_throttle()) table.declare(device, kThrottle);
    if (metrics.has_accumulators()) {
        table.declare(device, kPowerViolation);
        table.declare(device, kThermalViolation);
    }
}

TableTargets table_targets(const drivers::CounterTable& table, const FromTable& from) {
    static_assert(drivers::CounterTable::kAbsent == TableTargets::kNone, "an undeclared counter is not written");
    TableTargets t;
    if (from.gr_active) t.gr_active = table.offset(kGrActive);
    if (from.power) t.power = table.offset(kPower);
    if (from.temp) t.temp = table.offset(kTemp);
    if (from.sm_clock) t.sm_clock = table.offset(kSmClock);
    if (from.mem_clock) t.mem_clock = table.offset(kMemClock);
    t.throttle = table.offset(kThrottle);
    t.power_violation = table.offset(kPowerViolation);
    t.thermal_violation = table.offset(kThermalViolation);
    t.xcd_active = table.offset(kActive);
    return t;
}

}  // namespace cuagent::amd::counters
