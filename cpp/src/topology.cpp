#include "cuagent/topology.hpp"

#include <set>
#include <stdexcept>

namespace cuagent {

int DeviceDescription::level_index(const std::string& level) const {
    for (std::size_t i = 0; i < levels.size(); ++i)
        if (levels[i] == level) return static_cast<int>(i);
    return -1;
}

std::uint32_t DeviceDescription::elements_at(const std::string& level) const {
    if (level == kDeviceLevel) return 1;
    if (level == kPartitionLevel) return static_cast<std::uint32_t>(partitions.size());
    const int l = level_index(level);
    if (l < 0) return 0;
    return counts[static_cast<std::size_t>(l)];
}

void DeviceDescription::validate() const {
    const std::string where = "device " + id + ": ";
    auto fail = [&](const std::string& what) { throw std::invalid_argument(where + what); };
    if (id.empty()) throw std::invalid_argument("device with an empty id");
    if (levels.empty() || levels.back() != unit_kind)
        fail("levels must end in the unit kind '" + unit_kind + "'");
    if (counts.size() != levels.size()) fail("counts and levels differ in length");
    for (std::size_t l = 0; l < levels.size(); ++l)
        if (level_index(levels[l]) != static_cast<int>(l)) fail("level '" + levels[l] + "' is named twice");
    if (counts.back() != units) fail("the last level's count must equal units");
    if (!layout.empty()) {
        if (layout.size() != levels.size() - 1) fail("layout needs one array per level but the last");
        for (std::size_t l = 0; l < layout.size(); ++l) {
            if (layout[l].size() != units) fail("layout[" + levels[l] + "] must have one entry per unit");
            for (std::uint16_t g : layout[l])
                if (g >= counts[l]) fail("layout[" + levels[l] + "] names an element past its count");
        }
    }
    if (partitions.empty()) fail("needs at least one partition");
    std::set<std::string> names;
    for (const auto& c : counters) {
        if (!names.insert(c.name).second) fail("counter '" + c.name + "' declared twice");
        if (elements_at(c.level) == 0) fail("counter '" + c.name + "' at unknown level '" + c.level + "'");
        if (!c.rollup.empty() && level_index(c.level) < 0)
            fail("counter '" + c.name + "' has a rollup but is not measured at a hierarchy level");
        // A level's map on the wire holds its counters and, under "state", its element
        // states (PROTOCOL.md §3.2): a counter of that name there would be neither.
        if (c.name == "state" && level_index(c.level) >= 0)
            fail("counter 'state' at level '" + c.level + "': the name is a level's element states");
    }
    // A rollup is published as a counter of its own, declared at partition
    // level (PROTOCOL.md §3.1): its name can be no counter's, its own included
    // (one name cannot be declared at two levels).
    for (const auto& c : counters)
        if (!c.rollup.empty() && names.count(c.rollup))
            fail("rollup name '" + c.rollup + "' of counter '" + c.name + "' is a counter's name" +
                 (c.rollup == c.name ? " (its own)" : ""));
    for (const auto& p : partitions)
        for (std::uint16_t u : p.unit_ids)
            if (u >= units) fail("partition " + p.id + " names unit " + std::to_string(u) + " past the last");
}

}  // namespace cuagent
