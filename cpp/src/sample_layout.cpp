#include "cuagent/sample_layout.hpp"

namespace cuagent {

SampleLayout::SampleLayout(const DeviceDescription& device) {
    slots_.reserve(device.counters.size());
    for (const auto& counter : device.counters) {
        CounterSlot slot;
        slot.offset = values_;
        slot.elements = device.elements_at(counter.level);
        if (counter.level == kPartitionLevel)
            slot.level = kPartitionLevelIndex;
        else if (counter.level == kDeviceLevel)
            slot.level = kDeviceLevelIndex;
        else
            slot.level = device.level_index(counter.level);
        values_ += slot.elements;
        slots_.push_back(slot);
    }
}

}  // namespace cuagent
