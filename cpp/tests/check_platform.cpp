// The platform layer, whichever implementation this build has (Linux's, or the
// POSIX stand-ins under -DCUAGENT_PORTABLE=ON): a Notifier's descriptor is
// readable exactly between notify() and drain(), notify() never blocks however
// often nobody drains (a pipe fills at 64 KiB), one thread's notify() wakes a
// poller in another, and a sleep never returns before its deadline; a
// Doorbell's sleeper returns at once when it has rung since the count it was
// given, never before its deadline otherwise, and (where it wakes early) a
// ring from another thread wakes it.
#include <poll.h>

#include <cstdio>
#include <initializer_list>
#include <thread>

#include "check.hpp"
#include "cuagent/clock.hpp"
#include "cuagent/platform.hpp"

using namespace cuagent;

namespace {
bool readable(int fd, int timeout_ms = 0) {
    pollfd p{fd, POLLIN, 0};
    return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}
}  // namespace

int main() {
    platform::Notifier n;
    CHECK(!readable(n.fd()), "readable before any notify()");
    n.notify();
    CHECK(readable(n.fd()), "not readable after notify()");
    n.drain();
    CHECK(!readable(n.fd()), "still readable after drain()");

    for (int i = 0; i < 200'000; ++i) n.notify();  // would block on a full blocking pipe
    CHECK(readable(n.fd()), "not readable after many notify()");
    n.drain();
    CHECK(!readable(n.fd()), "still readable after draining many notify()");

    std::thread other([&] { n.notify(); });
    CHECK(readable(n.fd(), 10'000), "a notify() from another thread never woke the poller");
    other.join();
    n.drain();

    for (std::int64_t step : {0LL, 1'000LL, 200'000LL, 3'000'000LL}) {
        const std::int64_t deadline = monotonic_ns() + step;
        sleep_until_ns(deadline);
        CHECK(monotonic_ns() >= deadline, "woke %lld ns before the deadline", (long long)(deadline - monotonic_ns()));
    }
    sleep_until_ns(monotonic_ns() - 1'000'000);  // a deadline in the past returns at once

    platform::Doorbell bell;
    const std::uint32_t before = bell.rung();
    for (std::int64_t step : {0LL, 200'000LL, 3'000'000LL}) {
        const std::int64_t deadline = monotonic_ns() + step;
        bell.sleep_until(deadline, before);
        CHECK(monotonic_ns() >= deadline, "unrung: woke %lld ns before the deadline", (long long)(deadline - monotonic_ns()));
    }
    bell.ring();
    CHECK(bell.rung() != before, "ring() left the count as it was");
    // Rung since `before`: no sleep at all (a 60 s deadline would end the check as a failure).
    std::int64_t far = monotonic_ns() + 60'000'000'000LL;
    bell.sleep_until(far, before);
    CHECK(monotonic_ns() < far, "slept through a ring that came before the sleep");
    if (platform::Doorbell::wakes_early()) {
        // The sleeper waits on the current count; the other thread rings it many times
        // (a ring that comes before the sleep begins must not be lost either).
        const std::uint32_t seen = bell.rung();
        std::thread ringer([&] {
            for (int i = 0; i < 100; ++i) {
                bell.ring();
                std::this_thread::yield();
            }
        });
        far = monotonic_ns() + 60'000'000'000LL;
        bell.sleep_until(far, seen);
        CHECK(monotonic_ns() < far, "a ring from another thread never woke the sleeper");
        ringer.join();
    }
    platform::set_fine_timer_slack();
    std::printf("check_platform (%s): passed\n", platform::name());
    return 0;
}
