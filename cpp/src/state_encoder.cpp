#include "cuagent/state_encoder.hpp"

#include <cmath>
#include <cstring>
#include <map>

#include "cuagent/msgpack_writer.hpp"
#include "cuagent/sample_layout.hpp"

namespace cuagent {

namespace {

// Units whose values are whole numbers by nature: sent as ints (wire/state.py's _INTEGRAL_UNITS).
bool integral_unit(const std::string& unit) { return unit == "bytes" || unit == "count" || unit == "mask"; }

// msgpack's int range: [-2^63, 2^64). A whole number outside it goes out as a float.
constexpr double kIntMin = -9223372036854775808.0;
constexpr double kUintEnd = 18446744073709551616.0;

void write_floats(msgpack::Writer& w, const float* values, std::uint32_t n) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    // The wire's arrays are little-endian float32 ("<f4").
    std::string le(std::size_t{n} * 4, '\0');
    for (std::uint32_t i = 0; i < n; ++i) {
        std::uint32_t bits;
        std::memcpy(&bits, values + i, 4);
        for (int b = 0; b < 4; ++b) le[4 * i + b] = static_cast<char>((bits >> (8 * b)) & 0xff);
    }
    w.bin(le.data(), le.size());
#else
    w.bin(values, std::size_t{n} * sizeof(float));
#endif
}

}  // namespace

StateEncoder::StateEncoder(const DeviceDescription& d, std::shared_ptr<const AggregationPlan> plan)
    : plan_(std::move(plan)) {
    // Names are numbered once, so that the maps below compare ids, not strings.
    std::map<std::string, std::uint32_t> ids;
    auto id_of = [&](const std::string& name) {
        auto [it, fresh] = ids.emplace(name, static_cast<std::uint32_t>(names_.size()));
        if (fresh) names_.push_back(msgpack::packed_str(name));
        return it->second;
    };
    // What the reference reads from the topology's counters (DeviceTopology.from_description):
    // each name's declared level and unit, a rollup declared at partition level with its
    // counter's unit; a later declaration of a name replaces an earlier one.
    std::map<std::string, std::pair<std::string, std::string>> declared;
    for (const auto& c : d.counters) declared[c.name] = {c.level, c.unit};
    for (const auto& c : d.counters)
        if (!c.rollup.empty()) declared[c.rollup] = {kPartitionLevel, c.unit};
    auto at = [&](const std::string& name, bool device_map) {
        const std::string& level = declared[name].first;
        return level == kPartitionLevel || (device_map && level == kDeviceLevel);
    };
    auto integral = [&](const std::string& name) { return integral_unit(declared[name].second); };

    for (std::size_t l = 0; l < d.levels.size(); ++l) {
        const auto key = static_cast<std::uint32_t>(d.level_index(d.levels[l]));
        level_key_.push_back(key);
        level_names_.push_back(msgpack::packed_str(d.levels[l]));  // used by key: the first of a name
    }
    for (std::size_t c = 0; c < d.counters.size(); ++c) {
        const auto& spec = d.counters[c];
        const CounterSlot& slot = plan_->layout.slot(c);
        Counter counter{id_of(spec.name), slot.level, 0, true, integral(spec.name)};
        if (slot.level >= 0) counter.level_key = level_key_[static_cast<std::size_t>(slot.level)];
        else counter.on_wire = at(spec.name, slot.level == kDeviceLevelIndex);
        counters_.push_back(counter);
    }
    for (const auto& r : plan_->rollups)
        rollups_.push_back({id_of(r.name), at(r.name, false), at(r.name, true), integral(r.name)});
    for (const auto& inputs : plan_->state_inputs)
        state_measured_.push_back(inputs.active.kind == AggregationPlan::Source::Measured);
    state_name_ = id_of("state");

    std::map<std::string, std::uint32_t> partition_ids;
    for (const auto& p : d.partitions) {
        auto [it, fresh] = partition_ids.emplace(p.id, static_cast<std::uint32_t>(partition_ids_.size()));
        if (fresh) partition_ids_.push_back(msgpack::packed_str(p.id));
        partition_key_.push_back(it->second);
    }

    level_items_.resize(d.levels.size());
    for (auto& items : level_items_) items.reserve(d.counters.size() + 1);
    level_order_.reserve(d.levels.size());
    partition_values_.resize(partition_ids_.size());
    for (auto& values : partition_values_) values.reserve(d.counters.size() + rollups_.size());
    device_values_.reserve(d.counters.size() + rollups_.size());
}

void StateEncoder::put(std::vector<Scalar>& map, std::uint32_t name, double value, bool integral) {
    for (auto& s : map) {
        if (s.name == name) {  // a dict keeps a key's first place and takes its last value
            s.value = value;
            s.integral = integral;
            return;
        }
    }
    map.push_back({name, value, integral});
}

void StateEncoder::put(std::vector<Item>& map, const Item& item) {
    for (auto& entry : map) {
        if (entry.name == item.name) {
            entry = item;
            return;
        }
    }
    map.push_back(item);
}

void StateEncoder::write_scalar(std::string& out, const Scalar& s) const {
    msgpack::Writer w(out);
    w.raw(names_[s.name]);
    const double v = s.value;
    if (s.integral && std::isfinite(v) && std::trunc(v) == v && v >= kIntMin && v < kUintEnd) {
        if (v >= 0) w.uint(static_cast<std::uint64_t>(v));  // -0.0 too: Python's int(-0.0) is 0
        else w.sint(static_cast<std::int64_t>(v));
    } else {
        w.float64(v);
    }
}

void StateEncoder::encode(const WindowResult& window, std::string_view extras, std::uint32_t extra_entries,
                          std::string& out) {
    const AggregationPlan& plan = *plan_;
    for (auto& items : level_items_) items.clear();
    level_order_.clear();
    for (auto& values : partition_values_) values.clear();
    device_values_.clear();

    // Gather in the order the reference's dicts are filled (cpp/bindings/window_dict.cpp),
    // then write: a map's size comes before its entries.
    const std::size_t partitions = partition_key_.size();
    for (std::size_t c = 0; c < counters_.size(); ++c) {
        if (!window.present[c]) continue;  // no value this window: absent, never zero
        const Counter& counter = counters_[c];
        const CounterSlot& slot = plan.layout.slot(c);
        const float* mean = window.mean.data() + slot.offset;
        if (counter.slot_level >= 0) {
            auto& items = level_items_[counter.level_key];
            if (items.empty()) level_order_.push_back(counter.level_key);
            put(items, Item{counter.name, mean, window.max.data() + slot.offset, nullptr, slot.elements});
        } else if (!counter.on_wire) {
            continue;
        } else if (counter.slot_level == kPartitionLevelIndex) {
            for (std::size_t p = 0; p < partitions; ++p)
                if (mean[p] == mean[p]) put(partition_values_[partition_key_[p]], counter.name, mean[p], counter.integral);
        } else if (mean[0] == mean[0]) {
            put(device_values_, counter.name, mean[0], counter.integral);
        }
    }
    for (std::size_t l = 0; l < window.state.size(); ++l) {
        // States go with a level's measured counters: only where that level has some this window.
        const auto& state = window.state[l];
        auto& items = level_items_[level_key_[l]];
        if (state.empty() || !state_measured_[l] || items.empty()) continue;
        put(items, Item{state_name_, nullptr, nullptr, state.data(), static_cast<std::uint32_t>(state.size())});
    }
    const std::size_t n_rollups = rollups_.size();
    for (std::size_t r = 0; r < n_rollups; ++r) {
        const Rollup& rollup = rollups_[r];
        const float dv = window.device_rollup[r];
        if (dv == dv && rollup.device_on_wire) put(device_values_, rollup.name, dv, rollup.integral);
        if (!rollup.partition_on_wire) continue;
        for (std::size_t p = 0; p < partitions; ++p) {
            const float v = window.partition_rollup[p * n_rollups + r];
            if (v == v) put(partition_values_[partition_key_[p]], rollup.name, v, rollup.integral);
        }
    }

    const bool idle = window.idle_units == window.idle_units;
    msgpack::Writer w(out);
    w.map(4 + (level_order_.empty() ? 0 : 1) + (idle ? 1 : 0) + extra_entries);
    w.str("window_ns");
    w.sint(window.window_ns);
    w.str("samples");
    w.uint(window.samples);
    if (!level_order_.empty()) {
        w.str("levels");
        w.map(static_cast<std::uint32_t>(level_order_.size()));
        for (std::uint32_t key : level_order_) {
            const auto& items = level_items_[key];
            w.raw(level_names_[key]);
            w.map(static_cast<std::uint32_t>(items.size()));
            for (const Item& item : items) {
                w.raw(names_[item.name]);
                if (item.state != nullptr) {
                    w.bin(item.state, item.elements);
                    continue;
                }
                w.map(2);
                w.str("mean");
                write_floats(w, item.mean, item.elements);
                w.str("max");
                write_floats(w, item.max, item.elements);
            }
        }
    }
    w.str("partition");
    w.map(static_cast<std::uint32_t>(partition_values_.size()));
    for (std::size_t k = 0; k < partition_values_.size(); ++k) {
        w.raw(partition_ids_[k]);
        w.map(static_cast<std::uint32_t>(partition_values_[k].size()));
        for (const Scalar& s : partition_values_[k]) write_scalar(out, s);
    }
    w.str("device");
    w.map(static_cast<std::uint32_t>(device_values_.size()));
    for (const Scalar& s : device_values_) write_scalar(out, s);
    if (idle) {
        w.str("idle_units");
        w.float64(static_cast<double>(window.idle_units));
    }
    w.raw(extras);
}

}  // namespace cuagent
