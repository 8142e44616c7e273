#include "counter_table.hpp"

#include <stdexcept>
#include <string>

#include "cuagent/sample_layout.hpp"

namespace cuagent::drivers {

namespace {

std::string with_unit_kind(const char* text, const std::string& unit_kind) {
    static constexpr const char kPlaceholder[] = "{unit}";
    std::string out = text;
    for (auto at = out.find(kPlaceholder); at != std::string::npos; at = out.find(kPlaceholder, at))
        out.replace(at, sizeof kPlaceholder - 1, unit_kind);
    return out;
}

}  // namespace

void CounterTable::declare(DeviceDescription& device, std::uint32_t id, const char* level) {
    if (id >= spec_.size())
        throw std::logic_error("counter id " + std::to_string(id) + " is past the backend's table");
    const CounterDef& row = rows_[id];
    if (spec_[id] != kAbsent)
        throw std::logic_error(std::string("counter '") + row.name + "' declared twice on device " + device.id);
    CounterSpec c;
    c.name = row.name;
    c.level = level ? level : row.level ? row.level : device.unit_kind;
    c.unit = row.unit;
    c.help = with_unit_kind(row.help, device.unit_kind);
    c.aggregation = row.aggregation;
    c.rollup = row.rollup;
    spec_[id] = static_cast<std::uint32_t>(device.counters.size());
    device.counters.push_back(std::move(c));
}

void CounterTable::resolve(const DeviceDescription& device) {
    const SampleLayout layout(device);
    for (std::size_t id = 0; id < spec_.size(); ++id)
        offset_[id] = spec_[id] == kAbsent ? kAbsent : layout.slot(spec_[id]).offset;
}

}  // namespace cuagent::drivers
