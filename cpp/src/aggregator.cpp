#include "cuagent/aggregator.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace cuagent {

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

int find_counter(const DeviceDescription& d, const std::string& name, const std::string& level) {
    for (std::size_t c = 0; c < d.counters.size(); ++c)
        if (d.counters[c].name == name && d.counters[c].level == level) return static_cast<int>(c);
    return -1;
}

// Units inside each element of hierarchy level l.
std::vector<float> units_per_element(const DeviceDescription& d, std::size_t l) {
    const std::size_t unit_level = d.levels.size() - 1;
    std::vector<float> units(d.counts[l], 0.0f);
    if (l == unit_level) {
        std::fill(units.begin(), units.end(), 1.0f);
    } else if (d.has_layout()) {
        for (std::uint16_t e : d.layout[l]) units[e] += 1.0f;
    } else {
        // Arrangement unknown: the best honest statement is an even split.
        std::fill(units.begin(), units.end(), static_cast<float>(d.units) / static_cast<float>(d.counts[l]));
    }
    return units;
}

WindowResult make_prototype(const AggregationPlan& plan, const DeviceDescription& d) {
    WindowResult r;
    r.mean.assign(plan.layout.values(), kNaN);
    r.max.assign(plan.layout.values(), kNaN);
    r.present.assign(plan.layout.counters(), 0);
    r.group_mean.assign(plan.group_values, kNaN);
    r.group_max.assign(plan.group_values, kNaN);
    r.state.resize(d.levels.size());
    for (std::size_t l = 0; l < d.levels.size(); ++l)
        if (plan.state_inputs[l].active.kind != AggregationPlan::Source::None)
            r.state[l].assign(d.counts[l], kUnmeasured);
    r.partition_rollup.assign(d.partitions.size() * plan.rollups.size(), kNaN);
    r.device_rollup.assign(plan.rollups.size(), kNaN);
    return r;
}

// The hot loop: selects only, no branches, and no aliasing between the
// arrays, so the compiler vectorises it. v - v is 0 for a finite v and NaN for
// NaN and both infinities, so a non-finite value counts as no data: it adds
// nothing to the sum or the count and never raises the max (the protocol has
// no infinities, and one +inf would make the whole window's mean infinite).
// The sums are float for speed (a double sum here does not vectorise and ran
// ~4x slower); DeviceAggregator folds them into double totals every
// kSumBlock samples, so a float sum never grows past a few hundred.
// On x86-64 an AVX2 clone is picked at load time where the CPU has it: twice
// the lanes of the SSE2 baseline, measured 2x faster on ring-resident samples
// (bench/aggregate.py). Sanitizer builds keep the plain loop.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__) && \
    !defined(__SANITIZE_THREAD__)
__attribute__((target_clones("avx2", "default")))
#endif
void accumulate(const float* __restrict values, float* __restrict sum, float* __restrict max,
                std::uint32_t* __restrict count, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
        const float v = values[i];
        const bool ok = v - v == 0.0f;
        sum[i] += ok ? v : 0.0f;
        count[i] += ok ? 1u : 0u;
        max[i] = v > max[i] && v < std::numeric_limits<float>::infinity() ? v : max[i];
    }
}

bool finite(float v) noexcept { return v - v == 0.0f; }

}  // namespace

AggregationPlan::AggregationPlan(const DeviceDescription& d) : layout(d) {
    const std::size_t levels = d.levels.size();
    const std::size_t unit_level = levels - 1;
    for (const auto& c : d.counters) aggregation.push_back(c.aggregation);

    // Coarser-level groups of unit-level counters (needs the arrangement).
    if (d.has_layout()) {
        for (std::size_t c = 0; c < d.counters.size(); ++c) {
            if (layout.slot(c).level != static_cast<int>(unit_level)) continue;
            for (std::size_t l = 0; l < unit_level; ++l) {
                groups.push_back({static_cast<std::uint32_t>(c), static_cast<std::uint32_t>(l),
                                  group_values, d.counts[l]});
                group_values += d.counts[l];
            }
        }
    }

    // Rollups over partitions and the whole device.
    for (std::size_t c = 0; c < d.counters.size(); ++c) {
        const auto& spec = d.counters[c];
        const int level = layout.slot(c).level;
        if (spec.rollup.empty() || level < 0) continue;
        const auto l = static_cast<std::size_t>(level);
        Rollup r{static_cast<std::uint32_t>(c), spec.rollup, {}, units_per_element(d, l)};
        for (const auto& p : d.partitions) {
            std::vector<float> w;
            if (!p.unit_ids.empty() && (l == unit_level || d.has_layout())) {
                w.assign(d.counts[l], 0.0f);
                for (std::uint16_t u : p.unit_ids) w[l == unit_level ? u : d.layout[l][u]] += 1.0f;
            } else if (d.partitions.size() == 1) {
                w = r.device_weights;  // the only partition is the whole device
            }
            r.partition_weights.push_back(std::move(w));
        }
        rollups.push_back(std::move(r));
    }

    // Where each level finds the means its element states are decided from.
    auto source = [&](const char* name, std::size_t l) {
        Source s;
        const int measured = find_counter(d, name, d.levels[l]);
        if (measured >= 0) {
            s.kind = Source::Measured;
            s.offset = layout.slot(static_cast<std::size_t>(measured)).offset;
            return s;
        }
        const int unit_counter = find_counter(d, name, d.levels[unit_level]);
        if (unit_counter < 0) return s;
        for (const auto& g : groups)
            if (g.counter == static_cast<std::uint32_t>(unit_counter) && g.level == l) {
                s.kind = Source::Grouped;
                s.offset = g.offset;
            }
        return s;
    };
    for (std::size_t l = 0; l < levels; ++l)
        state_inputs.push_back({source("active", l), source("occupancy", l), source("mem_stall", l)});

    for (std::size_t l = levels; l-- > 0;)
        if (find_counter(d, "active", d.levels[l]) >= 0) {
            idle_level = static_cast<int>(l);
            idle_weights = units_per_element(d, l);
            break;
        }
    partition_sm_active = find_counter(d, "sm_active", kPartitionLevel);
    // The kHz CUPTI mean across SMs (pm_sm_active) when a CUPTI source gives
    // it: measured over every sample of the window, not GPM's 100 ms refresh.
    // While CUPTI is paused (an ncu session) GPM's sm_active stands in.
    device_pm_sm_active = find_counter(d, "pm_sm_active", kDeviceLevel);
    device_sm_active = find_counter(d, "sm_active", kDeviceLevel);
    for (const auto& p : d.partitions) partition_units.push_back(static_cast<float>(p.units));
    device_units = static_cast<float>(d.units);
}

DeviceAggregator::DeviceAggregator(const DeviceDescription& device,
                                   std::shared_ptr<const AggregationPlan> plan,
                                   const StateThresholds& thresholds, std::int64_t window_ns,
                                   std::int64_t window_origin_ns)
    : plan_(std::move(plan)),
      thresholds_(thresholds),
      window_ns_(window_ns),
      origin_ns_(window_origin_ns),
      device_(&device),
      published_(make_prototype(*plan_, device)) {
    const std::size_t n = plan_->layout.values();
    sum_.assign(n, 0.0f);
    total_.assign(n, 0.0);
    max_.assign(n, -std::numeric_limits<float>::infinity());
    last_.assign(n, kNaN);
    count_.assign(n, 0);
    bits_.assign(n, 0);
    for (std::size_t c = 0; c < plan_->layout.counters(); ++c) {
        const auto& slot = plan_->layout.slot(c);
        for (std::uint32_t i = slot.offset; i < slot.offset + slot.elements; ++i) {
            if (plan_->aggregation[c] == Aggregation::BitOr) bitor_values_.push_back(i);
            if (plan_->aggregation[c] == Aggregation::Last) last_values_.push_back(i);
            if (plan_->aggregation[c] == Aggregation::Sum) sum_values_.push_back(i);
            if (plan_->aggregation[c] == Aggregation::Max) max_values_.push_back(i);
        }
    }
    std::uint32_t largest_level = 0;
    for (auto count : device.counts) largest_level = std::max(largest_level, count);
    group_sum_.assign(largest_level, 0.0f);
    group_count_.assign(largest_level, 0);
    group_missing_.assign(largest_level, 0);
    unit_state_ = published_.back().state;  // all unmeasured (no history), sized like the published states
}

void DeviceAggregator::add(std::int64_t t_ns, const float* values, std::uint32_t presence) noexcept {
    const std::int64_t index = t_ns >= origin_ns_ ? (t_ns - origin_ns_) / window_ns_ : 0;
    // Late: its window was finished without it, or time has moved on past it.
    // Folding it into the open window would misplace it; opening its window
    // again would publish that window twice.
    if (index <= finished_index_ || (samples_ > 0 && index < window_index_)) {
        late_samples_.store(late_samples_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        return;
    }
    if (samples_ == 0) {
        window_index_ = index;
    } else if (index > window_index_) {
        finish_window();
        window_index_ = index;
    }
    presence_ = presence;
    accumulate(values, sum_.data(), max_.data(), count_.data(), sum_.size());
    if (++block_samples_ == kSumBlock) fold_sums();
    for (std::uint32_t i : bitor_values_) {
        const float v = values[i];
        if (v >= 0.0f && v < 4294967296.0f) bits_[i] |= static_cast<std::uint32_t>(v);
    }
    for (std::uint32_t i : last_values_)
        if (finite(values[i])) last_[i] = values[i];
    ++samples_;
}

void DeviceAggregator::fold_sums() noexcept {
    for (std::size_t i = 0; i < sum_.size(); ++i) total_[i] += sum_[i];
    std::fill(sum_.begin(), sum_.end(), 0.0f);
    block_samples_ = 0;
}

void DeviceAggregator::poll(std::int64_t now_ns, std::int64_t grace_ns,
                            std::int64_t complete_before_ns) noexcept {
    if (samples_ == 0) return;
    const std::int64_t end = origin_ns_ + (window_index_ + 1) * window_ns_;
    if (end <= complete_before_ns || now_ns >= end + grace_ns) finish_window();
}

std::int64_t DeviceAggregator::open_window_end() const noexcept {
    if (samples_ == 0) return std::numeric_limits<std::int64_t>::max();
    return origin_ns_ + (window_index_ + 1) * window_ns_;
}

const float* DeviceAggregator::resolve(const AggregationPlan::Source& source,
                                       const WindowResult& out) const noexcept {
    switch (source.kind) {
        case AggregationPlan::Source::Measured: return out.mean.data() + source.offset;
        case AggregationPlan::Source::Grouped: return out.group_mean.data() + source.offset;
        default: return nullptr;
    }
}

void DeviceAggregator::finish_window() noexcept {
    WindowResult& out = published_.back();
    const DeviceDescription& d = *device_;
    out.seq = windows_.load(std::memory_order_relaxed) + 1;
    windows_.store(out.seq, std::memory_order_relaxed);
    if (finished_index_ != std::numeric_limits<std::int64_t>::min() && window_index_ > finished_index_ + 1 &&
        presence_ == finished_presence_)
        windows_missed_.store(windows_missed_.load(std::memory_order_relaxed) +
                                  static_cast<std::uint64_t>(window_index_ - finished_index_ - 1),
                              std::memory_order_relaxed);
    finished_index_ = window_index_;
    finished_presence_ = presence_;
    out.windows_missed = windows_missed_.load(std::memory_order_relaxed);
    out.t_end_ns = origin_ns_ + (window_index_ + 1) * window_ns_;
    out.window_ns = window_ns_;
    out.samples = samples_;

    const std::size_t n = sum_.size();
    for (std::size_t i = 0; i < n; ++i) {
        const bool any = count_[i] > 0;
        out.mean[i] = any ? static_cast<float>((total_[i] + sum_[i]) / count_[i]) : kNaN;
        out.max[i] = any ? max_[i] : kNaN;
    }
    for (std::uint32_t i : bitor_values_)
        out.mean[i] = out.max[i] = count_[i] ? static_cast<float>(bits_[i]) : kNaN;
    for (std::uint32_t i : last_values_) out.mean[i] = out.max[i] = last_[i];
    for (std::uint32_t i : sum_values_)
        out.mean[i] = out.max[i] = count_[i] ? static_cast<float>(total_[i] + sum_[i]) : kNaN;
    for (std::uint32_t i : max_values_) out.mean[i] = out.max[i];
    for (std::size_t c = 0; c < plan_->layout.counters(); ++c) {
        const auto& slot = plan_->layout.slot(c);
        std::uint8_t any = 0;
        for (std::uint32_t i = slot.offset; i < slot.offset + slot.elements; ++i)
            if (count_[i]) any = 1;
        out.present[c] = any;
    }

    // Coarser levels: mean of the unit means, max of the unit maxima. A whole is known
    // only when every part is: an element one of whose units has no value this
    // window has none either (its mean would pass the others' for all of them).
    for (const auto& g : plan_->groups) {
        const auto& slot = plan_->layout.slot(g.counter);
        const auto& ancestor = d.layout[g.level];
        float* gmean = out.group_mean.data() + g.offset;
        float* gmax = out.group_max.data() + g.offset;
        std::fill(group_sum_.begin(), group_sum_.begin() + g.elements, 0.0f);
        std::fill(group_count_.begin(), group_count_.begin() + g.elements, 0u);
        std::fill(group_missing_.begin(), group_missing_.begin() + g.elements, std::uint8_t{0});
        std::fill(gmax, gmax + g.elements, kNaN);
        for (std::uint32_t u = 0; u < slot.elements; ++u) {
            const float m = out.mean[slot.offset + u];
            const std::uint16_t e = ancestor[u];
            if (m != m) {
                group_missing_[e] = 1;
                continue;
            }
            group_sum_[e] += m;
            ++group_count_[e];
            const float x = out.max[slot.offset + u];
            if (!(gmax[e] >= x)) gmax[e] = x;  // NaN-initialised: first value wins
        }
        for (std::uint32_t e = 0; e < g.elements; ++e) {
            const bool known = group_count_[e] && !group_missing_[e];
            gmean[e] = known ? group_sum_[e] / static_cast<float>(group_count_[e]) : kNaN;
            if (!known) gmax[e] = kNaN;
        }
    }

    // Rollups: unit-weighted means over each partition and the device; absent when a
    // unit that weighs in has no value this window (not a mean of the others).
    const std::size_t rollups = plan_->rollups.size();
    auto weighted_mean = [](const float* values, const std::vector<float>& weights) {
        double num = 0.0, den = 0.0;
        for (std::size_t e = 0; e < weights.size(); ++e) {
            if (weights[e] == 0.0f) continue;
            if (values[e] != values[e]) return kNaN;
            num += static_cast<double>(weights[e]) * values[e];
            den += weights[e];
        }
        return den > 0.0 ? static_cast<float>(num / den) : kNaN;
    };
    for (std::size_t r = 0; r < rollups; ++r) {
        const auto& rollup = plan_->rollups[r];
        const float* values = out.mean.data() + plan_->layout.slot(rollup.counter).offset;
        out.device_rollup[r] = weighted_mean(values, rollup.device_weights);
        for (std::size_t p = 0; p < rollup.partition_weights.size(); ++p)
            out.partition_rollup[p * rollups + r] = weighted_mean(values, rollup.partition_weights[p]);
    }

    // Element states, with hysteresis carried in unit_state_.
    for (std::size_t l = 0; l < plan_->state_inputs.size(); ++l) {
        const auto& in = plan_->state_inputs[l];
        const float* active = resolve(in.active, out);
        if (active == nullptr) continue;
        const float* occupancy = resolve(in.occupancy, out);
        const float* stall = resolve(in.mem_stall, out);
        auto& state = unit_state_[l];
        auto& published = out.state[l];
        for (std::size_t e = 0; e < state.size(); ++e) {
            state[e] = next_unit_state(state[e], active[e], occupancy ? occupancy[e] : kNaN,
                                       stall ? stall[e] : kNaN, thresholds_);
            // Claimed only where measured this window: an older window's state is not this one's.
            published[e] = active[e] == active[e] ? state[e] : std::uint8_t{kUnmeasured};
        }
    }

    // idle_units from the finest level that measures `active`, else from sm_active: from
    // the first source that covers every unit this window. An element (or partition) that
    // weighs in without a value, or a partition of unknown size, leaves the source's sum
    // incomplete, hence absent (as the rollups are): counting it as busy would be a value
    // nothing measured.
    out.idle_units = kNaN;
    if (plan_->idle_level >= 0) {
        const float* active = resolve(plan_->state_inputs[static_cast<std::size_t>(plan_->idle_level)].active, out);
        double idle = 0.0;
        bool complete = !plan_->idle_weights.empty();
        for (std::size_t e = 0; e < plan_->idle_weights.size() && complete; ++e) {
            if (plan_->idle_weights[e] == 0.0f) continue;
            complete = active[e] == active[e];
            idle += (1.0 - static_cast<double>(active[e])) * plan_->idle_weights[e];
        }
        if (complete) out.idle_units = static_cast<float>(idle);
    }
    if (out.idle_units != out.idle_units && plan_->partition_sm_active >= 0) {
        const float* v = out.mean.data() + plan_->layout.slot(static_cast<std::size_t>(plan_->partition_sm_active)).offset;
        double idle = 0.0;
        bool complete = !plan_->partition_units.empty();
        for (std::size_t p = 0; p < plan_->partition_units.size() && complete; ++p) {
            complete = v[p] == v[p] && plan_->partition_units[p] != 0;  // 0: size unknown
            idle += (1.0 - static_cast<double>(v[p])) * plan_->partition_units[p];
        }
        if (complete) out.idle_units = static_cast<float>(idle);
    }
    for (const int counter : {plan_->device_pm_sm_active, plan_->device_sm_active}) {
        if (out.idle_units == out.idle_units || counter < 0 || plan_->device_units <= 0) continue;
        const float v = out.mean[plan_->layout.slot(static_cast<std::size_t>(counter)).offset];
        if (v == v) out.idle_units = (1.0f - v) * plan_->device_units;
    }

    published_.publish();
    reset_window();
}

void DeviceAggregator::reset_window() noexcept {
    samples_ = 0;
    std::fill(sum_.begin(), sum_.end(), 0.0f);
    std::fill(total_.begin(), total_.end(), 0.0);
    block_samples_ = 0;
    std::fill(max_.begin(), max_.end(), -std::numeric_limits<float>::infinity());
    std::fill(count_.begin(), count_.end(), 0u);
    for (std::uint32_t i : bitor_values_) bits_[i] = 0;
    for (std::uint32_t i : last_values_) last_[i] = kNaN;
}

}  // namespace cuagent
