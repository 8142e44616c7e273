// TEMPORARY (branch mock only): minimal definitions of the contract functions
// declared in topology.hpp / sample_layout.hpp so the mock driver links before
// main has the lead's implementation. Delete on merging main.
#include <stdexcept>

#include "cuagent/sample_layout.hpp"
#include "cuagent/topology.hpp"

namespace cuagent {

int DeviceDescription::level_index(const std::string& level) const {
    for (std::size_t i = 0; i < levels.size(); ++i)
        if (levels[i] == level) return static_cast<int>(i);
    return -1;
}

std::uint32_t DeviceDescription::elements_at(const std::string& level) const {
    if (level == kDeviceLevel) return 1;
    if (level == kPartitionLevel) return static_cast<std::uint32_t>(partitions.size());
    int i = level_index(level);
    if (i < 0) throw std::invalid_argument("unknown level " + level);
    return counts[static_cast<std::size_t>(i)];
}

void DeviceDescription::validate() const {
    if (levels.empty() || counts.size() != levels.size() || counts.back() != units)
        throw std::invalid_argument("bad levels/counts for " + id);
    if (!layout.empty() && layout.size() + 1 != levels.size())
        throw std::invalid_argument("bad layout for " + id);
    if (partitions.empty()) throw std::invalid_argument("no partition for " + id);
}

SampleLayout::SampleLayout(const DeviceDescription& device) {
    for (const auto& c : device.counters) {
        CounterSlot s;
        s.offset = values_;
        s.elements = device.elements_at(c.level);
        s.level = c.level == kDeviceLevel      ? kDeviceLevelIndex
                  : c.level == kPartitionLevel ? kPartitionLevelIndex
                                               : device.level_index(c.level);
        slots_.push_back(s);
        values_ += s.elements;
    }
}

}  // namespace cuagent
