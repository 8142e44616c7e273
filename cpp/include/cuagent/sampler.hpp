// The sampler: one thread that ticks at rate_hz on absolute deadlines and
// reads every due device into its ring.
//
// Deadlines are t0 + k * period, so time spent reading never accumulates into
// drift. A device whose hardware refreshes slower than the tick
// (Driver::min_read_interval_ns) is read every `stride` ticks. When a tick
// overruns past the next deadline, the ticks already missed are skipped and
// counted, never run back to back. Nothing here allocates, locks or touches
// Python once run() has started.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "cuagent/driver.hpp"
#include "cuagent/events.hpp"
#include "cuagent/latency_histogram.hpp"
#include "cuagent/slot_ring.hpp"

namespace cuagent {

// Header in front of the float values of each ring slot.
struct SampleHeader {
    std::int64_t t_ns;  // CLOCK_MONOTONIC, just before the driver read
    std::uint64_t reserved;
};
static_assert(sizeof(SampleHeader) == 16, "values start 16 bytes into a slot");

inline float* sample_values(void* slot) noexcept {
    return reinterpret_cast<float*>(static_cast<char*>(slot) + sizeof(SampleHeader));
}
inline const float* sample_values(const void* slot) noexcept {
    return reinterpret_cast<const float*>(static_cast<const char*>(slot) + sizeof(SampleHeader));
}

// Per-device counters, written by the sampler, read by anyone (relaxed).
struct DeviceCounters {
    std::atomic<std::uint64_t> samples{0};
    std::atomic<std::uint64_t> drops{0};        // ring full: sample not taken
    std::atomic<std::uint64_t> read_errors{0};
    std::atomic<bool> lost{false};
};

struct SamplerCounters {
    std::atomic<std::uint64_t> ticks{0};
    std::atomic<std::uint64_t> skipped_ticks{0};
    std::atomic<std::uint64_t> events_dropped{0};
    // Wake-up time of the last tick whose reads are all in the rings (release
    // after them): every sample taken before this time is published, so a
    // window ending at or before it is complete.
    std::atomic<std::int64_t> completed_tick_start_ns{0};
    LatencyHistogram jitter;  // wake-up time minus deadline
};

class Sampler {
public:
    Sampler(Driver& driver, std::vector<std::unique_ptr<SlotRing>>& rings, SlotRing& events,
            DeviceCounters* device_counters, SamplerCounters& counters, std::int64_t period_ns);

    // The thread body: returns once `stop` is set (checked at every tick).
    // Ticks are t0_ns + k * period; t0_ns must lie on the period grid counted
    // from grid_origin_ns, which slow devices' reads are aligned to.
    void run(const std::atomic<bool>& stop, std::int64_t t0_ns, std::int64_t grid_origin_ns) noexcept;

    std::int64_t period_ns() const { return period_ns_; }
    // Ticks between reads of each device (>= 1).
    const std::vector<std::int64_t>& strides() const { return stride_; }

private:
    void read_device(std::size_t d, std::int64_t now_ns) noexcept;
    void emit(std::size_t d, EventType type, const char* detail, std::int64_t now_ns) noexcept;

    Driver& driver_;
    std::vector<std::unique_ptr<SlotRing>>& rings_;
    SlotRing& events_;
    DeviceCounters* device_counters_;
    SamplerCounters& counters_;
    std::int64_t period_ns_;
    std::vector<std::int64_t> stride_;
    std::vector<std::int64_t> next_due_;         // tick index at which each device is next read
    std::vector<std::int64_t> lost_retry_ns_;    // when a lost device is tried again
    std::vector<std::int64_t> last_error_event_ns_;
    std::vector<std::uint32_t> values_;          // floats per sample, per device
};

}  // namespace cuagent
