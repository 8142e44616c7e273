#include "cuagent/sampler.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>

#include "cuagent/clock.hpp"
#include "cuagent/platform.hpp"

namespace cuagent {

namespace {
constexpr std::int64_t kErrorEventGapNs = 10'000'000'000;  // at most one backend_error per device per 10 s
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
// x mod m in [0, m) for any sign of x (times before the grid origin).
std::int64_t floor_mod(std::int64_t x, std::int64_t m) noexcept { return ((x % m) + m) % m; }
}  // namespace

Sampler::Sampler(const std::vector<std::vector<DeviceSource>>& sources, const std::vector<std::uint32_t>& values,
                 std::vector<std::unique_ptr<SlotRing>>& rings, SlotRing& events, DeviceCounters* device_counters,
                 SamplerCounters& counters, std::int64_t period_ns, std::size_t result_capacity,
                 std::int64_t window_ns)
    : rings_(rings),
      events_(events),
      device_counters_(device_counters),
      counters_(counters),
      period_ns_(period_ns),
      window_ns_(window_ns),
      values_(values) {
    const std::size_t n = sources.size();
    for (std::size_t d = 0; d < n; ++d) {
        first_source_.push_back(sources_.size());
        std::int64_t fastest = std::numeric_limits<std::int64_t>::max();
        for (std::size_t i = 0; i < sources[d].size(); ++i) {
            const DeviceSource& where = sources[d][i];
            Source s;
            s.where = where;
            s.device = d;
            s.primary = i == 0;
            const std::int64_t interval = where.driver->min_read_interval_ns(where.index);
            s.stride = std::max<std::int64_t>(1, (interval + period_ns - 1) / period_ns);
            if (where.driver->read_may_block(where.index)) {
                // Only the primary source may find the device back; the
                // others pause while it is gone.
                // Its ring holds about as much time as the device's ring.
                const auto capacity = std::max<std::size_t>(8, result_capacity / static_cast<std::size_t>(s.stride));
                s.reader = std::make_unique<SourceReader>(*where.driver, where.index, where.values, period_ns,
                                                          s.stride, capacity,
                                                          s.primary ? nullptr : &device_counters[d].lost);
            }
            fastest = std::min(fastest, s.stride);
            sources_.push_back(std::move(s));
        }
        device_stride_.push_back(sources[d].empty() ? 1 : fastest);
    }
    first_source_.push_back(sources_.size());
    next_due_.assign(sources_.size(), 0);
    awaited_.assign(sources_.size(), -1);
    retry_ticks_.assign(sources_.size(), 1);
    last_relayed_ns_.assign(sources_.size(), std::numeric_limits<std::int64_t>::min());
    lost_retry_ns_.assign(n, 0);
    presence_.assign(n, 0);
    last_error_event_ns_.assign(n, std::numeric_limits<std::int64_t>::min() / 2);
}

std::vector<SourceReader*> Sampler::readers() const {
    std::vector<SourceReader*> out;
    for (const auto& s : sources_)
        if (s.reader) out.push_back(s.reader.get());
    return out;
}

std::uint64_t Sampler::skipped_reads(std::size_t device) const {
    std::uint64_t n = 0;
    for (std::size_t i = first_source_[device]; i < first_source_[device + 1]; ++i)
        if (sources_[i].reader) n += sources_[i].reader->skipped_reads();
    return n;
}

std::uint64_t Sampler::reader_drops(std::size_t device) const {
    std::uint64_t n = 0;
    for (std::size_t i = first_source_[device]; i < first_source_[device + 1]; ++i)
        if (sources_[i].reader) n += sources_[i].reader->drops();
    return n;
}

bool Sampler::has_reader(std::size_t device) const {
    for (std::size_t i = first_source_[device]; i < first_source_[device + 1]; ++i)
        if (sources_[i].reader) return true;
    return false;
}

void Sampler::emit(std::size_t d, EventType type, const char* detail, std::int64_t now_ns) noexcept {
    void* slot = events_.try_claim();
    if (slot == nullptr) {
        counters_.events_dropped.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    auto* event = static_cast<EngineEvent*>(slot);
    event->t_ns = now_ns;
    event->device = static_cast<std::uint32_t>(d);
    event->type = type;
    std::snprintf(event->detail, sizeof event->detail, "%s", detail ? detail : "");
    events_.publish();
}

bool Sampler::accept(const Source& s, ReadStatus status, const char* detail, std::int64_t t_ns) noexcept {
    const std::size_t d = s.device;
    DeviceCounters& dc = device_counters_[d];
    const bool lost = dc.lost.load(std::memory_order_relaxed);
    // While the device is gone only its primary source speaks for it.
    if (lost && !s.primary) return false;
    if (status == ReadStatus::Ok) {
        if (lost) {
            ++presence_[d];
            dc.lost.store(false, std::memory_order_relaxed);
            emit(d, EventType::DeviceBack, detail, t_ns);
        }
        return true;
    }
    if (status == ReadStatus::Lost && s.primary) {
        if (!lost) {
            ++presence_[d];
            dc.lost.store(true, std::memory_order_relaxed);
            emit(d, EventType::DeviceLost, detail[0] ? detail : "device lost", t_ns);
        }
        lost_retry_ns_[d] = t_ns + kLostRetryNs;
        return false;
    }
    // A failed read, or another source of a device still there losing its
    // hardware: that source's counters are absent, the device stays.
    const auto errors = dc.read_errors.fetch_add(1, std::memory_order_relaxed) + 1;
    if (t_ns - last_error_event_ns_[d] >= kErrorEventGapNs) {
        last_error_event_ns_[d] = t_ns;
        char text[sizeof(EngineEvent::detail)];
        std::snprintf(text, sizeof text, "read failed (%llu so far): %.80s", static_cast<unsigned long long>(errors),
                      detail[0] ? detail : "no detail");
        emit(d, EventType::BackendError, text, t_ns);
    }
    return false;
}

void Sampler::read_inline(std::size_t d, std::int64_t k) noexcept {
    DeviceCounters& dc = device_counters_[d];
    const Source& primary = sources_[first_source_[d]];
    if (dc.lost.load(std::memory_order_relaxed)) {
        // Gone: a primary read on its own thread retries by itself; an inline
        // one is tried again about once a second.
        if (primary.reader || monotonic_ns() < lost_retry_ns_[d]) return;
    }
    void* slot = rings_[d]->try_claim();
    if (slot == nullptr) {  // the aggregator fell behind: drop rather than wait
        dc.drops.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    float* values = sample_values(slot);
    std::fill(values, values + values_[d], kNaN);
    char detail[sizeof(EngineEvent::detail)];
    const std::int64_t t = monotonic_ns();
    static_cast<SampleHeader*>(slot)->t_ns = t;
    bool any = false;
    for (std::size_t i = first_source_[d]; i < first_source_[d + 1]; ++i) {
        const Source& s = sources_[i];
        if (s.reader || next_due_[i] > k) continue;
        if (!s.primary && dc.lost.load(std::memory_order_relaxed)) break;  // the primary just found it gone
        detail[0] = '\0';
        const ReadStatus status = s.where.driver->read(s.where.index, t, values + s.where.offset, detail, sizeof detail);
        if (accept(s, status, detail, t)) {
            any = true;
        } else {
            // Its values, if it wrote any, are not data.
            std::fill(values + s.where.offset, values + s.where.offset + s.where.values, kNaN);
        }
    }
    if (any) {
        static_cast<SampleHeader*>(slot)->presence = presence_[d];  // after accept() may have moved it
        rings_[d]->publish();
        dc.samples.fetch_add(1, std::memory_order_relaxed);
    }
}

void Sampler::relay(Source& s, std::int64_t& last_t_ns) noexcept {
    const std::size_t d = s.device;
    DeviceCounters& dc = device_counters_[d];
    SlotRing& results = s.reader->results();
    while (const void* result = results.front()) {
        const auto* head = static_cast<const ReadResult*>(result);
        last_t_ns = head->t_ns;
        if (accept(s, head->status, head->detail, head->t_ns)) {
            void* slot = rings_[d]->try_claim();
            if (slot == nullptr) {
                dc.drops.fetch_add(1, std::memory_order_relaxed);
            } else {
                // Its own sample, stamped with when it was read: the
                // aggregator puts it in the window it belongs to, and drops it
                // if that window was already finished without it.
                float* values = sample_values(slot);
                std::fill(values, values + values_[d], kNaN);
                std::memcpy(values + s.where.offset, result_values(result), s.where.values * sizeof(float));
                static_cast<SampleHeader*>(slot)->t_ns = head->t_ns;
                static_cast<SampleHeader*>(slot)->presence = presence_[d];
                rings_[d]->publish();
                dc.samples.fetch_add(1, std::memory_order_relaxed);
            }
        }
        results.pop();
    }
}

void Sampler::run(const platform::StopFlag& stop, std::int64_t t0_ns, std::int64_t grid_origin_ns,
                  platform::Doorbell* window_done) noexcept {
    platform::set_fine_timer_slack();
    // Each driver read inline here learns of this thread once.
    for (std::size_t i = 0; i < sources_.size(); ++i) {
        if (sources_[i].reader) continue;
        bool seen = false;
        for (std::size_t j = 0; j < i; ++j) seen |= !sources_[j].reader && sources_[j].where.driver == sources_[i].where.driver;
        if (!seen) sources_[i].where.driver->on_sampler_start();
    }
    const std::size_t n = first_source_.size() - 1;
    // t0 lies on the period grid counted from grid_origin_ns (the window grid).
    // A source read every `stride` ticks is read on the multiples of
    // stride * period on that grid, so a device refreshed every 100 ms with
    // 100 ms windows is read right at each window end, which completes the
    // window at once instead of whenever its phase happens to fall. The
    // relays of a reader's results keep its grid too.
    const std::int64_t base = (t0_ns - grid_origin_ns) / period_ns_;
    for (std::size_t i = 0; i < sources_.size(); ++i) next_due_[i] = next_on_grid(0, base, sources_[i].stride);
    std::int64_t k = sources_.empty() ? 0 : *std::min_element(next_due_.begin(), next_due_.end());
    // The end of the window the next tick may complete.
    std::int64_t window_end = t0_ns - floor_mod(t0_ns - grid_origin_ns, window_ns_) + window_ns_;
    while (!stop.requested()) {
        const std::int64_t deadline = t0_ns + k * period_ns_;
        stop.sleep_until(deadline);
        if (stop.requested()) break;
        const std::int64_t woke = monotonic_ns();
        counters_.jitter.record(woke - deadline);

        // Every sample taken before `woke` is in a ring (ticks run one after another, and a
        // read stamps its sample with a time at or after its tick's wake-up) but for reads
        // still running on readers: so a window ending by `woke` is complete before this
        // tick reads anything. Say so first, then read: the aggregator finishes the window
        // while this thread reads the next one's first sample.
        for (std::size_t d = 0; d < n; ++d) {
            std::int64_t complete_before = woke;
            for (std::size_t i = first_source_[d]; i < first_source_[d + 1]; ++i) {
                Source& s = sources_[i];
                if (!s.reader) continue;
                // Before draining: a read that started earlier has its
                // result in the ring; one still running holds back the
                // window it started in.
                complete_before = std::min(complete_before, s.reader->in_flight_since());
                relay(s, last_relayed_ns_[i]);
                // The read due now starts at this tick's deadline: until
                // its result is relayed, it is awaited (not while the
                // device is gone: its reader then tries once a second).
                if (next_due_[i] <= k && !device_counters_[d].lost.load(std::memory_order_relaxed)) {
                    awaited_[i] = k;
                    retry_ticks_[i] = 1;
                }
                if (awaited_[i] >= 0 && last_relayed_ns_[i] >= t0_ns + awaited_[i] * period_ns_) awaited_[i] = -1;
            }
            // Release: the ring slots published above happen-before this store.
            device_counters_[d].complete_before_ns.store(complete_before, std::memory_order_release);
        }
        if (woke >= window_end) {
            window_end = woke - floor_mod(woke - grid_origin_ns, window_ns_) + window_ns_;
            if (window_done != nullptr) window_done->ring();
        }
        for (std::size_t d = 0; d < n; ++d) {
            for (std::size_t i = first_source_[d]; i < first_source_[d + 1]; ++i) {
                if (!sources_[i].reader && next_due_[i] <= k) {
                    read_inline(d, k);
                    break;
                }
            }
        }
        counters_.ticks.fetch_add(1, std::memory_order_relaxed);

        std::int64_t next = std::numeric_limits<std::int64_t>::max();
        for (std::size_t i = 0; i < sources_.size(); ++i) {
            if (next_due_[i] <= k) next_due_[i] = k + sources_[i].stride;
            next = std::min(next, next_due_[i]);
        }
        if (sources_.empty()) next = k + 1;
        const std::int64_t done = monotonic_ns();
        // Overrun: the next due tick's deadline has already passed. Skip to the
        // first tick still in the future (on each source's grid) instead of
        // running the missed ones back to back, and count the inline reads
        // that were skipped. A reader's relay that comes late loses nothing:
        // its results wait in its ring.
        const std::int64_t first_future = (done - t0_ns) / period_ns_ + 1;
        if (first_future > next) {
            std::int64_t skipped = 0;
            next = std::numeric_limits<std::int64_t>::max();
            for (std::size_t i = 0; i < sources_.size(); ++i) {
                const std::int64_t due = next_due_[i];
                if (due < first_future) {
                    next_due_[i] = next_on_grid(first_future, base, sources_[i].stride);
                    if (!sources_[i].reader) skipped = std::max(skipped, (next_due_[i] - due) / sources_[i].stride);
                }
                next = std::min(next, next_due_[i]);
            }
            if (sources_.empty()) {
                skipped = first_future - (k + 1);
                next = first_future;
            }
            counters_.skipped_ticks.fetch_add(static_cast<std::uint64_t>(skipped), std::memory_order_relaxed);
        }
        // A read still running (or not yet begun) at the tick it was due on is
        // relayed again soon after, 1, 2, 4... ticks later, rather than a
        // whole stride later: its window may be waiting for it (and a window
        // shorter than the stride, or another source's samples, would
        // otherwise be finished without it). Backing off bounds the ticks a
        // stalled read costs. Not when its source's next due tick comes no
        // later than that window's end (a device read once per window, on
        // the window grid): that tick relays it in time, and a retry would
        // only be one more wake-up per read.
        for (std::size_t i = 0; i < sources_.size(); ++i) {
            if (awaited_[i] < 0) continue;
            const std::int64_t read_at = t0_ns + awaited_[i] * period_ns_;
            const std::int64_t window_end = read_at - floor_mod(read_at - grid_origin_ns, window_ns_) + window_ns_;
            const std::int64_t retry = std::max(k + retry_ticks_[i], first_future);
            if (retry >= next_due_[i] || t0_ns + next_due_[i] * period_ns_ <= window_end) {
                awaited_[i] = -1;  // its next due tick relays it
                continue;
            }
            retry_ticks_[i] *= 2;
            next = std::min(next, retry);
        }
        k = next;
    }
    for (std::size_t i = 0; i < sources_.size(); ++i) {
        if (sources_[i].reader) continue;
        bool seen = false;
        for (std::size_t j = 0; j < i; ++j) seen |= !sources_[j].reader && sources_[j].where.driver == sources_[i].where.driver;
        if (!seen) sources_[i].where.driver->on_sampler_stop();
    }
}

}  // namespace cuagent
