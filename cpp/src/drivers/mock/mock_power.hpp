// Device-level physics of a mock GPU: clock governor with a power cap, drawn
// and reported power, two-pole thermal lag, throttle reasons. Advanced once per
// simulated millisecond from the load the block scheduler produced in it.
#pragma once

#include <cstdint>
#include <vector>

#include "mock_calibration.hpp"

namespace cuagent::mock {

// Means over all units and over one tick of simulated time.
struct TickLoad {
    double active = 0;  // fraction of units with a warp resident
    double tensor = 0;  // mean tensor-pipe activity
    double issue = 0;   // mean issue-slot use
    double dram = 0;    // DRAM bandwidth in use, 0..1
};

class PowerModel {
public:
    PowerModel(const PowerCalibration& cal, double tick_s);

    void tick(const TickLoad& load, std::int64_t now_ns) noexcept;
    // Put the slow thermal pole at its steady state for the power drawn now
    // (used after warm-up: the device has been running its workload a while).
    void settle() noexcept;
    // Back to a parked, cool, idle device (after a simulated bus reset).
    void reset() noexcept;

    double reported_power_w() const { return window_sum_ / static_cast<double>(window_.size()); }
    double temp_c() const;
    double sm_clock_hz() const { return clock_hz_; }
    std::uint32_t throttle_mask() const { return throttle_; }

private:
    double static_w(double f) const;
    double clock_ratio(double f) const;  // (f / f_max)^exponent
    double capped_clock(double dynamic_w) const;

    PowerCalibration cal_;
    double tick_s_;
    std::vector<double> bin_hz_, bin_static_w_, bin_ratio_;  // floor .. max, ascending
    std::vector<double> window_;  // drawn power per tick, ring (boxcar report)
    std::size_t window_head_ = 0;
    double window_sum_ = 0;
    double load_alpha_, fast_alpha_, slow_alpha_;
    double smoothed_dynamic_w_ = 0;
    std::int64_t last_busy_ns_;
    double clock_hz_;
    std::uint32_t throttle_;
    double drawn_w_;
    double fast_w_, slow_w_;  // thermal lags of the drawn power
};

}  // namespace cuagent::mock
