// A device source whose reads may block, read on a thread of its own.
//
// The reader ticks on the engine's grid every `stride` ticks, like the sampler
// would, and hands each read over through an SPSC ring of results; the sampler
// relays them into the device's sample ring. A read that stalls (a sick GPU, an
// injected fault) then holds up this thread only: the sampler and every other
// device keep their ticks, and this device's counters are simply absent from
// the windows the stall covers. `in_flight_since()` tells the sampler how far
// the results go, so a window is not finished while a read that started inside
// it is still running (the aggregator gives up on it after a grace period).
// Nothing here allocates, locks or touches Python once run() has started.
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>

#include "cuagent/driver.hpp"
#include "cuagent/events.hpp"
#include "cuagent/platform.hpp"
#include "cuagent/slot_ring.hpp"

namespace cuagent {

// A lost device is tried again about once a second.
inline constexpr std::int64_t kLostRetryNs = 1'000'000'000;
// in_flight_since() when no read is running.
inline constexpr std::int64_t kNoReadInFlight = std::numeric_limits<std::int64_t>::max();

// Header in front of the float values of each result slot.
struct ReadResult {
    std::int64_t t_ns;  // CLOCK_MONOTONIC, just before the driver read
    ReadStatus status;
    char detail[sizeof(EngineEvent::detail)];  // NUL-terminated; empty when the driver gave none
};
inline constexpr std::size_t kReadResultBytes = (sizeof(ReadResult) + 15) / 16 * 16;

inline float* result_values(void* slot) noexcept {
    return reinterpret_cast<float*>(static_cast<char*>(slot) + kReadResultBytes);
}
inline const float* result_values(const void* slot) noexcept {
    return reinterpret_cast<const float*>(static_cast<const char*>(slot) + kReadResultBytes);
}

// First tick index k >= k_min such that tick k lies on a multiple of `stride`
// ticks counted from the grid origin; `ticks_since_origin` is tick 0's index
// on that grid. Everyone who reads a device every `stride` ticks uses it, so
// the reads of a device refreshed every 100 ms land on the window ends.
inline std::int64_t next_on_grid(std::int64_t k_min, std::int64_t ticks_since_origin, std::int64_t stride) noexcept {
    return k_min + (stride - (ticks_since_origin + k_min) % stride) % stride;
}

class SourceReader {
public:
    // `device_lost`, when given, pauses reads while set (a source other than
    // the one that decides whether the device is there). Throws only while
    // allocating its ring.
    SourceReader(Driver& driver, std::size_t index, std::uint32_t values, std::int64_t period_ns,
                 std::int64_t stride, std::size_t capacity, const std::atomic<bool>* device_lost);
    SourceReader(const SourceReader&) = delete;
    SourceReader& operator=(const SourceReader&) = delete;

    // The thread body: returns once `stop` is set. t0_ns and grid_origin_ns
    // as for Sampler::run.
    void run(const platform::StopFlag& stop, std::int64_t t0_ns, std::int64_t grid_origin_ns) noexcept;

    // Consumer side (the sampler thread).
    SlotRing& results() noexcept { return results_; }
    // Start time of the read now running, or kNoReadInFlight. Acquire, and
    // load it before draining results(): every read that started earlier has
    // its result there by then.
    // Sequentially consistent with read_once()'s store of a read's start (see there).
    std::int64_t in_flight_since() const noexcept { return in_flight_since_.load(std::memory_order_seq_cst); }

    // Any thread (relaxed).
    std::uint64_t skipped_reads() const noexcept { return skipped_reads_.load(std::memory_order_relaxed); }
    std::uint64_t drops() const noexcept { return drops_.load(std::memory_order_relaxed); }
    std::int64_t stride() const noexcept { return stride_; }

private:
    // Reads once into the next result slot; returns the status.
    ReadStatus read_once() noexcept;

    Driver& driver_;
    std::size_t index_;
    std::uint32_t values_;
    std::int64_t period_ns_;
    std::int64_t stride_;
    const std::atomic<bool>* device_lost_;
    SlotRing results_;
    alignas(kFalseSharingRange) std::atomic<std::int64_t> in_flight_since_{kNoReadInFlight};
    std::atomic<std::uint64_t> skipped_reads_{0};  // due reads missed because a read overran
    std::atomic<std::uint64_t> drops_{0};          // results ring full: read not taken
};

}  // namespace cuagent
