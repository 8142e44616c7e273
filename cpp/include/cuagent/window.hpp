// One finished aggregation window of one device: what the engine publishes and
// what Python turns into a DeviceState. Sized once per device (all vectors are
// allocated when the engine starts); filling one never allocates.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

namespace cuagent {

struct WindowResult {
    std::uint64_t seq = 0;       // window number since engine start; 0: none finished yet
    std::int64_t t_end_ns = 0;   // CLOCK_MONOTONIC end of the window
    std::int64_t window_ns = 0;
    std::uint32_t samples = 0;   // raw samples aggregated
    // Windows on the grid since the engine started that had no sample while
    // the device was there (it stalled or failed through them), up to this
    // one: a publisher tells the loss from a jump in this count.
    std::uint64_t windows_missed = 0;
    // Per sample value, in SampleLayout order: mean and max over the window
    // (NaN where no sample of the window had a value).
    std::vector<float> mean, max;
    // Per counter: 1 if any sample in the window had a value for it.
    std::vector<std::uint8_t> present;
    // Unit-level counters aggregated over the coarser levels of the layout, in
    // AggregationPlan::groups order (mean of unit means, max of unit maxes).
    std::vector<float> group_mean, group_max;
    // Per hierarchy level: element states, empty where the level has no
    // `active` counter (measured or derived from the unit level).
    std::vector<std::vector<std::uint8_t>> state;
    // Rollups (mean over a partition's / the device's units), [partition][rollup].
    std::vector<float> partition_rollup;
    std::vector<float> device_rollup;
    float idle_units = std::numeric_limits<float>::quiet_NaN();
};

}  // namespace cuagent
