// One device's finished window as the msgpack body of a `state` message
// (PROTOCOL.md §3.2), written straight from the window buffer.
//
// The agent sends one state per device per window; building it in Python
// (window → dict → DeviceState → body map → msgpack) was most of the agent's
// CPU. This writes the same bytes directly: python/cuagent/wire/state.py's
// encode_state_body stays the reference (it encodes decoded `State`s for the
// simulator and the tests), and tests/test_state_encoder.py proves the two
// byte-identical on every backend's windows and on random ones, so they
// cannot drift apart silently. The rules, as the reference applies them to an
// engine window:
//   - key order: window_ns, samples, levels (only if a hierarchy-level counter
//     has a value), partition (every partition), device, idle_units (absent
//     when NaN), then the caller's entries (processes, pods);
//   - levels: per level in the order its first present counter appears, the
//     present counters in declaration order as {"mean", "max"} float32 bins,
//     then "state" (uint8 bin) where that level's `active` is measured;
//   - partition and device values: counters at that level, then rollups, NaN
//     left out; counters whose unit is a whole quantity (bytes, count, mask)
//     go out as ints when their value is a whole number inside msgpack's
//     int range, everything else as float64.
// Like the Python dicts it mirrors, a name written twice into one map keeps
// its first place and takes the later value (it does not happen with a
// validated description, but the order is then still the reference's).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cuagent/aggregator.hpp"
#include "cuagent/topology.hpp"
#include "cuagent/window.hpp"

namespace cuagent {

class StateEncoder {
public:
    StateEncoder(const DeviceDescription& device, std::shared_ptr<const AggregationPlan> plan);

    // Appends the body of `window` to `out`: a map of the window's entries
    // plus `extra_entries` more, whose packed key/value pairs `extras` holds
    // (appended as they are). Not thread-safe: it reuses scratch space, so
    // one thread at a time encodes with one encoder (the engine holds the
    // device's reader lock). Allocates only while its scratch grows.
    void encode(const WindowResult& window, std::string_view extras, std::uint32_t extra_entries, std::string& out);

private:
    // One value of a partition or the device map: a name (by id, so equal
    // names compare cheaply) and its number.
    struct Scalar {
        std::uint32_t name;
        double value;
        bool integral;
    };
    struct Item {  // one entry of a level's map
        std::uint32_t name;
        const float* mean = nullptr;  // a counter's means and maxima...
        const float* max = nullptr;
        const std::uint8_t* state = nullptr;  // ...or the level's element states
        std::uint32_t elements = 0;
    };
    struct Counter {
        std::uint32_t name;
        int slot_level;          // index into levels; kPartitionLevelIndex; kDeviceLevelIndex
        std::uint32_t level_key; // the level's map in `levels` (first level of that name)
        bool on_wire;            // the reference keeps it (declared at this level)
        bool integral;
    };
    struct Rollup {
        std::uint32_t name;
        bool partition_on_wire, device_on_wire, integral;
    };

    static void put(std::vector<Scalar>& map, std::uint32_t name, double value, bool integral);
    static void put(std::vector<Item>& map, const Item& item);
    void write_scalar(std::string& out, const Scalar& s) const;

    std::shared_ptr<const AggregationPlan> plan_;
    std::vector<std::string> names_;  // packed msgpack strs, by name id
    std::vector<Counter> counters_;
    std::vector<Rollup> rollups_;     // in AggregationPlan::rollups order
    std::vector<std::uint32_t> level_key_;  // per hierarchy level: its map (first level of its name)
    std::vector<std::string> level_names_;  // packed, by level key
    std::vector<bool> state_measured_;      // per hierarchy level: its `active` is measured there
    std::vector<std::uint32_t> partition_key_;  // per partition: its map (first partition of its id)
    std::vector<std::string> partition_ids_;    // packed, by partition key
    std::uint32_t state_name_;                  // the name id of "state"

    // Scratch, reused from window to window.
    std::vector<std::vector<Item>> level_items_;  // by level key
    std::vector<std::uint32_t> level_order_;      // level keys in order of first use
    std::vector<std::vector<Scalar>> partition_values_;  // by partition key
    std::vector<Scalar> device_values_;
};

}  // namespace cuagent
