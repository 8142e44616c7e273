// One simulated device: a discrete-event model of the hardware block
// scheduler plus the device-level power model it drives.
//
// Kernels arrive from the scenario's streams; their blocks are placed on units
// of the stream's domain that have room for one more block (warp slots, block
// slots, shared memory), breadth first: a pass over the units in dispatch order
// places at most one block on each, so a grid smaller than the device spreads
// over as many units as it has blocks and a larger one fills every unit to its
// limit. Blocks of a cluster are placed together inside one top-level group
// (GPC/XCD). A unit's counters at any instant follow from the blocks resident
// on it.
//
// Determinism: the simulation only moves by events (block completions, kernel
// launches, 1 ms device ticks) processed in (time, sequence) order, and every
// random draw happens inside an event. advance_to(t) therefore leaves the same
// state for the same t however it was reached; reading never changes state.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "mock_power.hpp"
#include "mock_presets.hpp"
#include "mock_rng.hpp"
#include "mock_scenarios.hpp"

namespace cuagent::mock {

class DeviceSim {
public:
    // Simulated time the device has run its workload before the first read, so
    // that clocks, power and temperature start in their working state.
    static constexpr std::int64_t kWarmupNs = 2'000'000'000;
    static constexpr std::int64_t kTickNs = 1'000'000;

    DeviceSim(const Preset& preset, const ScenarioPlan& plan, std::uint64_t seed);

    // Process every event up to and including sim time t (ns since the
    // simulation began). Never allocates or throws.
    void advance_to(std::int64_t t) noexcept;

    // The device was reset (fell off the bus and came back) at sim time t:
    // whatever ran on it is gone, it is idle and parked, and its scenario
    // starts over with a random stream derived from (seed, t) -- so what
    // follows does not depend on how far the simulation had got before.
    void restart_at(std::int64_t t) noexcept;

    std::uint32_t units() const { return units_; }
    // Instantaneous per-unit counters (arrays of units() floats).
    void write_units(float* active, float* occupancy, float* issue, float* tensor,
                     float* mem_stall) const noexcept;
    float dram_active() const noexcept;
    const PowerModel& power() const { return power_; }
    const PowerCalibration& calibration() const { return calibration_; }
    std::uint64_t mem_used_bytes() const { return plan_.mem_used_bytes; }
    // Sim time of the last processed event.
    std::int64_t clock_ns() const { return clock_ns_; }

private:
    static constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();

    struct Stream {
        const StreamPlan* plan = nullptr;
        std::vector<std::uint8_t> in_domain;                 // per unit
        std::vector<std::vector<std::uint16_t>> groups;      // domain units per group
        std::vector<std::int32_t> group_of_unit;             // unit -> index in groups
        std::size_t cursor = 0;        // next domain position to try
        std::size_t group_cursor = 0;  // next group to try for a cluster
        std::size_t next_kernel = 0;
        const KernelTemplate* kernel = nullptr;
        std::uint32_t warps = 0, shared = 0, cluster = 1;
        std::uint32_t pending = 0, running = 0;
        double typical_ns = 0;
        std::int64_t next_launch = kNever;
        std::uint32_t burst_left = 0;
    };
    struct Block {
        std::uint32_t unit;
        std::uint32_t stream;
    };
    struct Completion {
        std::int64_t end;
        std::uint64_t seq;
        std::uint32_t slot;
    };

    bool fits(const Stream& s, std::uint32_t u) const;
    std::uint32_t room(const Stream& s, std::uint32_t u) const;
    void place(std::uint32_t stream, std::uint32_t u);
    void remove(std::uint32_t slot);
    void refresh_unit(std::uint32_t u);
    void dispatch(std::uint32_t stream);
    bool place_cluster(std::uint32_t stream, std::size_t group);
    void launch(std::uint32_t stream);
    void kernel_done(std::uint32_t stream);
    void complete_next();
    void device_tick();
    void accumulate(std::int64_t t);
    void schedule_first_launches();
    void heap_push(const Completion& c);
    Completion heap_pop();

    std::uint64_t seed_;
    UnitLimits limits_;
    PowerCalibration calibration_;
    ScenarioPlan plan_;
    std::uint32_t units_;
    Rng rng_;
    PowerModel power_;

    // Per unit: what is resident, and the warp-weighted sums of the profiles
    // (integers, so adding and removing blocks is exact).
    std::vector<std::uint32_t> warps_, blocks_, shared_;
    std::vector<std::uint32_t> tensor_w_, issue_w_, stall_w_, dram_;
    // The unit counters as read() reports them, refreshed when a unit changes,
    // so that a read is five copies.
    std::vector<float> active_f_, occupancy_f_, issue_f_, tensor_f_, stall_f_;
    // Device totals kept in step with the units.
    std::uint32_t active_units_ = 0;
    std::uint64_t dram_total_ = 0;
    double tensor_sum_ = 0, issue_sum_ = 0;  // sums over units of their ratios

    std::vector<Stream> streams_;
    std::vector<Block> slots_;
    std::vector<std::uint32_t> free_slots_;
    std::size_t free_top_ = 0;
    std::vector<Completion> heap_;
    std::size_t heap_size_ = 0;
    std::uint64_t seq_ = 0;

    std::int64_t clock_ns_ = 0;
    std::int64_t next_tick_ns_ = kTickNs;
    // Load integrals since the last tick (value x ns).
    std::int64_t last_accumulated_ns_ = 0;
    double acc_active_ = 0, acc_tensor_ = 0, acc_issue_ = 0, acc_dram_ = 0;
};

}  // namespace cuagent::mock
