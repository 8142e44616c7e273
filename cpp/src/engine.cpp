#include "cuagent/engine.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "cuagent/clock.hpp"

namespace cuagent {

namespace {
constexpr double kMaxRateHz = 100'000.0;
// One tick in about 11.6 days: the period (and t0 + k * period) stays far
// inside 64-bit nanoseconds; llround of a larger one overflows.
constexpr double kMinRateHz = 1e-6;
constexpr std::size_t kEventCapacity = 1024;
constexpr std::size_t kMaxRingCapacity = std::size_t{1} << 24;  // SlotRing's own limit
}  // namespace

Engine::Engine(std::shared_ptr<Driver> driver, const EngineConfig& config, std::vector<ExtraSource> sources)
    : driver_(std::move(driver)), config_(config) {
    if (!driver_) throw std::invalid_argument("Engine needs a driver");
    if (!(config_.rate_hz >= kMinRateHz) || config_.rate_hz > kMaxRateHz)
        throw std::invalid_argument("rate_hz=" + std::to_string(config_.rate_hz) +
                                    " is out of range: it must be >= 0.000001 and <= 100000");
    // Checked here, not left to start(): everything start() builds must succeed
    // for a valid configuration.
    if (config_.ring_capacity > kMaxRingCapacity)
        throw std::invalid_argument("ring_capacity=" + std::to_string(config_.ring_capacity) +
                                    " is out of range: 0 (automatic) or 1..16777216 samples");
    period_ns_ = std::llround(1e9 / config_.rate_hz);
    if (config_.window_ns < period_ns_)
        throw std::invalid_argument("window of " + std::to_string(config_.window_ns) +
                                    " ns is shorter than one tick (" + std::to_string(period_ns_) +
                                    " ns at rate_hz=" + std::to_string(config_.rate_hz) + ")");
    const auto& t = config_.thresholds;
    for (float v : {t.idle_active, t.saturated_occupancy, t.thrashing_active, t.thrashing_mem_stall})
        if (!(v >= 0.0f && v <= 1.0f))
            throw std::invalid_argument("state thresholds must lie in [0, 1], got " + std::to_string(v));
    if (!(t.hysteresis >= 0.0f && t.hysteresis < 0.5f))
        throw std::invalid_argument("hysteresis must lie in [0, 0.5), got " + std::to_string(t.hysteresis));
    for (std::size_t d = 0; d < driver_->device_count(); ++d) {
        if (driver_->stamps_own_samples(d))
            throw std::invalid_argument(driver_->name() + " stamps its own samples: it can only join a device as a "
                                        "source beside the engine's driver");
        driver_->device(d).validate();
        devices_.push_back(driver_->device(d));
        sources_.push_back({{driver_, d, 0, SampleLayout(devices_[d]).values()}});
    }
    for (const auto& extra : sources) merge_source(extra);
    for (const auto& device : devices_) {
        reader_mutex_.push_back(std::make_unique<std::mutex>());
        plans_.push_back(std::make_shared<const AggregationPlan>(device));
        encoders_.push_back(std::make_unique<StateEncoder>(device, plans_.back()));
        summaries_.push_back(std::make_unique<SummaryRecordWriter>(device, plans_.back()));
    }
    if (config_.ring_capacity == 0)
        config_.ring_capacity = std::max<std::size_t>(256, static_cast<std::size_t>(config_.rate_hz / 10.0));
}

void Engine::merge_source(const ExtraSource& extra) {
    if (!extra.driver) throw std::invalid_argument("a source needs a driver");
    if (extra.device >= devices_.size())
        throw std::invalid_argument("source for device " + std::to_string(extra.device) + ": the engine has " +
                                    std::to_string(devices_.size()) + " devices");
    if (extra.index >= extra.driver->device_count())
        throw std::invalid_argument("source " + extra.driver->name() + " has no device " + std::to_string(extra.index));
    const DeviceDescription& own = extra.driver->device(extra.index);
    own.validate();
    DeviceDescription& merged = devices_[extra.device];
    // The source writes its own sample layout; appended at the end of the
    // device's, each of its counters lands at the same place relative to the
    // block's start as long as every counter has as many values here as there.
    const std::uint32_t offset = SampleLayout(merged).values();
    for (const auto& counter : own.counters) {
        if (merged.elements_at(counter.level) != own.elements_at(counter.level))
            throw std::invalid_argument("source " + extra.driver->name() + " device " + std::to_string(extra.index) +
                                        ": counter '" + counter.name + "' at level '" + counter.level + "' has " +
                                        std::to_string(own.elements_at(counter.level)) + " values there but " +
                                        std::to_string(merged.elements_at(counter.level)) + " on device " +
                                        merged.id);
        merged.counters.push_back(counter);
    }
    merged.validate();  // e.g. a counter name both sources give
    sources_[extra.device].push_back({extra.driver, extra.index, offset, SampleLayout(own).values(),
                                      extra.driver->stamps_own_samples(extra.index)});
}

Engine::~Engine() { stop(); }

void Engine::start() {
    std::lock_guard<std::mutex> control(control_mutex_);
    if (running_) throw std::logic_error("engine is already running");
    const std::size_t n = devices_.size();

    // Everything the threads touch is allocated here, before they start, and
    // aside from the previous run's state: if an allocation throws, the engine
    // is left exactly as it was (stopped, its last windows still readable).
    std::vector<std::unique_ptr<SlotRing>> rings;
    std::vector<std::unique_ptr<DeviceAggregator>> aggregators;
    auto device_counters = std::make_unique<DeviceCounters[]>(n);
    auto counters = std::make_unique<SamplerCounters>();
    auto events = std::make_unique<SlotRing>(sizeof(EngineEvent), kEventCapacity);
    const std::int64_t mono = monotonic_ns();
    const std::int64_t realtime_offset = realtime_ns() - mono;
    // Windows are aligned to multiples of the window length in Unix time, so
    // windows of different devices and of different nodes line up.
    const std::int64_t origin = -realtime_offset;  // monotonic time of Unix time 0
    std::vector<std::vector<DeviceSource>> sources(n);
    std::vector<std::uint32_t> values(n);
    // A stamping source's samples go to the aggregator, never the sampler;
    // its device's windows wait for it up to its own delay, else `grace`
    // (how long a stalled read is waited for: see aggregate_loop).
    const std::int64_t grace = std::max<std::int64_t>(2 * period_ns_, 5'000'000);
    std::vector<std::vector<StampedSource>> stamped(n);
    std::vector<std::vector<float>> stamped_sample(n);
    std::vector<std::int64_t> wait(n, grace);
    for (std::size_t d = 0; d < n; ++d) {
        const SampleLayout& layout = plans_[d]->layout;
        values[d] = layout.values();
        for (const auto& source : sources_[d]) {
            if (!source.stamps) {
                sources[d].push_back({source.driver.get(), source.index, source.offset, source.values});
                continue;
            }
            StampedSource s;
            s.driver = source.driver.get();
            s.index = source.index;
            s.offset = source.offset;
            s.values = source.values;
            s.sample.assign(source.values, std::numeric_limits<float>::quiet_NaN());
            stamped[d].push_back(std::move(s));
            wait[d] = std::max(wait[d], source.driver->max_delay_ns(source.index));
        }
        if (!stamped[d].empty()) stamped_sample[d].assign(values[d], std::numeric_limits<float>::quiet_NaN());
        rings.push_back(std::make_unique<SlotRing>(
            sizeof(SampleHeader) + values[d] * sizeof(float), config_.ring_capacity));
        aggregators.push_back(std::make_unique<DeviceAggregator>(
            devices_[d], plans_[d], config_.thresholds, config_.window_ns, origin));
    }
    // The sampler keeps a reference to the member rings_, filled below.
    auto sampler = std::make_unique<Sampler>(sources, values, rings_, *events, device_counters.get(),
                                             *counters, period_ns_, config_.ring_capacity, config_.window_ns);

    {
        // Readers of the previous run's windows and events wait while we swap.
        std::vector<std::unique_lock<std::mutex>> readers;
        readers.reserve(reader_mutex_.size());
        for (auto& m : reader_mutex_) readers.emplace_back(*m);
        std::lock_guard<std::mutex> event_reader(events_mutex_);
        rings_ = std::move(rings);
        aggregators_ = std::move(aggregators);
        device_counters_ = std::move(device_counters);
        counters_ = std::move(counters);
        events_ = std::move(events);
        sampler_ = std::move(sampler);
        stamped_ = std::move(stamped);
        stamped_sample_ = std::move(stamped_sample);
        wait_ns_ = std::move(wait);
        presence_.assign(n, 0);
        realtime_offset_ns_.store(realtime_offset, std::memory_order_relaxed);
    }
    // Every driver learns the window grid, once each, before any thread reads it.
    std::vector<Driver*> told;
    for (const auto& device_sources : sources_)
        for (const auto& source : device_sources)
            if (std::find(told.begin(), told.end(), source.driver.get()) == told.end()) {
                source.driver->on_engine_start(config_.window_ns, origin);
                told.push_back(source.driver.get());
            }
    stop_sampler_.clear();
    stop_aggregator_.store(false);
    // Put ticks on the window grid: a tick then falls exactly on every window
    // end (when the period divides the window), so the tick that completes a
    // window runs the moment it ends instead of up to a period later.
    t0_ns_ = origin + ((mono + period_ns_ - origin + period_ns_ - 1) / period_ns_) * period_ns_;
    stopped_ns_ = 0;
    try {
        aggregator_thread_ = std::thread([this] {
            platform::name_this_thread("cua-aggregator");
            aggregate_loop();
        });
        for (SourceReader* reader : sampler_->readers())
            reader_threads_.emplace_back([this, reader, t0 = t0_ns_, origin] {
                platform::name_this_thread("cua-reader");
                reader->run(stop_sampler_, t0, origin);
            });
        sampler_thread_ = std::thread([this, t0 = t0_ns_, origin] {
            platform::name_this_thread("cua-sampler");
            sampler_->run(stop_sampler_, t0, origin, &window_done_);
        });
    } catch (...) {
        // A thread could not start: take down those that did, so that the
        // engine is stopped and a later start() finds no joinable thread.
        join_threads();
        stopped_ns_ = monotonic_ns();
        throw;
    }
    running_ = true;
}

void Engine::join_threads() noexcept {
    stop_sampler_.request();
    // A reader in the middle of a stalled read is waited for: its driver call
    // cannot be interrupted, and the driver must outlive it.
    for (auto& reader : reader_threads_) reader.join();
    reader_threads_.clear();
    if (sampler_thread_.joinable()) sampler_thread_.join();
    // The aggregator drains what the sampler left in the rings, then exits.
    stop_aggregator_.store(true);
    window_done_.ring();
    if (aggregator_thread_.joinable()) aggregator_thread_.join();
}

void Engine::stop() {
    std::lock_guard<std::mutex> control(control_mutex_);
    if (!running_) return;
    join_threads();
    stopped_ns_ = monotonic_ns();
    running_ = false;
}

void Engine::aggregate_loop() noexcept {
    // Wake-ups cost CPU (tens of us each in a VM), so the aggregator does not
    // poll. A window is complete once the sampler has begun a tick at or
    // after the window's end (ticks run one after another and a read stamps
    // its sample no earlier than its tick began, so every earlier sample is
    // then in the rings; a read still running on a device's reader thread
    // holds back that device's window). The sampler rings window_done_ then,
    // before that tick's reads; the aggregator drains the rings, finishes the
    // complete windows and signals them. Without a doorbell that wakes early
    // (the POSIX stand-in) it sleeps until just after the first tick deadline
    // past the next window end, and looks again every `recheck` until that
    // tick has begun. A device no tick reads for
    // a while (slow reads, devices read every 100 ms with no other device)
    // still has its window finished `grace` after its end: that is how long a
    // stalled read is waited for before its window goes out without it (its
    // sample, when it comes, is late and dropped); a device with a source
    // that stamps its own samples waits up to that source's delay instead
    // (wait_ns_). It also wakes at
    // least every quarter of the ring's span (at most 100 ms), so a ring never
    // fills however long the window.
    const std::int64_t window = config_.window_ns;
    // The completing tick wakes at the window end, then reads every device:
    // look shortly after, and again at this pace until it is done.
    const std::int64_t recheck = std::clamp<std::int64_t>(period_ns_ / 4, 50'000, 100'000);
    // The ring fills at the rate of the most often read device, which for
    // devices refreshed every 100 ms (NVML) is far below the tick rate. The
    // upper bound keeps stop() prompt: it waits for this thread's sleep.
    std::int64_t min_stride = 1;
    if (!sampler_->strides().empty())
        min_stride = *std::min_element(sampler_->strides().begin(), sampler_->strides().end());
    const std::int64_t ring_span = static_cast<std::int64_t>(config_.ring_capacity) * period_ns_ * min_stride;
    const std::int64_t max_sleep = std::clamp<std::int64_t>(ring_span / 4, 1'000'000, 100'000'000);
    const std::int64_t origin = -realtime_offset_ns();  // windows are aligned in Unix time
    const std::int64_t t0 = t0_ns_;
    const std::size_t n = rings_.size();
    int overdue_passes = 0;  // consecutive passes that found a window still open past its end
    // Where the sampler rings when a tick completes a window, the timed wake-up
    // is only a fallback (a tick running late): leave the ring time to come.
    const std::int64_t after_tick = platform::Doorbell::wakes_early() ? std::max(recheck, 2 * period_ns_) : recheck;
    for (;;) {
        // Read before looking at the rings: a ring during this pass is not slept through.
        const std::uint32_t rung = window_done_.rung();
        std::uint64_t finished_before = 0;
        for (const auto& aggregator : aggregators_) finished_before += aggregator->windows();
        const bool last_pass = stop_aggregator_.load(std::memory_order_acquire);
        bool overdue = false;
        for (std::size_t d = 0; d < n; ++d) {
            // Acquire, before draining: the samples they cover are then visible.
            std::int64_t complete_before = device_counters_[d].complete_before_ns.load(std::memory_order_acquire);
            for (const auto& s : stamped_[d])
                complete_before = std::min(complete_before, s.driver->complete_before_ns(s.index));
            DeviceAggregator& aggregator = *aggregators_[d];
            const std::int64_t now = monotonic_ns();
            bool held = drain_device(d, complete_before, now, last_pass);
            if (last_pass) continue;  // an unfinished window is not published
            const std::uint64_t finished = aggregator.windows();
            aggregator.poll(now, wait_ns_[d], complete_before);
            // A window given up on lets in the samples held behind it.
            if (held && aggregator.windows() != finished) held = drain_device(d, complete_before, now, false);
            overdue |= held || aggregator.open_window_end() <= now;
        }
        if (last_pass) break;
        const std::int64_t now = monotonic_ns();
        std::uint64_t finished_after = 0;
        for (const auto& aggregator : aggregators_) finished_after += aggregator->windows();
        if (finished_after != finished_before) windows_ready_.notify();
        const std::int64_t next_end = origin + ((now - origin) / window + 1) * window;
        const std::int64_t first_tick = t0 + ((next_end - t0 + period_ns_ - 1) / period_ns_) * period_ns_;
        std::int64_t wake = std::min(now + max_sleep, first_tick + after_tick);
        // A window still open past its end waits for a slow read or a device
        // read rarely: look again soon, then less and less often (up to 16x).
        if (overdue) {
            wake = std::min(wake, now + (recheck << std::min(overdue_passes, 4)));
            ++overdue_passes;
        } else {
            overdue_passes = 0;
        }
        window_done_.sleep_until(wake, rung);
    }
}

bool Engine::latest_state(std::size_t device, std::int64_t newer_than_ns, std::string_view extras,
                          std::uint32_t extra_entries, WindowStamp& stamp, std::string& body) {
    if (device >= device_count()) throw std::out_of_range("no device " + std::to_string(device));
    std::lock_guard<std::mutex> reader(*reader_mutex_[device]);
    const WindowResult* front = take_newest(device);
    if (front == nullptr) return false;
    stamp = {front->seq, front->t_end_ns + realtime_offset_ns(), front->window_ns, front->windows_missed};
    if (stamp.t_ns > newer_than_ns) encoders_[device]->encode(*front, extras, extra_entries, body);
    return true;
}

const WindowResult* Engine::take_newest(std::size_t device) {
    if (aggregators_.size() <= device) return nullptr;  // never started
    auto& published = aggregators_[device]->published();
    published.update();
    const WindowResult& front = published.front();
    return front.seq == 0 ? nullptr : &front;
}

bool Engine::drain_device(std::size_t d, std::int64_t complete_before, std::int64_t now, bool last_pass) noexcept {
    SlotRing& ring = *rings_[d];
    DeviceAggregator& aggregator = *aggregators_[d];
    const std::int64_t window = config_.window_ns;
    const std::int64_t origin = -realtime_offset_ns();
    // The ring and each stamping source are in time order each: merge them.
    for (;;) {
        const void* slot = ring.front();
        std::int64_t t = slot ? static_cast<const SampleHeader*>(slot)->t_ns : std::numeric_limits<std::int64_t>::max();
        StampedSource* from = nullptr;
        for (auto& s : stamped_[d]) {
            if (!s.pending) s.pending = s.driver->take_sample(s.index, &s.t_ns, s.sample.data());
            if (s.pending && s.t_ns < t) {
                t = s.t_ns;
                from = &s;
            }
        }
        if (slot == nullptr && from == nullptr) return false;
        if (!last_pass) {
            // Folding a sample finishes every window before its own: not
            // while a source may still give samples of those (one stamped
            // later, a read still running), until they are `wait` overdue.
            const std::int64_t start = t - (t - origin) % window;
            if (start > complete_before && now < start + wait_ns_[d]) return true;
        }
        if (from == nullptr) {
            const auto* header = static_cast<const SampleHeader*>(slot);
            presence_[d] = header->presence;
            aggregator.add(header->t_ns, sample_values(slot), header->presence);
            ring.pop();
            continue;
        }
        from->pending = false;
        // While the device is gone only its primary source speaks for it.
        if (device_counters_[d].lost.load(std::memory_order_relaxed)) continue;
        float* values = stamped_sample_[d].data();
        std::copy(from->sample.begin(), from->sample.end(), values + from->offset);
        aggregator.add(t, values, presence_[d]);
        std::fill(values + from->offset, values + from->offset + from->values, std::numeric_limits<float>::quiet_NaN());
        device_counters_[d].samples.fetch_add(1, std::memory_order_relaxed);
    }
}

void Engine::summary_records(std::int64_t now_ns, const std::vector<bool>& lost, std::string& out) {
    if (lost.size() != device_count())
        throw std::invalid_argument("summary_records needs one lost flag per device (" +
                                    std::to_string(device_count()) + ")");
    for (std::size_t d = 0; d < device_count(); ++d) {
        std::lock_guard<std::mutex> reader(*reader_mutex_[d]);
        const WindowResult* front = nullptr;
        if (aggregators_.size() > d && aggregators_[d]->published().front().seq != 0)
            front = &aggregators_[d]->published().front();  // as last taken: no update()
        const std::int64_t end = front ? front->t_end_ns + realtime_offset_ns() : 0;
        summaries_[d]->write(front, end, now_ns, lost[d], out);
    }
}

bool Engine::latest(std::size_t device, WindowResult& out) {
    if (device >= device_count()) throw std::out_of_range("no device " + std::to_string(device));
    std::lock_guard<std::mutex> reader(*reader_mutex_[device]);
    const WindowResult* front = take_newest(device);
    if (front == nullptr) return false;
    out = *front;
    return true;
}

const DeviceDescription& Engine::device(std::size_t device) const {
    if (device >= devices_.size()) throw std::out_of_range("no device " + std::to_string(device));
    return devices_[device];
}

const AggregationPlan& Engine::plan(std::size_t device) const {
    if (device >= plans_.size()) throw std::out_of_range("no device " + std::to_string(device));
    return *plans_[device];
}

EngineStats Engine::stats() const {
    // Excludes a concurrent start() rebuilding what we read.
    std::lock_guard<std::mutex> control(control_mutex_);
    EngineStats s;
    s.running = running();
    s.rate_hz = config_.rate_hz;
    if (!counters_ || !sampler_) return s;  // never started
    std::int64_t min_stride = 0;
    for (auto stride : sampler_->strides()) min_stride = min_stride ? std::min(min_stride, stride) : stride;
    s.target_rate_hz = config_.rate_hz / static_cast<double>(min_stride ? min_stride : 1);
    const std::int64_t end = stopped_ns_ ? stopped_ns_ : monotonic_ns();
    s.elapsed_s = std::max<double>(0.0, static_cast<double>(end - t0_ns_) * 1e-9);
    s.ticks = counters_->ticks.load(std::memory_order_relaxed);
    s.skipped_ticks = counters_->skipped_ticks.load(std::memory_order_relaxed);
    s.events_dropped = counters_->events_dropped.load(std::memory_order_relaxed);
    s.achieved_rate_hz = s.elapsed_s > 0 ? static_cast<double>(s.ticks) / s.elapsed_s : 0.0;
    s.jitter_p50_ns = counters_->jitter.quantile(0.50);
    s.jitter_p90_ns = counters_->jitter.quantile(0.90);
    s.jitter_p99_ns = counters_->jitter.quantile(0.99);
    s.jitter_max_ns = counters_->jitter.max();
    for (std::size_t d = 0; d < aggregators_.size(); ++d) {
        const DeviceCounters& dc = device_counters_[d];
        DeviceStats ds;
        ds.samples = dc.samples.load(std::memory_order_relaxed);
        ds.drops = dc.drops.load(std::memory_order_relaxed);
        ds.read_errors = dc.read_errors.load(std::memory_order_relaxed);
        ds.lost = dc.lost.load(std::memory_order_relaxed);
        ds.windows = aggregators_[d]->windows();
        ds.windows_missed = aggregators_[d]->windows_missed();
        ds.late_samples = aggregators_[d]->late_samples();
        ds.skipped_reads = sampler_->skipped_reads(d);
        ds.drops += sampler_->reader_drops(d);
        ds.own_thread = sampler_->has_reader(d);
        s.samples += ds.samples;
        s.drops += ds.drops;
        s.read_errors += ds.read_errors;
        s.devices.push_back(ds);
    }
    return s;
}

std::size_t Engine::drain_events(std::vector<EngineEvent>& out) {
    std::lock_guard<std::mutex> consumer(events_mutex_);
    if (!events_) return 0;
    std::size_t n = 0;
    while (const void* slot = events_->front()) {
        out.push_back(*static_cast<const EngineEvent*>(slot));
        events_->pop();
        ++n;
    }
    return n;
}

}  // namespace cuagent
