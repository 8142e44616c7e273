// The engine's clocks: CLOCK_MONOTONIC for deadlines and sample times (never
// jumps), CLOCK_REALTIME only to label finished windows in Unix time.
#pragma once

#include <cstdint>
#include <ctime>

namespace cuagent {

inline std::int64_t monotonic_ns() noexcept {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

inline std::int64_t realtime_ns() noexcept {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// Sleep until an absolute CLOCK_MONOTONIC time (resumes after signals).
void sleep_until_ns(std::int64_t deadline_ns) noexcept;

}  // namespace cuagent
