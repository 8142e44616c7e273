#include "cuagent/summary_record.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

#include "cuagent/sample_layout.hpp"

namespace cuagent {

namespace {

// PROTOCOL.md §3.5, layout 1 (python/cuagent/wire/summary.py).
constexpr std::size_t kMaxGroups = 12;
constexpr std::uint16_t kNoWindow = 0xFFFF;
constexpr std::int64_t kMaxAgeMs = kNoWindow - 1;
constexpr std::uint8_t kStates = 1, kGroups = 2, kWindow = 4;
constexpr std::uint8_t kUnplaced = 0xFF;  // a unit counted in no state
const char* const kFields[4] = {"sm_active", "mem_used", "power", "temp"};

void put_le(char* at, const void* value, std::size_t n) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    const auto* bytes = static_cast<const char*>(value);
    for (std::size_t i = 0; i < n; ++i) at[i] = bytes[n - 1 - i];
#else
    std::memcpy(at, value, n);
#endif
}

}  // namespace

SummaryRecordWriter::SummaryRecordWriter(const DeviceDescription& d, std::shared_ptr<const AggregationPlan> plan)
    : plan_(std::move(plan)), units_(d.units), counts_(d.counts) {
    if (!d.layout.empty())
        for (const auto& anc : d.layout) layout_.push_back(anc);
    for (const auto& inputs : plan_->state_inputs)
        state_measured_.push_back(inputs.active.kind == AggregationPlan::Source::Measured);
    level_counters_.resize(d.levels.size());
    for (std::size_t c = 0; c < d.counters.size(); ++c) {
        const CounterSlot& slot = plan_->layout.slot(c);
        if (slot.level >= 0) level_counters_[static_cast<std::size_t>(slot.level)].push_back(static_cast<std::uint32_t>(c));
    }
    for (std::size_t f = 0; f < 4; ++f) {
        for (std::size_t c = 0; c < d.counters.size(); ++c)
            if (plan_->layout.slot(c).level == kDeviceLevelIndex && d.counters[c].name == kFields[f])
                fields_[f].push_back({false, static_cast<std::uint32_t>(c)});
        for (std::size_t r = 0; r < plan_->rollups.size(); ++r)
            if (plan_->rollups[r].name == kFields[f]) fields_[f].push_back({true, static_cast<std::uint32_t>(r)});
    }
    if (d.levels.size() > 1) {
        groups_ = d.counts[0];
        has_groups_ = groups_ > 0 && !layout_.empty();
    }
}

void SummaryRecordWriter::write(const WindowResult* w, std::int64_t window_end_ns, std::int64_t now_ns, bool lost,
                                std::string& out) const {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    float floats[5] = {nan, nan, nan, nan, nan};  // idle_units, then kFields
    std::uint16_t age = kNoWindow;
    int state_level = -1;
    if (w != nullptr) {
        const std::int64_t since = now_ns - window_end_ns;
        age = static_cast<std::uint16_t>(std::min<std::int64_t>(kMaxAgeMs, since > 0 ? since / 1'000'000 : 0));
        if (!lost) {  // a lost device's last window is not current (§3.1): its age only
            if (w->idle_units == w->idle_units) floats[0] = w->idle_units;
            for (std::size_t f = 0; f < 4; ++f) {
                for (const Source& s : fields_[f]) {
                    float v = nan;
                    if (s.rollup) v = w->device_rollup[s.index];
                    else if (w->present[s.index]) v = w->mean[plan_->layout.slot(s.index).offset];
                    if (v == v) floats[f + 1] = v;
                }
            }
            // The finest level whose map carries states: its `active` is measured and some
            // counter of it has a value this window (the map exists).
            for (int l = static_cast<int>(counts_.size()) - 1; l >= 0 && state_level < 0; --l) {
                const auto level = static_cast<std::size_t>(l);
                if (w->state[level].empty() || !state_measured_[level]) continue;
                for (std::uint32_t c : level_counters_[level])
                    if (w->present[c]) state_level = l;
            }
        }
    }
    // Each unit's state: its own at the unit level, its element's through the layout above.
    bool measured = false;
    std::uint32_t states[4] = {0, 0, 0, 0};
    std::uint32_t group_idle[kMaxGroups] = {};
    if (state_level >= 0) {
        const auto level = static_cast<std::size_t>(state_level);
        const std::vector<std::uint8_t>& elements = w->state[level];
        const bool unit_level = level + 1 == counts_.size();
        if (unit_level ? elements.size() == units_ : !layout_.empty()) {
            measured = true;
            const std::uint32_t groups = std::min<std::uint32_t>(groups_, kMaxGroups);
            for (std::uint32_t u = 0; u < units_; ++u) {
                std::uint8_t s = kUnplaced;
                if (unit_level) s = elements[u];
                else if (layout_[level][u] < elements.size()) s = elements[layout_[level][u]];
                if (s < 4) ++states[s];
                if (s == 0 && has_groups_ && layout_[0][u] < groups) ++group_idle[layout_[0][u]];
            }
        }
    }

    char record[kSummaryRecordBytes] = {};
    for (std::size_t f = 0; f < 5; ++f) put_le(record + 4 * f, &floats[f], 4);
    const std::uint16_t u16[6] = {age,
                                  static_cast<std::uint16_t>(std::min<std::uint32_t>(units_, 0xFFFF)),
                                  static_cast<std::uint16_t>(std::min<std::uint32_t>(states[0], 0xFFFF)),
                                  static_cast<std::uint16_t>(std::min<std::uint32_t>(states[1], 0xFFFF)),
                                  static_cast<std::uint16_t>(std::min<std::uint32_t>(states[2], 0xFFFF)),
                                  static_cast<std::uint16_t>(std::min<std::uint32_t>(states[3], 0xFFFF))};
    for (std::size_t i = 0; i < 6; ++i) put_le(record + 20 + 2 * i, &u16[i], 2);
    record[32] = static_cast<char>(lost ? 1 : 0);
    std::uint8_t flags = 0;
    if (w != nullptr) flags |= kWindow;
    if (measured) flags |= kStates;
    if (measured && has_groups_) flags |= kGroups;
    record[33] = static_cast<char>(flags);
    record[34] = static_cast<char>(std::min<std::uint32_t>(groups_, 0xFF));
    for (std::size_t g = 0; g < kMaxGroups; ++g) record[35 + g] = static_cast<char>(std::min<std::uint32_t>(group_idle[g], 0xFF));
    out.append(record, kSummaryRecordBytes);
}

}  // namespace cuagent
