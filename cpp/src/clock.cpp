#include "cuagent/clock.hpp"

#include <cerrno>

namespace cuagent {

void sleep_until_ns(std::int64_t deadline_ns) noexcept {
    timespec ts;
    ts.tv_sec = static_cast<time_t>(deadline_ns / 1000000000);
    ts.tv_nsec = static_cast<long>(deadline_ns % 1000000000);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {}
}

}  // namespace cuagent
