// One device's record of the node summary (PROTOCOL.md §3.5, layout 1), written from its
// latest window in the window buffer.
//
// The agent publishes a summary after every window: building its records in Python meant
// turning every device's window into a DeviceState first, which the state bodies no longer
// need (state_encoder.hpp). python/cuagent/node/summary.py's SummaryBuilder stays the
// reference (it summarises decoded or scripted windows), and tests/test_summary_core.py holds
// the two to the same bytes on every backend's windows and on random ones. The rules, as the
// reference applies them to an engine window:
//   - floats: the window's idle_units and its device map's sm_active, mem_used, power and
//     temp (the last of a counter and a rollup of one name, as the map keeps it); NaN when
//     absent, and for a lost device;
//   - unit states from the finest level whose map carries "state" (a measured `active`
//     there), each unit taking its element's through the layout; none without a layout for
//     that level, or for a lost device;
//   - group_idle: idle units per element of the coarsest level (the first 12), through its
//     layout;
//   - age_ms: whole ms from the window's end to `now`, at most 65534; 65535 and no WINDOW
//     flag before the first window.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cuagent/aggregator.hpp"
#include "cuagent/topology.hpp"
#include "cuagent/window.hpp"

namespace cuagent {

inline constexpr std::size_t kSummaryRecordBytes = 47;

class SummaryRecordWriter {
public:
    SummaryRecordWriter(const DeviceDescription& device, std::shared_ptr<const AggregationPlan> plan);

    // Appends the device's record to `out`. `window`: its latest window, or nullptr before the
    // first; `window_end_ns` that window's end and `now_ns` the summary's time (Unix ns).
    void write(const WindowResult* window, std::int64_t window_end_ns, std::int64_t now_ns, bool lost,
               std::string& out) const;

private:
    std::shared_ptr<const AggregationPlan> plan_;
    std::uint32_t units_;
    std::vector<std::uint32_t> counts_;                // per level
    std::vector<std::vector<std::uint16_t>> layout_;   // per coarser level; empty: unknown
    std::vector<bool> state_measured_;                 // per level: its `active` is measured there
    std::vector<std::vector<std::uint32_t>> level_counters_;  // per level: counters measured there
    // Device map sources of each float field, in the order the map takes them (counters,
    // then rollups): {is_rollup, index}; the last one with a value wins.
    struct Source {
        bool rollup;
        std::uint32_t index;
    };
    std::vector<Source> fields_[4];  // sm_active, mem_used, power, temp
    std::uint32_t groups_ = 0;       // elements at the coarsest level; 0: units only
    bool has_groups_ = false;        // the coarsest level's layout is known
};

}  // namespace cuagent
