#include "metrics_table.hpp"

namespace cuagent::amd {

MetricsTable::MetricsTable() : buffer_(new unsigned char[metrics::kBufferBytes]) {}

// Tables 1.4+ give the socket's current power (and one clock per XCC); older
// ones the average.
bool MetricsTable::has_power() const {
    return has(revision() >= 4 ? metrics::kCurrentSocketPower : metrics::kAverageSocketPower);
}

bool MetricsTable::has_graphics_clock() const {
    return has(revision() >= 4 ? metrics::kCurrentGfxclks : metrics::kCurrentGfxclk);
}

bool MetricsTable::has_throttle() const {
    return present_ && revision() <= 5 && layout_.size > metrics::kIndepThrottleStatus &&
           metrics::u64_at(buffer_.get(), metrics::kIndepThrottleStatus) != metrics::kNoData64;
}

bool MetricsTable::has_accumulators() const {
    return present_ && metrics::has_accumulators(buffer_.get(), layout_);
}

bool MetricsTable::has_xcd_activity(const XcdShape& shape) const {
    return present_ && metrics::has_xcd_activity(buffer_.get(), layout_, shape.xcps, shape.xccs_per_xcp);
}

void MetricsTable::configure(const XcdShape& shape, std::uint32_t xccs_total, const TableTargets& targets) {
    decoder_.configure(layout_, shape.xcps, shape.xccs_per_xcp, xccs_total, targets);
}

}  // namespace cuagent::amd
