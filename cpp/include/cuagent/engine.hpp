// The engine: a driver, one sampler thread, one aggregator thread, and between
// them a lock-free ring per device; finished windows come out through a triple
// buffer per device. A device whose reads may block is read on a reader
// thread of its own, which the sampler relays, so it cannot stall the others. Control calls (start, stop, snapshot, stats, events) come
// from Python threads; the engine's own threads never touch Python.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "cuagent/aggregator.hpp"
#include "cuagent/driver.hpp"
#include "cuagent/events.hpp"
#include "cuagent/platform.hpp"
#include "cuagent/sampler.hpp"
#include "cuagent/slot_ring.hpp"
#include "cuagent/state_encoder.hpp"
#include "cuagent/summary_record.hpp"
#include "cuagent/unit_state.hpp"
#include "cuagent/window.hpp"

namespace cuagent {

struct EngineConfig {
    double rate_hz = 1000.0;
    std::int64_t window_ns = 100'000'000;
    std::size_t ring_capacity = 0;  // samples per device ring; 0: about 100 ms of ticks (>= 256)
    StateThresholds thresholds;
};

// A further source of counters for one of the engine's devices: device
// `index` of `driver` adds its counters to engine device `device` (e.g. a
// CUPTI source beside NVML). Each source is read at its own interval, inline
// or on a thread of its own as its driver says, and its values merge into the
// device's one sample layout before the ring; a source that stamps its own
// samples (Driver::stamps_own_samples: CUPTI) is not read at all, the
// aggregator takes its samples and holds each window for it. A source that
// stalls or fails costs only its own counters, which are then absent from
// the windows it missed, never its last values again.
struct ExtraSource {
    std::size_t device = 0;
    std::shared_ptr<Driver> driver;
    std::size_t index = 0;
};

struct DeviceStats {
    std::uint64_t samples = 0, drops = 0, read_errors = 0, windows = 0;
    // Windows between finished ones that had no sample; samples dropped
    // because their window was already finished (a stalled read); reads a
    // reader thread missed while one of its reads overran.
    std::uint64_t windows_missed = 0, late_samples = 0, skipped_reads = 0;
    bool lost = false;
    bool own_thread = false;  // some source of it is read on a thread of its own
};

// Which window a published state is: what a publisher orders windows by.
struct WindowStamp {
    std::uint64_t seq = 0;           // window number since the engine started
    std::int64_t t_ns = 0;           // Unix ns at the end of the window
    std::int64_t window_ns = 0;
    std::uint64_t windows_missed = 0;  // WindowResult::windows_missed
};

struct EngineStats {
    bool running = false;
    double rate_hz = 0;          // configured tick rate
    double target_rate_hz = 0;   // ticks per second the devices need (slow devices tick less)
    double achieved_rate_hz = 0; // ticks per second since start
    double elapsed_s = 0;
    std::uint64_t ticks = 0, skipped_ticks = 0, samples = 0, drops = 0, read_errors = 0;
    std::uint64_t events_dropped = 0;
    std::int64_t jitter_p50_ns = 0, jitter_p90_ns = 0, jitter_p99_ns = 0, jitter_max_ns = 0;
    std::vector<DeviceStats> devices;
};

class Engine {
public:
    // Throws std::invalid_argument for a bad configuration (naming the value).
    // `driver` describes the devices and decides whether each is there; each
    // of `sources` adds counters to one of them (appended to its description,
    // which must give them as many values as the source's own device does;
    // a counter name may not repeat).
    Engine(std::shared_ptr<Driver> driver, const EngineConfig& config, std::vector<ExtraSource> sources = {});
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // start() on a running engine throws std::logic_error; stop() is idempotent;
    // a stopped engine can be started again (windows start afresh).
    void start();
    void stop();
    bool running() const { return running_.load(std::memory_order_acquire); }

    const Driver& driver() const { return *driver_; }
    std::size_t device_count() const { return devices_.size(); }
    // What the engine publishes for `device`: every counter of every source.
    const DeviceDescription& device(std::size_t device) const;
    const EngineConfig& config() const { return config_; }

    // Copy of the latest finished window of `device` into `out`; false when no
    // window has finished yet. Readers serialise on a per-device mutex that the
    // engine's threads never take.
    bool latest(std::size_t device, WindowResult& out);
    const AggregationPlan& plan(std::size_t device) const;
    // The latest finished window of `device` as a publisher needs it: its
    // stamp, and, when it ended after `newer_than_ns` (Unix ns), its `state`
    // body appended to `body` (StateEncoder::encode with the caller's
    // extras); `body` is left as it was for an older window. Encoded straight
    // from the window buffer under the device's reader lock, without copying
    // the window. False when no window has finished yet.
    bool latest_state(std::size_t device, std::int64_t newer_than_ns, std::string_view extras,
                      std::uint32_t extra_entries, WindowStamp& stamp, std::string& body);
    // The node summary's records (PROTOCOL.md §3.5), one per device in order, appended to
    // `out`: from the windows that latest_state() / latest() last took (no newer one is
    // taken, so a summary describes the windows whose states were just sent), at `now_ns`
    // (Unix); `lost[d]`: device d's status is lost.
    void summary_records(std::int64_t now_ns, const std::vector<bool>& lost, std::string& out);
    EngineStats stats() const;
    // Moves pending events into `out`; returns how many.
    std::size_t drain_events(std::vector<EngineEvent>& out);
    // A descriptor that becomes readable whenever any device finishes a
    // window (an eventfd on Linux, a pipe elsewhere): a publisher polls it
    // instead of guessing when windows are due, and drains it to re-arm.
    int window_fd() const { return windows_ready_.fd(); }
    void drain_window_fd() { windows_ready_.drain(); }
    // CLOCK_REALTIME minus CLOCK_MONOTONIC, taken at start(): labels windows.
    std::int64_t realtime_offset_ns() const { return realtime_offset_ns_.load(std::memory_order_relaxed); }

private:
    void aggregate_loop() noexcept;
    // Folds device d's ring samples and its stamping sources' samples, in time
    // order, into its aggregator; stops at a sample whose window would finish
    // one that a source still owes samples (`complete_before`), unless `now`
    // is wait_ns_[d] past that window's end; returns whether it stopped so
    // (samples held back). Everything goes in on the `last_pass`.
    bool drain_device(std::size_t d, std::int64_t complete_before, std::int64_t now, bool last_pass) noexcept;

    // The device's newest finished window, taken from its triple buffer (null: none yet, or
    // never started). Under reader_mutex_[device], which the caller holds while it reads it.
    const WindowResult* take_newest(std::size_t device);
    void merge_source(const ExtraSource& extra);
    void join_threads() noexcept;

    // Where each device's values come from; the first is `driver_`.
    struct SourceRef {
        std::shared_ptr<Driver> driver;
        std::size_t index;
        std::uint32_t offset, values;
        bool stamps = false;  // stamps its own samples: taken by the aggregator
    };
    // A stamping source as the aggregator thread sees it (rebuilt at start).
    struct StampedSource {
        Driver* driver = nullptr;
        std::size_t index = 0;
        std::uint32_t offset = 0, values = 0;
        std::vector<float> sample;  // the next one, taken from the source, not folded yet
        std::int64_t t_ns = 0;
        bool pending = false;
    };

    std::shared_ptr<Driver> driver_;
    std::vector<DeviceDescription> devices_;
    std::vector<std::vector<SourceRef>> sources_;
    EngineConfig config_;
    std::int64_t period_ns_;

    std::vector<std::unique_ptr<SlotRing>> rings_;
    std::unique_ptr<SlotRing> events_;
    std::unique_ptr<DeviceCounters[]> device_counters_;
    std::unique_ptr<SamplerCounters> counters_;
    std::vector<std::shared_ptr<const AggregationPlan>> plans_;  // built once, immutable
    std::vector<std::unique_ptr<StateEncoder>> encoders_;  // per device, used under its reader mutex
    std::vector<std::unique_ptr<SummaryRecordWriter>> summaries_;  // per device
    std::vector<std::unique_ptr<DeviceAggregator>> aggregators_;
    // Aggregator thread only, built by start(): per device, its stamping
    // sources, a whole sample to fold one of theirs into, how long its windows
    // wait past their end, and the presence of its last ring sample.
    std::vector<std::vector<StampedSource>> stamped_;
    std::vector<std::vector<float>> stamped_sample_;
    std::vector<std::int64_t> wait_ns_;
    std::vector<std::uint32_t> presence_;
    std::unique_ptr<Sampler> sampler_;
    std::vector<std::unique_ptr<std::mutex>> reader_mutex_;
    std::mutex events_mutex_;
    mutable std::mutex control_mutex_;  // start/stop/stats from several Python threads

    platform::StopFlag stop_sampler_;  // wakes sleeping reader and sampler threads
    std::atomic<bool> stop_aggregator_{false};
    platform::Doorbell window_done_;  // the sampler completed a window: the aggregator finishes it
    std::thread sampler_thread_, aggregator_thread_;
    std::vector<std::thread> reader_threads_;
    std::atomic<bool> running_{false};  // read by any thread, written under control_mutex_
    std::int64_t t0_ns_ = 0;
    std::int64_t stopped_ns_ = 0;
    std::atomic<std::int64_t> realtime_offset_ns_{0};
    platform::Notifier windows_ready_;
};

}  // namespace cuagent
