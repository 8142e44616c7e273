#include "window_dict.hpp"

#include <pybind11/numpy.h>

namespace py = pybind11;
using namespace cuagent;

namespace {

py::array_t<float> floats(const float* data, std::size_t n) {
    py::array_t<float> a(static_cast<py::ssize_t>(n));
    std::copy(data, data + n, a.mutable_data());
    return a;
}

py::array_t<std::uint8_t> bytes(const std::vector<std::uint8_t>& v) {
    py::array_t<std::uint8_t> a(static_cast<py::ssize_t>(v.size()));
    std::copy(v.begin(), v.end(), a.mutable_data());
    return a;
}

py::dict level_entry(py::dict& parent, const std::string& level) {
    if (!parent.contains(level)) parent[py::str(level)] = py::dict();
    return parent[py::str(level)].cast<py::dict>();
}

}  // namespace

py::dict window_to_dict(const DeviceDescription& d, const AggregationPlan& plan,
                        const WindowResult& w, std::int64_t realtime_offset_ns) {
    py::dict levels, groups, partition, device;
    for (const auto& p : d.partitions) partition[py::str(p.id)] = py::dict();

    for (std::size_t c = 0; c < d.counters.size(); ++c) {
        if (!w.present[c]) continue;  // no value this window: absent, never zero
        const auto& spec = d.counters[c];
        const auto& slot = plan.layout.slot(c);
        const float* mean = w.mean.data() + slot.offset;
        const float* max = w.max.data() + slot.offset;
        if (slot.level >= 0) {
            level_entry(levels, spec.level)[py::str(spec.name)] =
                py::make_tuple(floats(mean, slot.elements), floats(max, slot.elements));
        } else if (slot.level == kPartitionLevelIndex) {
            for (std::size_t p = 0; p < d.partitions.size(); ++p)
                if (mean[p] == mean[p])
                    partition[py::str(d.partitions[p].id)].cast<py::dict>()[py::str(spec.name)] = mean[p];
        } else if (mean[0] == mean[0]) {
            device[py::str(spec.name)] = mean[0];
        }
    }
    for (const auto& g : plan.groups) {
        const auto c = g.counter;
        if (!w.present[c]) continue;
        level_entry(groups, d.levels[g.level])[py::str(d.counters[c].name)] =
            py::make_tuple(floats(w.group_mean.data() + g.offset, g.elements),
                           floats(w.group_max.data() + g.offset, g.elements));
    }
    for (std::size_t l = 0; l < w.state.size(); ++l) {
        if (w.state[l].empty()) continue;
        const bool measured = plan.state_inputs[l].active.kind == AggregationPlan::Source::Measured;
        py::dict target = measured ? levels : groups;
        if (!measured || levels.contains(d.levels[l]))
            level_entry(target, d.levels[l])[py::str("state")] = bytes(w.state[l]);
    }
    const std::size_t rollups = plan.rollups.size();
    for (std::size_t r = 0; r < rollups; ++r) {
        const auto& name = plan.rollups[r].name;
        if (w.device_rollup[r] == w.device_rollup[r]) device[py::str(name)] = w.device_rollup[r];
        for (std::size_t p = 0; p < d.partitions.size(); ++p) {
            const float v = w.partition_rollup[p * rollups + r];
            if (v == v) partition[py::str(d.partitions[p].id)].cast<py::dict>()[py::str(name)] = v;
        }
    }

    py::dict out;
    out["seq"] = w.seq;
    out["t_ns"] = w.t_end_ns + realtime_offset_ns;
    out["window_ns"] = w.window_ns;
    out["samples"] = w.samples;
    out["windows_missed"] = w.windows_missed;
    out["levels"] = levels;
    out["groups"] = groups;
    out["partition"] = partition;
    out["device"] = device;
    out["idle_units"] = w.idle_units == w.idle_units ? py::object(py::float_(w.idle_units)) : py::none();
    return out;
}
