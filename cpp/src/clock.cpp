#include "cuagent/clock.hpp"

#include "cuagent/platform.hpp"

namespace cuagent {

namespace {
// Longest single sleep: how long stop() may wait for a sleeping thread.
constexpr std::int64_t kStopCheckNs = 50'000'000;
}  // namespace

void sleep_until_ns(std::int64_t deadline_ns) noexcept { platform::sleep_until_monotonic_ns(deadline_ns); }

void sleep_until_or_stop(std::int64_t deadline_ns, const std::atomic<bool>& stop) noexcept {
    for (std::int64_t now = monotonic_ns(); now < deadline_ns; now = monotonic_ns()) {
        if (deadline_ns - now <= kStopCheckNs) {
            sleep_until_ns(deadline_ns);  // the common case: one sleep, to the deadline itself
            return;
        }
        sleep_until_ns(now + kStopCheckNs);
        if (stop.load(std::memory_order_relaxed)) return;
    }
}

}  // namespace cuagent
