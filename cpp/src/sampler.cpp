#include "cuagent/sampler.hpp"

#include <sys/prctl.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>

#include "cuagent/clock.hpp"
#include "cuagent/sample_layout.hpp"

namespace cuagent {

namespace {
constexpr std::int64_t kLostRetryNs = 1'000'000'000;    // try a lost device again once a second
constexpr std::int64_t kErrorEventGapNs = 10'000'000'000;  // at most one backend_error per device per 10 s
// Longest single sleep: stop() is seen within this even when the next due tick
// is far off (a low rate_hz, or only devices read every 100 ms or more), since
// stop() joins this thread and would otherwise wait out the whole sleep.
constexpr std::int64_t kStopCheckNs = 50'000'000;

// Sleeps until `deadline_ns`, or returns early once `stop` is set.
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
}  // namespace

Sampler::Sampler(Driver& driver, std::vector<std::unique_ptr<SlotRing>>& rings, SlotRing& events,
                 DeviceCounters* device_counters, SamplerCounters& counters, std::int64_t period_ns)
    : driver_(driver),
      rings_(rings),
      events_(events),
      device_counters_(device_counters),
      counters_(counters),
      period_ns_(period_ns) {
    const std::size_t n = driver.device_count();
    for (std::size_t d = 0; d < n; ++d) {
        const std::int64_t interval = driver.min_read_interval_ns(d);
        stride_.push_back(std::max<std::int64_t>(1, (interval + period_ns - 1) / period_ns));
        values_.push_back(SampleLayout(driver.device(d)).values());
    }
    next_due_.assign(n, 0);
    lost_retry_ns_.assign(n, 0);
    last_error_event_ns_.assign(n, std::numeric_limits<std::int64_t>::min() / 2);
}

void Sampler::emit(std::size_t d, EventType type, const char* detail, std::int64_t now_ns) noexcept {
    void* slot = events_.try_claim();
    if (slot == nullptr) {
        counters_.events_dropped.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    auto* event = static_cast<EngineEvent*>(slot);
    event->t_ns = now_ns;
    event->device = static_cast<std::uint32_t>(d);
    event->type = type;
    std::snprintf(event->detail, sizeof event->detail, "%s", detail ? detail : "");
    events_.publish();
}

void Sampler::read_device(std::size_t d, std::int64_t now_ns) noexcept {
    DeviceCounters& dc = device_counters_[d];
    const bool lost = dc.lost.load(std::memory_order_relaxed);
    if (lost && now_ns < lost_retry_ns_[d]) return;

    void* slot = rings_[d]->try_claim();
    if (slot == nullptr) {  // the aggregator fell behind: drop rather than wait
        dc.drops.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    float* values = sample_values(slot);
    std::fill(values, values + values_[d], std::numeric_limits<float>::quiet_NaN());
    char detail[sizeof(EngineEvent::detail)] = {};
    const std::int64_t t = monotonic_ns();
    static_cast<SampleHeader*>(slot)->t_ns = t;
    const ReadStatus status = driver_.read(d, t, values, detail, sizeof detail);

    switch (status) {
        case ReadStatus::Ok:
            rings_[d]->publish();
            dc.samples.fetch_add(1, std::memory_order_relaxed);
            if (lost) {
                dc.lost.store(false, std::memory_order_relaxed);
                emit(d, EventType::DeviceBack, detail, t);
            }
            break;
        case ReadStatus::Error: {
            const auto errors = dc.read_errors.fetch_add(1, std::memory_order_relaxed) + 1;
            if (t - last_error_event_ns_[d] >= kErrorEventGapNs) {
                last_error_event_ns_[d] = t;
                char text[sizeof(EngineEvent::detail)];
                std::snprintf(text, sizeof text, "read failed (%llu so far): %.80s",
                              static_cast<unsigned long long>(errors), detail[0] ? detail : "no detail");
                emit(d, EventType::BackendError, text, t);
            }
            break;
        }
        case ReadStatus::Lost:
            if (!lost) {
                dc.lost.store(true, std::memory_order_relaxed);
                emit(d, EventType::DeviceLost, detail[0] ? detail : "device lost", t);
            }
            lost_retry_ns_[d] = t + kLostRetryNs;
            break;
    }
}

void Sampler::run(const std::atomic<bool>& stop, std::int64_t t0_ns, std::int64_t grid_origin_ns) noexcept {
    // The default 50 us timer slack would dominate jitter at 10 kHz.
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    driver_.on_sampler_start();
    const std::size_t n = stride_.size();
    // t0 lies on the period grid counted from grid_origin_ns (the window grid).
    // A device read every `stride` ticks is read on the multiples of
    // stride * period on that grid, so a device refreshed every 100 ms with
    // 100 ms windows is read right at each window end, which completes the
    // window at once instead of whenever its phase happens to fall.
    const std::int64_t ticks_since_origin = (t0_ns - grid_origin_ns) / period_ns_;
    for (std::size_t d = 0; d < n; ++d)
        next_due_[d] = (stride_[d] - ticks_since_origin % stride_[d]) % stride_[d];
    std::int64_t k = 0;
    while (!stop.load(std::memory_order_relaxed)) {
        const std::int64_t deadline = t0_ns + k * period_ns_;
        sleep_until_or_stop(deadline, stop);
        if (stop.load(std::memory_order_relaxed)) break;
        const std::int64_t woke = monotonic_ns();
        counters_.jitter.record(woke - deadline);

        std::int64_t next = std::numeric_limits<std::int64_t>::max();
        for (std::size_t d = 0; d < n; ++d) {
            if (next_due_[d] <= k) {
                read_device(d, woke);
                next_due_[d] = k + stride_[d];
            }
            next = std::min(next, next_due_[d]);
        }
        counters_.ticks.fetch_add(1, std::memory_order_relaxed);
        // Release: the ring slots published in this tick happen-before this store.
        counters_.completed_tick_start_ns.store(woke, std::memory_order_release);
        const std::int64_t done = monotonic_ns();

        if (n == 0) next = k + 1;
        // Overrun: the next due tick's deadline has already passed. Skip to the
        // first tick still in the future instead of running the missed ones
        // back to back, and count the due ticks that were skipped.
        const std::int64_t first_future = (done - t0_ns) / period_ns_ + 1;
        if (first_future > next) {
            std::int64_t skipped = 0;
            for (std::size_t d = 0; d < n; ++d) {
                if (next_due_[d] < first_future) {
                    skipped = std::max(skipped, (first_future - next_due_[d] + stride_[d] - 1) / stride_[d]);
                    next_due_[d] = first_future;
                }
            }
            counters_.skipped_ticks.fetch_add(static_cast<std::uint64_t>(n ? skipped : first_future - next),
                                              std::memory_order_relaxed);
            next = first_future;
        }
        k = next;
    }
    driver_.on_sampler_stop();
}

}  // namespace cuagent
