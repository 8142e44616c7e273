// The sampler: one thread that ticks at rate_hz on absolute deadlines and
// fills each due device's ring.
//
// A device draws its counters from one or more sources (a driver's device),
// each filling its own block of the device's sample and each read at its own
// interval. A source whose reads cannot stall is read inline, on this thread;
// one whose reads may block (Driver::read_may_block) is read by a
// SourceReader on a thread of its own, and this thread relays its results
// (at the read's tick, and while its result is not in, again 1, 2, 4... ticks
// later). A source that stamps its own samples is not here at all: the
// aggregator takes its samples (Engine).
// Either way the device's ring has this one producer.
//
// Deadlines are t0 + k * period, so time spent reading never accumulates into
// drift. A source whose hardware refreshes slower than the tick
// (Driver::min_read_interval_ns) is read every `stride` ticks, on the window
// grid. When a tick overruns past the next deadline, the ticks already missed
// are skipped and counted, never run back to back. Nothing here allocates,
// locks or touches Python once run() has started.
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "cuagent/driver.hpp"
#include "cuagent/events.hpp"
#include "cuagent/latency_histogram.hpp"
#include "cuagent/slot_ring.hpp"
#include "cuagent/source_reader.hpp"

namespace cuagent {

// Header in front of the float values of each ring slot.
struct SampleHeader {
    std::int64_t t_ns;  // CLOCK_MONOTONIC, just before the driver read
    // +1 at every device_lost and device_back: windows between samples of
    // different presence are not "missed" (the device was gone through them,
    // and its events say why there were none).
    std::uint32_t presence;
    std::uint32_t reserved;
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
    // Every sample of this device taken before this time is in its ring
    // (release after them): a window ending at or before it is complete. The
    // start of the sampler's last tick, held back by a read still running on
    // a reader thread.
    std::atomic<std::int64_t> complete_before_ns{std::numeric_limits<std::int64_t>::min()};
};

struct SamplerCounters {
    std::atomic<std::uint64_t> ticks{0};
    std::atomic<std::uint64_t> skipped_ticks{0};
    std::atomic<std::uint64_t> events_dropped{0};
    LatencyHistogram jitter;  // wake-up time minus deadline
};

// One source of a device's counters: device `index` of `driver`, whose sample
// fills values [offset, offset + values) of the engine device's sample.
struct DeviceSource {
    Driver* driver = nullptr;
    std::size_t index = 0;
    std::uint32_t offset = 0;
    std::uint32_t values = 0;
};

class Sampler {
public:
    // sources[d]: device d's sources, the first one deciding whether the
    // device is there (device_lost / device_back). values[d]: floats in
    // device d's sample. result_capacity: results a reader may hold before
    // the sampler relays them. window_ns: the engine's windows (on the grid run() is given).
    Sampler(const std::vector<std::vector<DeviceSource>>& sources, const std::vector<std::uint32_t>& values,
            std::vector<std::unique_ptr<SlotRing>>& rings, SlotRing& events, DeviceCounters* device_counters,
            SamplerCounters& counters, std::int64_t period_ns, std::size_t result_capacity,
            std::int64_t window_ns);

    // The thread body: returns once `stop` is set (checked at every tick).
    // Ticks are t0_ns + k * period; t0_ns must lie on the period grid counted
    // from grid_origin_ns, which slow sources' reads are aligned to. Start the
    // readers() on their own threads with the same arguments. `window_done`,
    // if given, is rung after each tick that completed a window (the first
    // tick at or past a window's end).
    void run(const platform::StopFlag& stop, std::int64_t t0_ns, std::int64_t grid_origin_ns,
             platform::Doorbell* window_done = nullptr) noexcept;

    std::int64_t period_ns() const { return period_ns_; }
    // Per device: ticks between reads of its most often read source (>= 1).
    const std::vector<std::int64_t>& strides() const { return device_stride_; }
    // The sources read on threads of their own.
    std::vector<SourceReader*> readers() const;
    // Per device, any thread: reads its readers missed while one overran, and
    // results they dropped because this thread had not relayed the last ones.
    std::uint64_t skipped_reads(std::size_t device) const;
    std::uint64_t reader_drops(std::size_t device) const;
    // Per device: whether any of its sources is read on a thread of its own.
    bool has_reader(std::size_t device) const;

private:
    struct Source {
        DeviceSource where;
        std::size_t device = 0;
        bool primary = false;  // decides device_lost / device_back
        std::int64_t stride = 1;
        std::unique_ptr<SourceReader> reader;  // null: read inline on this thread
    };

    void read_inline(std::size_t d, std::int64_t k) noexcept;
    // Moves a reader's results into the device's ring; `last_t_ns`: the
    // start time of the last result moved.
    void relay(Source& s, std::int64_t& last_t_ns) noexcept;
    // Books one read's outcome (counters, events, lost state); true when its
    // values belong in a sample.
    bool accept(const Source& s, ReadStatus status, const char* detail, std::int64_t t_ns) noexcept;
    void emit(std::size_t d, EventType type, const char* detail, std::int64_t now_ns) noexcept;

    std::vector<std::unique_ptr<SlotRing>>& rings_;
    SlotRing& events_;
    DeviceCounters* device_counters_;
    SamplerCounters& counters_;
    std::int64_t period_ns_;
    std::int64_t window_ns_;
    std::vector<Source> sources_;               // by device, each device's primary first
    std::vector<std::size_t> first_source_;     // device d: sources_[first_source_[d] .. first_source_[d+1])
    std::vector<std::int64_t> next_due_;        // per source: tick index of its next read (or relay)
    // Per reader source: the tick whose read's result is still awaited (-1:
    // none), the ticks to the next relay while it is, and the start time of
    // the last result relayed.
    std::vector<std::int64_t> awaited_, retry_ticks_, last_relayed_ns_;
    std::vector<std::int64_t> device_stride_;
    std::vector<std::uint32_t> values_;         // floats per sample, per device
    std::vector<std::int64_t> lost_retry_ns_;   // when a lost device is tried again
    std::vector<std::uint32_t> presence_;       // per device, see SampleHeader
    std::vector<std::int64_t> last_error_event_ns_;
};

}  // namespace cuagent
