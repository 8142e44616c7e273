#include "cuagent/source_reader.hpp"

#include <algorithm>
#include <limits>

#include "cuagent/clock.hpp"
#include "cuagent/platform.hpp"

namespace cuagent {

SourceReader::SourceReader(Driver& driver, std::size_t index, std::uint32_t values, std::int64_t period_ns,
                           std::int64_t stride, std::size_t capacity, const std::atomic<bool>* device_lost)
    : driver_(driver),
      index_(index),
      values_(values),
      period_ns_(period_ns),
      stride_(stride),
      device_lost_(device_lost),
      results_(kReadResultBytes + values * sizeof(float), capacity) {}

ReadStatus SourceReader::read_once() noexcept {
    void* slot = results_.try_claim();
    if (slot == nullptr) {  // the sampler has not relayed the last ones: drop rather than wait
        drops_.fetch_add(1, std::memory_order_relaxed);
        return ReadStatus::Error;
    }
    auto* result = static_cast<ReadResult*>(slot);
    float* values = result_values(slot);
    std::fill(values, values + values_, std::numeric_limits<float>::quiet_NaN());
    result->detail[0] = '\0';
    // The start is published before the sample's stamp is taken: a sampler tick that does
    // not see it loaded in_flight_since() before this store (both seq_cst), so the stamp,
    // read after it, is no earlier than that tick's wake-up, and the window the sample falls
    // in was not declared complete by that tick (sampler.cpp). Stamped first and published
    // after, a read preempted in between could have its window finished without it.
    // It also releases: a sampler that sees this start time has every earlier result.
    in_flight_since_.store(monotonic_ns(), std::memory_order_seq_cst);
    const std::int64_t t = monotonic_ns();
    result->t_ns = t;
    const ReadStatus status = driver_.read(index_, t, values, result->detail, sizeof result->detail);
    result->status = status;
    results_.publish();
    // Release, after publish(): a sampler that sees no read in flight finds
    // this result in the ring.
    in_flight_since_.store(kNoReadInFlight, std::memory_order_release);
    return status;
}

void SourceReader::run(const platform::StopFlag& stop, std::int64_t t0_ns, std::int64_t grid_origin_ns) noexcept {
    platform::set_fine_timer_slack();
    driver_.on_sampler_start();
    const std::int64_t base = (t0_ns - grid_origin_ns) / period_ns_;
    std::int64_t k = next_on_grid(0, base, stride_);
    while (!stop.requested()) {
        stop.sleep_until(t0_ns + k * period_ns_);
        if (stop.requested()) break;
        if (device_lost_ != nullptr && device_lost_->load(std::memory_order_relaxed)) {
            k = next_on_grid(k + 1, base, stride_);  // the device is gone: nothing to read
            continue;
        }
        const ReadStatus status = read_once();
        const std::int64_t first_future = (monotonic_ns() - t0_ns) / period_ns_ + 1;
        if (status == ReadStatus::Lost) {
            // Gone: try again in about a second, on this source's grid.
            k = next_on_grid(std::max(first_future, k + kLostRetryNs / period_ns_), base, stride_);
            continue;
        }
        const std::int64_t next = k + stride_;
        k = next_on_grid(std::max(next, first_future), base, stride_);
        // An overrun (a stalled read) skips the reads already missed rather
        // than running them back to back; count them.
        if (k > next) skipped_reads_.fetch_add(static_cast<std::uint64_t>((k - next) / stride_), std::memory_order_relaxed);
    }
    driver_.on_sampler_stop();
}

}  // namespace cuagent
