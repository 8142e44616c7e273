#include "mock_sim.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace cuagent::mock {
namespace {

// Heap order: earlier end first, then earlier scheduling.
template <typename Entry>
bool later(const Entry& a, const Entry& b) {
    return a.end != b.end ? a.end > b.end : a.seq > b.seq;
}

std::uint32_t warps_of(std::uint32_t threads, std::uint32_t warp_size) {
    return std::max<std::uint32_t>(1, (threads + warp_size - 1) / warp_size);
}

}  // namespace

DeviceSim::DeviceSim(const Preset& preset, const ScenarioPlan& plan, std::uint64_t seed)
    : seed_(seed),
      limits_(preset.limits),
      calibration_(preset.power),
      plan_(plan),
      units_(preset.units),
      rng_(seed),
      power_(preset.power, static_cast<double>(kTickNs) * 1e-9),
      warps_(units_, 0),
      blocks_(units_, 0),
      shared_(units_, 0),
      tensor_w_(units_, 0),
      issue_w_(units_, 0),
      stall_w_(units_, 0),
      dram_(units_, 0),
      active_f_(units_, 0.0f),
      occupancy_f_(units_, 0.0f),
      issue_f_(units_, 0.0f),
      tensor_f_(units_, 0.0f),
      stall_f_(units_, 0.0f) {
    // Every block that can ever be resident has a slot and a heap entry now,
    // so the event loop never allocates.
    const std::size_t capacity = std::size_t{units_} * limits_.max_blocks;
    slots_.resize(capacity);
    free_slots_.resize(capacity);
    for (std::size_t i = 0; i < capacity; ++i)
        free_slots_[i] = static_cast<std::uint32_t>(capacity - 1 - i);
    free_top_ = capacity;
    heap_.resize(capacity);

    streams_.resize(plan_.streams.size());
    for (std::size_t i = 0; i < streams_.size(); ++i) {
        Stream& s = streams_[i];
        s.plan = &plan_.streams[i];
        s.in_domain.assign(units_, 0);
        s.group_of_unit.assign(units_, -1);
        std::vector<std::int32_t> group_index(preset.groups(), -1);
        for (auto u : s.plan->domain) {
            s.in_domain[u] = 1;
            const auto g = preset.layout.front()[u];
            if (group_index[g] < 0) {
                group_index[g] = static_cast<std::int32_t>(s.groups.size());
                s.groups.emplace_back();
            }
            s.groups[static_cast<std::size_t>(group_index[g])].push_back(u);
            s.group_of_unit[u] = group_index[g];
        }
    }
    schedule_first_launches();

    advance_to(kWarmupNs);
    power_.settle();
}

// First launch of every stream from the current clock: continuous streams
// start within one gap, bursty ones after an idle interval.
void DeviceSim::schedule_first_launches() {
    for (auto& s : streams_) {
        s.pending = s.running = 0;
        s.burst_left = 0;
        s.next_kernel = 0;
        const double first_ns =
            s.plan->burst_interval_ms > 0 ? rng_.exponential(s.plan->burst_interval_ms * 1e6)
                                          : rng_.uniform() * s.plan->gap_us * 1e3;
        s.next_launch =
            s.plan->domain.empty() ? kNever : clock_ns_ + static_cast<std::int64_t>(first_ns);
    }
}

void DeviceSim::restart_at(std::int64_t t) noexcept {
    rng_ = Rng(mix64(seed_ ^ mix64(static_cast<std::uint64_t>(t))));
    std::fill(warps_.begin(), warps_.end(), 0u);
    std::fill(blocks_.begin(), blocks_.end(), 0u);
    std::fill(shared_.begin(), shared_.end(), 0u);
    std::fill(tensor_w_.begin(), tensor_w_.end(), 0u);
    std::fill(issue_w_.begin(), issue_w_.end(), 0u);
    std::fill(stall_w_.begin(), stall_w_.end(), 0u);
    std::fill(dram_.begin(), dram_.end(), 0u);
    for (auto* f : {&active_f_, &occupancy_f_, &issue_f_, &tensor_f_, &stall_f_})
        std::fill(f->begin(), f->end(), 0.0f);
    active_units_ = 0;
    dram_total_ = 0;
    tensor_sum_ = issue_sum_ = 0;
    const std::size_t capacity = slots_.size();
    for (std::size_t i = 0; i < capacity; ++i)
        free_slots_[i] = static_cast<std::uint32_t>(capacity - 1 - i);
    free_top_ = capacity;
    heap_size_ = 0;
    clock_ns_ = t;
    next_tick_ns_ = (t / kTickNs + 1) * kTickNs;
    last_accumulated_ns_ = t;
    acc_active_ = acc_tensor_ = acc_issue_ = acc_dram_ = 0;
    power_.reset();
    schedule_first_launches();
}

// --- Units -------------------------------------------------------------------

std::uint32_t DeviceSim::room(const Stream& s, std::uint32_t u) const {
    std::uint32_t n = std::min((limits_.max_warps - warps_[u]) / s.warps,
                               limits_.max_blocks - blocks_[u]);
    if (s.shared > 0) n = std::min(n, (limits_.shared_bytes - shared_[u]) / s.shared);
    return n;
}

bool DeviceSim::fits(const Stream& s, std::uint32_t u) const {
    return warps_[u] + s.warps <= limits_.max_warps && blocks_[u] < limits_.max_blocks &&
           shared_[u] + s.shared <= limits_.shared_bytes;
}

void DeviceSim::place(std::uint32_t stream, std::uint32_t u) {
    Stream& s = streams_[stream];
    const KernelProfile& p = s.kernel->profile;
    const std::uint32_t w = s.warps;

    const std::uint32_t old_warps = warps_[u];
    if (old_warps > 0) {
        tensor_sum_ -= tensor_w_[u] / (1000.0 * old_warps);
        issue_sum_ -= issue_w_[u] / (1000.0 * old_warps);
    } else {
        ++active_units_;
    }
    warps_[u] += w;
    blocks_[u] += 1;
    shared_[u] += s.shared;
    tensor_w_[u] += w * p.tensor;
    issue_w_[u] += w * p.issue;
    stall_w_[u] += w * p.mem_stall;
    dram_[u] += p.dram;
    dram_total_ += p.dram;
    tensor_sum_ += tensor_w_[u] / (1000.0 * warps_[u]);
    issue_sum_ += issue_w_[u] / (1000.0 * warps_[u]);

    refresh_unit(u);

    const std::uint32_t slot = free_slots_[--free_top_];
    slots_[slot] = {u, stream};
    const double duration = s.typical_ns * rng_.lognormal(1.0, s.kernel->block_sigma);
    const auto end = clock_ns_ + std::max<std::int64_t>(1000, std::llround(duration));
    heap_push({end, seq_++, slot});
    --s.pending;
    ++s.running;
}

void DeviceSim::remove(std::uint32_t slot) {
    const Block b = slots_[slot];
    Stream& s = streams_[b.stream];
    const KernelProfile& p = s.kernel->profile;
    const std::uint32_t u = b.unit, w = s.warps;

    tensor_sum_ -= tensor_w_[u] / (1000.0 * warps_[u]);
    issue_sum_ -= issue_w_[u] / (1000.0 * warps_[u]);
    warps_[u] -= w;
    blocks_[u] -= 1;
    shared_[u] -= s.shared;
    tensor_w_[u] -= w * p.tensor;
    issue_w_[u] -= w * p.issue;
    stall_w_[u] -= w * p.mem_stall;
    dram_[u] -= p.dram;
    dram_total_ -= p.dram;
    if (warps_[u] > 0) {
        tensor_sum_ += tensor_w_[u] / (1000.0 * warps_[u]);
        issue_sum_ += issue_w_[u] / (1000.0 * warps_[u]);
    } else if (--active_units_ == 0) {
        tensor_sum_ = issue_sum_ = 0;  // nothing resident: drop rounding residue
    }
    refresh_unit(u);
    free_slots_[free_top_++] = slot;
    --s.running;
}

// --- Scheduling --------------------------------------------------------------

// Breadth-first pass(es) over the stream's domain until its pending blocks are
// placed or no unit has room. Called when a kernel is launched.
void DeviceSim::dispatch(std::uint32_t stream) {
    Stream& s = streams_[stream];
    if (s.cluster > 1) {
        std::size_t misses = 0;
        while (s.pending >= s.cluster && misses < s.groups.size()) {
            const std::size_t g = s.group_cursor;
            s.group_cursor = (s.group_cursor + 1) % s.groups.size();
            if (place_cluster(stream, g)) misses = 0;
            else ++misses;
        }
        return;
    }
    const auto& domain = s.plan->domain;
    const std::size_t n = domain.size();
    std::size_t misses = 0;
    while (s.pending > 0 && misses < n) {
        const std::uint32_t u = domain[s.cursor];
        s.cursor = (s.cursor + 1) % n;
        if (fits(s, u)) {
            place(stream, u);
            misses = 0;
        } else {
            ++misses;
        }
    }
}

// All blocks of one cluster inside one group, or none.
bool DeviceSim::place_cluster(std::uint32_t stream, std::size_t group) {
    Stream& s = streams_[stream];
    const auto& members = s.groups[group];
    std::uint32_t total = 0;
    for (auto u : members) {
        total += room(s, u);
        if (total >= s.cluster) break;
    }
    if (total < s.cluster) return false;
    std::uint32_t left = s.cluster;
    while (left > 0) {
        for (auto u : members) {
            if (left == 0) break;
            if (fits(s, u)) {
                place(stream, u);
                --left;
            }
        }
    }
    return true;
}

void DeviceSim::launch(std::uint32_t stream) {
    Stream& s = streams_[stream];
    const StreamPlan& plan = *s.plan;
    if (plan.burst_interval_ms > 0 && s.burst_left == 0)
        s.burst_left = rng_.between(plan.burst_min, plan.burst_max);

    s.kernel = &plan.cycle[s.next_kernel];
    s.next_kernel = (s.next_kernel + 1) % plan.cycle.size();
    const KernelTemplate& k = *s.kernel;
    s.warps = std::min(warps_of(k.threads, limits_.warp_size), limits_.max_warps);
    s.shared = static_cast<std::uint32_t>(k.shared_fraction * limits_.shared_bytes);
    std::uint32_t largest_group = 1;
    for (const auto& g : s.groups)
        largest_group = std::max(largest_group, static_cast<std::uint32_t>(g.size()));
    s.cluster = std::max<std::uint32_t>(1, std::min(k.cluster, largest_group));

    const double per_unit =
        k.grid_min_per_unit + rng_.uniform() * (k.grid_max_per_unit - k.grid_min_per_unit);
    auto grid = static_cast<std::uint32_t>(
        std::max(1.0, std::round(per_unit * static_cast<double>(plan.domain.size()))));
    grid = (grid + s.cluster - 1) / s.cluster * s.cluster;
    s.pending = grid;
    s.typical_ns = rng_.lognormal(k.block_us * 1e3, k.kernel_sigma);
    s.next_launch = kNever;
    dispatch(stream);
}

void DeviceSim::kernel_done(std::uint32_t stream) {
    Stream& s = streams_[stream];
    const StreamPlan& plan = *s.plan;
    const double gap_ns = rng_.lognormal(plan.gap_us * 1e3, 0.3);
    double wait_ns = gap_ns;
    if (plan.burst_interval_ms > 0 && --s.burst_left == 0)
        wait_ns = rng_.exponential(plan.burst_interval_ms * 1e6);
    s.next_launch = clock_ns_ + std::llround(wait_ns);
}

void DeviceSim::complete_next() {
    const Completion c = heap_pop();
    const std::uint32_t u = slots_[c.slot].unit;
    const std::uint32_t stream = slots_[c.slot].stream;
    remove(c.slot);
    Stream& done = streams_[stream];
    if (done.pending == 0 && done.running == 0) kernel_done(stream);

    // Only unit u gained room, so only u (or its group, for clusters) can take
    // a block that did not fit anywhere before.
    for (std::uint32_t i = 0; i < streams_.size(); ++i) {
        Stream& s = streams_[i];
        if (s.pending == 0 || !s.in_domain[u]) continue;
        if (s.cluster > 1) {
            const auto g = static_cast<std::size_t>(s.group_of_unit[u]);
            while (s.pending >= s.cluster && place_cluster(i, g)) {
            }
        } else {
            while (s.pending > 0 && fits(s, u)) place(i, u);
        }
    }
}

// --- Device ------------------------------------------------------------------

void DeviceSim::accumulate(std::int64_t t) {
    const auto dt = static_cast<double>(t - last_accumulated_ns_);
    if (dt <= 0) return;
    acc_active_ += static_cast<double>(active_units_) * dt;
    acc_tensor_ += tensor_sum_ * dt;
    acc_issue_ += issue_sum_ * dt;
    acc_dram_ += dram_active() * dt;
    last_accumulated_ns_ = t;
}

void DeviceSim::device_tick() {
    const double norm = 1.0 / (static_cast<double>(units_) * static_cast<double>(kTickNs));
    TickLoad load;
    load.active = acc_active_ * norm;
    load.tensor = acc_tensor_ * norm;
    load.issue = acc_issue_ * norm;
    load.dram = acc_dram_ / static_cast<double>(kTickNs);
    acc_active_ = acc_tensor_ = acc_issue_ = acc_dram_ = 0;
    power_.tick(load, clock_ns_);
    next_tick_ns_ += kTickNs;
}

void DeviceSim::advance_to(std::int64_t t) noexcept {
    for (;;) {
        const std::int64_t t_block = heap_size_ > 0 ? heap_[0].end : kNever;
        std::int64_t t_launch = kNever;
        std::uint32_t launching = 0;
        for (std::uint32_t i = 0; i < streams_.size(); ++i) {
            if (streams_[i].next_launch < t_launch) {
                t_launch = streams_[i].next_launch;
                launching = i;
            }
        }
        const std::int64_t next = std::min({t_block, t_launch, next_tick_ns_});
        if (next > t) break;
        accumulate(next);
        clock_ns_ = next;
        // Same-time order: completions, then launches, then the device tick.
        if (t_block == next) complete_next();
        else if (t_launch == next) launch(launching);
        else device_tick();
    }
}

void DeviceSim::refresh_unit(std::uint32_t u) {
    const std::uint32_t w = warps_[u];
    if (w == 0) {
        active_f_[u] = occupancy_f_[u] = issue_f_[u] = tensor_f_[u] = stall_f_[u] = 0.0f;
        return;
    }
    const double inv = 1.0 / (1000.0 * w);
    active_f_[u] = 1.0f;
    occupancy_f_[u] = static_cast<float>(static_cast<double>(w) / limits_.max_warps);
    issue_f_[u] = static_cast<float>(issue_w_[u] * inv);
    tensor_f_[u] = static_cast<float>(tensor_w_[u] * inv);
    stall_f_[u] = static_cast<float>(stall_w_[u] * inv);
}

void DeviceSim::write_units(float* active, float* occupancy, float* issue, float* tensor,
                            float* mem_stall) const noexcept {
    const std::size_t bytes = sizeof(float) * units_;
    std::memcpy(active, active_f_.data(), bytes);
    std::memcpy(occupancy, occupancy_f_.data(), bytes);
    std::memcpy(issue, issue_f_.data(), bytes);
    std::memcpy(tensor, tensor_f_.data(), bytes);
    std::memcpy(mem_stall, stall_f_.data(), bytes);
}

float DeviceSim::dram_active() const noexcept {
    const double share = static_cast<double>(dram_total_) / (1000.0 * units_);
    return static_cast<float>(std::min(1.0, share));
}

// --- Event heap (min-heap on (end, seq)) over preallocated storage -------------

void DeviceSim::heap_push(const Completion& c) {
    std::size_t i = heap_size_++;
    while (i > 0) {
        const std::size_t parent = (i - 1) / 2;
        if (!later(heap_[parent], c)) break;
        heap_[i] = heap_[parent];
        i = parent;
    }
    heap_[i] = c;
}

DeviceSim::Completion DeviceSim::heap_pop() {
    const Completion top = heap_[0];
    const Completion last = heap_[--heap_size_];
    std::size_t i = 0;
    for (;;) {
        std::size_t child = 2 * i + 1;
        if (child >= heap_size_) break;
        if (child + 1 < heap_size_ && later(heap_[child], heap_[child + 1])) ++child;
        if (!later(last, heap_[child])) break;
        heap_[i] = heap_[child];
        i = child;
    }
    if (heap_size_ > 0) heap_[i] = last;
    return top;
}

}  // namespace cuagent::mock
