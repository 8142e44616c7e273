#include "mock_power.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace cuagent::mock {

PowerModel::PowerModel(const PowerCalibration& cal, double tick_s)
    : cal_(cal),
      tick_s_(tick_s),
      load_alpha_(1.0 - std::exp(-tick_s / cal.load_smooth_s)),
      fast_alpha_(1.0 - std::exp(-tick_s / cal.tau_fast_s)),
      slow_alpha_(1.0 - std::exp(-tick_s / cal.tau_slow_s)),
      last_busy_ns_(std::numeric_limits<std::int64_t>::min() / 2),
      clock_hz_(cal.f_idle_hz),
      throttle_(kThrottleGpuIdle),
      drawn_w_(cal.idle_w),
      fast_w_(cal.idle_w),
      slow_w_(cal.idle_w) {
    // Bins counted down from the boost clock, so that f_max itself is a bin.
    const auto bins = static_cast<std::size_t>((cal.f_max_hz - cal.f_floor_hz) / cal.f_step_hz) + 1;
    for (std::size_t i = bins; i-- > 0;) {
        const double f = cal.f_max_hz - static_cast<double>(i) * cal.f_step_hz;
        bin_hz_.push_back(f);
        bin_static_w_.push_back(static_w(f));
        bin_ratio_.push_back(clock_ratio(f));
    }
    const auto n = static_cast<std::size_t>(std::lround(cal.power_report_s / tick_s));
    window_.assign(n > 0 ? n : 1, cal.idle_w);
    window_sum_ = cal.idle_w * static_cast<double>(window_.size());
}

double PowerModel::static_w(double f) const {
    const double x = (f - cal_.f_idle_hz) / (cal_.f_max_hz - cal_.f_idle_hz);
    return cal_.idle_w + (cal_.static_fmax_w - cal_.idle_w) * x;
}

double PowerModel::clock_ratio(double f) const {
    return std::pow(f / cal_.f_max_hz, cal_.clock_exponent);
}

// Highest clock bin whose power stays under the cap for this load; the floor
// bin when even that is over (the hardware would then slow further, rarely).
double PowerModel::capped_clock(double dynamic_w) const {
    std::size_t lo = 0, hi = bin_hz_.size();  // answer in [lo, hi)
    while (hi - lo > 1) {
        const std::size_t mid = (lo + hi) / 2;
        if (bin_static_w_[mid] + dynamic_w * bin_ratio_[mid] <= cal_.cap_w) lo = mid;
        else hi = mid;
    }
    return bin_hz_[lo];
}

void PowerModel::tick(const TickLoad& load, std::int64_t now_ns) noexcept {
    const double dynamic_w = cal_.k_active_w * load.active + cal_.k_tensor_w * load.tensor +
                             cal_.k_issue_w * load.issue + cal_.k_dram_w * load.dram;
    smoothed_dynamic_w_ += (dynamic_w - smoothed_dynamic_w_) * load_alpha_;
    if (load.active > 0) last_busy_ns_ = now_ns;

    const auto hold_ns = static_cast<std::int64_t>(cal_.idle_hold_s * 1e9);
    if (now_ns - last_busy_ns_ < hold_ns) {
        // Busy, or recently: boost clock unless the cap pulls it down.
        clock_hz_ = capped_clock(smoothed_dynamic_w_);
        throttle_ = clock_hz_ < cal_.f_max_hz ? kThrottleSwPowerCap : 0u;
        drawn_w_ = static_w(clock_hz_) + dynamic_w * clock_ratio(clock_hz_);
    } else {
        clock_hz_ = cal_.f_idle_hz;
        throttle_ = kThrottleGpuIdle;
        drawn_w_ = cal_.idle_w + dynamic_w * clock_ratio(clock_hz_);
    }

    window_sum_ += drawn_w_ - window_[window_head_];
    window_[window_head_] = drawn_w_;
    if (++window_head_ == window_.size()) {
        // Re-sum once per lap so rounding in the running sum cannot drift.
        window_head_ = 0;
        double sum = 0;
        for (double w : window_) sum += w;
        window_sum_ = sum;
    }
    fast_w_ += (drawn_w_ - fast_w_) * fast_alpha_;
    slow_w_ += (drawn_w_ - slow_w_) * slow_alpha_;
}

void PowerModel::settle() noexcept {
    fast_w_ = slow_w_ = reported_power_w();
}

void PowerModel::reset() noexcept {
    std::fill(window_.begin(), window_.end(), cal_.idle_w);
    window_head_ = 0;
    window_sum_ = cal_.idle_w * static_cast<double>(window_.size());
    smoothed_dynamic_w_ = 0;
    last_busy_ns_ = std::numeric_limits<std::int64_t>::min() / 2;
    clock_hz_ = cal_.f_idle_hz;
    throttle_ = kThrottleGpuIdle;
    drawn_w_ = fast_w_ = slow_w_ = cal_.idle_w;
}

double PowerModel::temp_c() const {
    return cal_.temp_idle_c + cal_.r_fast_c_per_w * (fast_w_ - cal_.idle_w) +
           cal_.r_slow_c_per_w * (slow_w_ - cal_.idle_w);
}

}  // namespace cuagent::mock
