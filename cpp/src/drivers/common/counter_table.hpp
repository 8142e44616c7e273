// The counters a backend can serve, each declared once, and where each one's
// values sit in a device's sample.
//
// A backend lists its counters in one static array of CounterDef rows: name,
// level, unit, help, how samples combine over a window, and the rollup (the
// name under which the engine publishes its mean over each partition and the
// whole device; PROTOCOL.md §3.1 declares it at "partition" level). A row's
// position in the array is its id; the backend names its counters by an enum
// whose values are those positions (rows_in_order() checks this at compile
// time). At discovery the backend declares the rows a device supports, in the
// order it wants them published; after the last declaration, resolve() turns
// every declared id into its first float in the sample. The read path then
// writes values[table.offset(id) + element]: no counter is found by name
// after discovery, and no backend keeps its own list of slots.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "cuagent/topology.hpp"

namespace cuagent::drivers {

struct CounterDef {
    std::uint32_t id;   // the row's position in its table (its slot id)
    const char* name;   // canonical name, PROTOCOL.md §3.2 ("active", "power", ...)
    // kDeviceLevel, kPartitionLevel or a hierarchy level ("xcd"); nullptr: the
    // device's unit level (unit_kind: "sm", "cu"). A declaration may override it.
    const char* level;
    const char* unit;   // "ratio" | "W" | "C" | "bytes" | "Hz" | "B/s" | "count" | "mask"
    // "{unit}" in the text is replaced by the device's unit kind.
    const char* help;
    Aggregation aggregation = Aggregation::Mean;
    // Name of the counter's unit-weighted mean over each partition and the
    // device; "" when it has none. Only for counters at a hierarchy level, and
    // never a counter's own or another counter's name: it is a counter of its
    // own on the wire (DeviceDescription::validate checks both).
    const char* rollup = "";
};

// True when every row's id is its position: the enum and the table agree.
template <std::size_t N>
constexpr bool rows_in_order(const CounterDef (&rows)[N]) {
    for (std::size_t i = 0; i < N; ++i)
        if (rows[i].id != i) return false;
    return true;
}

class CounterTable {
public:
    static constexpr std::uint32_t kAbsent = 0xFFFFFFFFu;

    CounterTable() = default;
    template <std::size_t N>
    explicit CounterTable(const CounterDef (&rows)[N]) : rows_(rows), spec_(N, kAbsent), offset_(N, kAbsent) {}

    // Declares row `id` on `device`: appends its CounterSpec to device.counters,
    // at `level` when given, else at the row's level. Throws std::logic_error
    // for an id past the table or declared twice (a backend bug).
    void declare(DeviceDescription& device, std::uint32_t id, const char* level = nullptr);

    // After the last declare(): each declared counter's first float in a
    // sample laid out by SampleLayout(device).
    void resolve(const DeviceDescription& device);

    bool declared(std::uint32_t id) const { return spec_[id] != kAbsent; }
    // First float of counter `id` in the sample; kAbsent when not declared.
    // Hot path: one load.
    std::uint32_t offset(std::uint32_t id) const noexcept { return offset_[id]; }

private:
    const CounterDef* rows_ = nullptr;
    std::vector<std::uint32_t> spec_;    // per id: its index in device.counters
    std::vector<std::uint32_t> offset_;  // per id: resolved float offset
};

}  // namespace cuagent::drivers
