#include "cuagent/clock.hpp"

#include "cuagent/platform.hpp"

namespace cuagent {

void sleep_until_ns(std::int64_t deadline_ns) noexcept { platform::sleep_until_monotonic_ns(deadline_ns); }

}  // namespace cuagent
