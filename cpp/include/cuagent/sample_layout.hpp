// Where each counter's values sit inside one flat float sample. Computed once
// per device from its description; the sampler, the ring and the aggregator all
// index samples through it, so a driver writes values[offset(c) + element].
#pragma once

#include <cstdint>
#include <vector>

#include "cuagent/topology.hpp"

namespace cuagent {

struct CounterSlot {
    std::uint32_t offset = 0;    // first float of this counter in the sample
    std::uint32_t elements = 0;  // values: counts[level], partitions, or 1
    int level = -1;              // index into levels; -1 partition, -2 device
};

inline constexpr int kPartitionLevelIndex = -1;
inline constexpr int kDeviceLevelIndex = -2;

class SampleLayout {
public:
    SampleLayout() = default;
    explicit SampleLayout(const DeviceDescription& device);

    const CounterSlot& slot(std::size_t counter) const { return slots_[counter]; }
    std::size_t counters() const { return slots_.size(); }
    // Floats in one sample.
    std::uint32_t values() const { return values_; }

private:
    std::vector<CounterSlot> slots_;
    std::uint32_t values_ = 0;
};

}  // namespace cuagent
