// Rolling-window aggregation of one device's raw samples.
//
// Runs on the engine's aggregator thread (or a test harness), one instance per
// device. add() folds one raw sample into running sums; when a sample of a later
// window arrives, or poll() sees the window's end pass, the window is finished:
// means, maxima, coarser-level groups, partition/device rollups, element states
// and idle_units are computed into the triple buffer's back slot and published.
// Nothing here allocates after construction.
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "cuagent/sample_layout.hpp"
#include "cuagent/topology.hpp"
#include "cuagent/triple_buffer.hpp"
#include "cuagent/unit_state.hpp"
#include "cuagent/window.hpp"

namespace cuagent {

// What a finished window contains beyond per-value means: computed once from
// the device description.
struct AggregationPlan {
    struct Group {              // a unit-level counter over one coarser level
        std::uint32_t counter;  // index into the device's counters
        std::uint32_t level;    // index of the coarser level
        std::uint32_t offset;   // into WindowResult::group_mean / group_max
        std::uint32_t elements; // counts[level]
    };
    struct Rollup {             // a hierarchy-level counter averaged over units
        std::uint32_t counter;
        std::string name;       // CounterSpec::rollup
        // weights[p][e]: units of partition p inside element e of the counter's
        // level; empty when unknown (then the partition's rollup is NaN).
        std::vector<std::vector<float>> partition_weights;
        std::vector<float> device_weights;  // units inside each element
    };
    struct Source {             // where one level's mean of a counter lives
        enum Kind : std::uint8_t { None, Measured, Grouped } kind = None;
        std::uint32_t offset = 0;  // into WindowResult::mean or ::group_mean
    };
    struct StateInputs {
        Source active, occupancy, mem_stall;
    };

    explicit AggregationPlan(const DeviceDescription& device);

    SampleLayout layout;
    std::vector<Aggregation> aggregation;  // per counter
    std::vector<Group> groups;
    std::uint32_t group_values = 0;
    std::vector<Rollup> rollups;
    std::vector<StateInputs> state_inputs;  // per hierarchy level
    // idle_units: the finest level with a measured `active` (-1: none), the
    // units inside each of its elements, else a partition/device `sm_active`.
    int idle_level = -1;
    std::vector<float> idle_weights;
    int partition_sm_active = -1;  // counter index, or -1
    int device_pm_sm_active = -1;  // counter index, or -1 (CUPTI's kHz mean across SMs)
    int device_sm_active = -1;     // counter index, or -1
    std::vector<float> partition_units;
    float device_units = 0;
};

class DeviceAggregator {
public:
    // `plan` is immutable and shared: whoever converts a published window
    // (another thread) keeps using it while aggregators come and go.
    DeviceAggregator(const DeviceDescription& device, std::shared_ptr<const AggregationPlan> plan,
                     const StateThresholds& thresholds, std::int64_t window_ns,
                     std::int64_t window_origin_ns);

    // Fold one raw sample taken at t_ns (same clock as window_origin_ns). A
    // sample of a window already finished, or older than the open one (a read
    // that stalled past its window's grace period), is late: it is dropped and
    // counted, never folded into another window nor allowed to finish its own
    // window a second time.
    // `presence` (SampleHeader::presence): windows between two finished ones
    // count as missed only if both were of the same presence.
    void add(std::int64_t t_ns, const float* values, std::uint32_t presence = 0) noexcept;
    // Finish the open window if every sample before its end is known to be in
    // (its end <= `complete_before_ns`), or `now_ns` is past its end by `grace_ns`.
    void poll(std::int64_t now_ns, std::int64_t grace_ns,
              std::int64_t complete_before_ns = std::numeric_limits<std::int64_t>::min()) noexcept;
    // End of the open window (same clock as add()), or INT64_MAX when no
    // sample is waiting in one.
    std::int64_t open_window_end() const noexcept;

    const AggregationPlan& plan() const { return *plan_; }
    TripleBuffer<WindowResult>& published() { return published_; }
    // Windows finished so far (any thread may ask).
    std::uint64_t windows() const { return windows_.load(std::memory_order_relaxed); }
    // Windows on the grid between two finished ones that had no sample while
    // the device was there (it stalled or failed through them), and late
    // samples dropped (any thread may ask).
    std::uint64_t windows_missed() const { return windows_missed_.load(std::memory_order_relaxed); }
    std::uint64_t late_samples() const { return late_samples_.load(std::memory_order_relaxed); }


private:
    void finish_window() noexcept;
    void reset_window() noexcept;
    void fold_sums() noexcept;
    const float* resolve(const AggregationPlan::Source& source, const WindowResult& out) const noexcept;

    std::shared_ptr<const AggregationPlan> plan_;
    StateThresholds thresholds_;
    std::int64_t window_ns_;
    std::int64_t origin_ns_;

    // Open window.
    std::int64_t window_index_ = 0;
    std::uint32_t samples_ = 0;
    // Index of the last finished window; none yet at first.
    std::int64_t finished_index_ = std::numeric_limits<std::int64_t>::min();
    std::uint32_t presence_ = 0, finished_presence_ = 0;  // of the open / last finished window
    // Running sums: float over the last block of at most kSumBlock samples (the
    // hot loop), folded into double totals after each block. A float sum alone
    // passes 2^20 in a long window (2M samples: 20 s at 100 kHz) and then
    // rounds every ratio it adds to a multiple of 1/8.
    static constexpr std::uint32_t kSumBlock = 256;
    std::vector<float> sum_;
    std::vector<double> total_;
    std::uint32_t block_samples_ = 0;
    std::vector<float> max_, last_;
    std::vector<std::uint32_t> count_, bits_;
    std::vector<std::uint32_t> bitor_values_;  // value indices of BitOr counters
    std::vector<std::uint32_t> last_values_;   // value indices of Last counters
    std::vector<std::uint32_t> sum_values_;    // value indices of Sum counters
    std::vector<std::uint32_t> max_values_;    // value indices of Max counters

    // Scratch for coarser-level groups.
    std::vector<float> group_sum_;
    std::vector<std::uint32_t> group_count_;
    std::vector<std::uint8_t> group_missing_;  // per element: one of its units has no value this window
    std::vector<std::vector<std::uint8_t>> unit_state_;  // persists across windows (hysteresis)
    std::atomic<std::uint64_t> windows_{0};
    std::atomic<std::uint64_t> windows_missed_{0};
    std::atomic<std::uint64_t> late_samples_{0};
    const DeviceDescription* device_;  // owned by the driver, outlives us
    TripleBuffer<WindowResult> published_;
};

}  // namespace cuagent
