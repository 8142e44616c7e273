#include "cuagent/drivers/cupti.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "common/counter_table.hpp"
#include "cuagent/clock.hpp"
#include "cuagent/slot_ring.hpp"
#include "cupti/cupti_config.hpp"
#include "cupti/cupti_library.hpp"
#include "cupti/cupti_metrics.hpp"

namespace cuagent {
namespace {

using namespace cupti;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

enum Counter : std::uint32_t {
    kSmActive, kSmActivePeak, kSmActiveMax, kSmActiveMin, kTensor, kInstIssue, kSmIdle, kDramRead, kDramWrite,
    kNvlinkRx, kNvlinkTx, kPcieRead, kPcieWrite, kGpcClock, kSamples, kCounterCount,
};
constexpr drivers::CounterDef kCounters[] = {
    {kSmActive, "pm_sm_active", kDeviceLevel, "ratio",
     "mean over SMs of the fraction of cycles active (CUPTI PM sampling sm__cycles_active.avg)"},
    {kSmActivePeak, "pm_sm_active_peak", kDeviceLevel, "ratio",
     "largest pm_sm_active of one kHz sample in the window (burst peak)", Aggregation::Max},
    {kSmActiveMax, "pm_sm_active_max", kDeviceLevel, "ratio",
     "busiest SM's fraction of cycles active per kHz sample (sm__cycles_active.max)"},
    {kSmActiveMin, "pm_sm_active_min", kDeviceLevel, "ratio",
     "idlest SM's fraction of cycles active per kHz sample (sm__cycles_active.min)"},
    {kTensor, "pm_tensor_active", kDeviceLevel, "ratio", "HMMA tensor pipe active / peak (CUPTI PM sampling)"},
    {kInstIssue, "pm_inst_issue", kDeviceLevel, "ratio", "instructions executed / peak (CUPTI PM sampling)"},
    {kSmIdle, "pm_sm_idle_warps", kDeviceLevel, "ratio",
     "warp slots inactive because their SM is idle / peak (tpc__warps_inactive_sm_idle_realtime)"},
    {kDramRead, "pm_dram_read", kDeviceLevel, "ratio", "DRAM read throughput / peak (CUPTI PM sampling)"},
    {kDramWrite, "pm_dram_write", kDeviceLevel, "ratio", "DRAM write throughput / peak (CUPTI PM sampling)"},
    {kNvlinkRx, "pm_nvlink_rx", kDeviceLevel, "B/s", "NVLink bytes received per second (nvlrx__bytes.sum)"},
    {kNvlinkTx, "pm_nvlink_tx", kDeviceLevel, "B/s", "NVLink bytes sent per second (nvltx__bytes.sum)"},
    {kPcieRead, "pm_pcie_read", kDeviceLevel, "B/s", "PCIe bytes read per second (pcie__read_bytes.sum)"},
    {kPcieWrite, "pm_pcie_write", kDeviceLevel, "B/s", "PCIe bytes written per second (pcie__write_bytes.sum)"},
    {kGpcClock, "pm_gpc_clock", kDeviceLevel, "Hz", "GPC clock over the sample (gpc__cycles_elapsed.avg.per_second)"},
    {kSamples, "pm_samples", kDeviceLevel, "count", "completed CUPTI PM samples in the window", Aggregation::Sum},
};
static_assert(drivers::rows_in_order(kCounters), "kCounters rows must follow the Counter enum");

constexpr std::size_t kValues = kCounterCount;  // one value per counter, in Counter order

// One window's samples of one device, folded on the decode thread.
struct Fold {
    std::int64_t window = std::numeric_limits<std::int64_t>::min();  // index on the engine's grid
    std::int64_t t_ns = 0;  // the last sample's time: inside the window
    double sums[kValues] = {};
    std::uint32_t counts[kValues] = {};
    float peak = kNaN;
    std::uint32_t n = 0;

    void add(const float* v) noexcept {
        if (!(peak >= v[kSmActive])) peak = v[kSmActive];  // NaN: the first wins
        for (std::size_t c = 0; c < kValues; ++c)
            if (std::isfinite(v[c])) {
                sums[c] += v[c];
                ++counts[c];
            }
        ++n;
    }
};

// A finished window of one device, handed from the decode thread to the
// engine's aggregator (take_sample).
struct PmWindow {
    std::int64_t t_ns;
    std::uint64_t grid;  // the engine run whose grid it was folded on
    float values[kValues];
};

// cuptiProfilerInitialize once per process, cuptiProfilerDeInitialize once
// when the last source goes (a second DeInitialize crashes CUPTI).
std::mutex g_init_mutex;
int g_init_users = 0;

Result profiler_initialize(const Library& lib) {
    std::lock_guard<std::mutex> lock(g_init_mutex);
    if (g_init_users == 0) {
        auto p = CUAGENT_CUPTI_PARAMS(ProfilerInitializeParams, pPriv);
        const Result r = lib.ProfilerInitialize(&p);
        if (r != kSuccess) return r;
    }
    ++g_init_users;
    return kSuccess;
}
void profiler_deinitialize(const Library& lib) {
    std::lock_guard<std::mutex> lock(g_init_mutex);
    if (g_init_users > 0 && --g_init_users == 0) {
        auto p = CUAGENT_CUPTI_PARAMS(ProfilerDeInitializeParams, pPriv);
        lib.ProfilerDeInitialize(&p);
    }
}

std::string permission_hint() {
    return "the GPU performance counters need root, CAP_SYS_ADMIN, CAP_PERFMON (driver >= R565) or the "
           "nvidia module option NVreg_RestrictProfilingToAdminUsers=0";
}

enum class State { Off, Sampling, Retrying, Failed };

// Device::complete_before while a device owes no samples (not sampling).
constexpr std::int64_t kOwesNothing = std::numeric_limits<std::int64_t>::max();
// How long past its settle time a window may wait for the decode of every
// device: evaluating a window's samples takes time on real CUPTI, and a busy
// machine runs the decode thread late (on a loaded 2-vCPU VM, 20 ms was now
// and then too short). A window waits only while its samples are missing.
constexpr std::int64_t kDecodeAllowanceNs = 40'000'000;

struct Device {
    std::uint32_t cuda_index = 0;
    std::string chip;
    DeviceDescription description;
    std::unique_ptr<SlotRing> ring;  // finished windows: decode thread -> the engine's aggregator

    // Decode thread only.
    State state = State::Off;
    std::unique_ptr<HostConfig> config;
    PmSamplingObject* object = nullptr;
    std::vector<std::uint8_t> counter_data;
    std::size_t consumed = 0;
    std::int64_t backoff = 0;
    std::int64_t offset_ns = std::numeric_limits<std::int64_t>::max();  // monotonic - GPU clock, least seen
    std::int64_t started_ns = 0;                                         // when sampling last started
    std::int64_t last_t_ns = std::numeric_limits<std::int64_t>::min();   // the last sample's time
    std::int64_t handed = std::numeric_limits<std::int64_t>::min();      // the last window handed over
    Fold fold;                                                           // the open window
    bool reported_paused = false;
    std::string reported_reason;

    // Every sample taken before this time is in `ring` (stored with release
    // after them): the engine may finish the windows ending by then.
    std::atomic<std::int64_t> complete_before{kOwesNothing};
    std::atomic<std::uint64_t> samples{0}, late{0}, dropped{0}, overflows{0}, data_full{0}, decode_calls{0},
        library_ns{0};
    std::atomic<int> published_state{static_cast<int>(State::Off)};
    std::int64_t retry_at = 0;  // under Source::mutex_
    std::string reason;         // under Source::mutex_
};

class Source final : public CuptiSource {
public:
    explicit Source(const CuptiOptions& o) : options_(o) {
        if (!(o.rate_hz >= 100.0 && o.rate_hz <= 20000.0))
            throw std::invalid_argument("cupti rate " + std::to_string(o.rate_hz) +
                                        " Hz is out of range: 100..20000");
        if (o.devices.empty()) throw std::invalid_argument("cupti source needs at least one device");
        if (o.decode_interval_ns < 1'000'000 || o.decode_interval_ns > 1'000'000'000)
            throw std::invalid_argument("cupti decode interval " + std::to_string(o.decode_interval_ns) +
                                        " ns is out of range: 1..1000 ms");
        sample_ns_ = std::llround(1e9 / o.rate_hz);
        // A window is whole once a sample of the next one is decoded: that
        // sample ends up to two sample intervals after the window's end, and
        // is given 1 ms more to reach the hardware buffer.
        settle_ns_ = 2 * sample_ns_ + 1'000'000;
        // Until an engine tells its grid: its defaults, 100 ms windows on Unix time.
        window_ns_ = 100'000'000;
        origin_ns_ = monotonic_ns() - realtime_ns();
        lib_ = std::make_unique<Library>(o.library.empty() ? default_candidates(o.python_paths) : o.library);
        const Result r = profiler_initialize(*lib_);
        if (r != kSuccess) throw std::runtime_error("cuptiProfilerInitialize: " + lib_->error_string(r));
        initialized_ = true;
        try {
            for (auto index : o.devices) add_device(index);
        } catch (...) {
            profiler_deinitialize(*lib_);
            throw;
        }
        for (auto* n : kMetricNames) metrics_.push_back(n);
        paused_.store(o.start_paused);
        if (o.start_paused) pause_reason_ = "paused at start";
        thread_ = std::thread([this] { decode_loop(); });
    }

    ~Source() override {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stop_ = true;
        }
        wake_.notify_all();
        if (thread_.joinable()) thread_.join();
        if (initialized_) profiler_deinitialize(*lib_);
    }

    std::string name() const override { return "cupti"; }
    std::size_t device_count() const override { return devices_.size(); }
    const DeviceDescription& device(std::size_t i) const override { return devices_.at(i)->description; }
    // The GPU takes the samples; the engine's aggregator takes them from the
    // decode thread (take_sample), each in the window it was taken in.
    bool stamps_own_samples(std::size_t) const override { return true; }
    bool read_may_block(std::size_t) const override { return false; }
    ReadStatus read(std::size_t, std::int64_t, float*, char*, std::size_t) noexcept override {
        return ReadStatus::Ok;  // never called for a source that stamps its own samples
    }

    void on_engine_start(std::int64_t window_ns, std::int64_t origin_ns) override {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            window_ns_ = window_ns;
            origin_ns_ = origin_ns;
            grid_.store(grid_.load() + 1);
        }
        // Windows an earlier run left untaken are no part of this one (no
        // engine thread takes samples now: this thread is the consumer).
        for (auto& d : devices_)
            while (d->ring->front()) d->ring->pop();
        wake_.notify_all();
    }

    bool take_sample(std::size_t index, std::int64_t* t_ns, float* values) noexcept override {
        SlotRing& ring = *devices_[index]->ring;
        const std::uint64_t grid = grid_.load(std::memory_order_relaxed);
        while (const void* slot = ring.front()) {
            const auto* w = static_cast<const PmWindow*>(slot);
            if (w->grid != grid) {  // folded on another grid, before this run began
                ring.pop();
                continue;
            }
            *t_ns = w->t_ns;
            for (std::uint32_t c = 0; c < kCounterCount; ++c) values[table_.offset(c)] = w->values[c];
            ring.pop();
            return true;
        }
        return false;
    }
    std::int64_t complete_before_ns(std::size_t index) const noexcept override {
        return devices_[index]->complete_before.load(std::memory_order_acquire);
    }
    std::int64_t max_delay_ns(std::size_t) const override { return settle_ns_ + kDecodeAllowanceNs; }

    void pause(const std::string& reason) override {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            pause_reason_ = reason.empty() ? "paused by operator" : reason;
            paused_.store(true);
        }
        wake_.notify_all();
    }
    void resume() override {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            paused_.store(false);
            for (auto& d : devices_) d->retry_at = 0;  // retry now, not after the back-off
        }
        wake_.notify_all();
    }
    bool paused() const override { return paused_.load(); }

    std::vector<CuptiDeviceStatus> status() const override {
        std::lock_guard<std::mutex> lock(mutex_);
        std::vector<CuptiDeviceStatus> out;
        for (const auto& d : devices_) {
            CuptiDeviceStatus s;
            switch (static_cast<State>(d->published_state.load())) {
                case State::Sampling: s.state = "sampling"; break;
                case State::Retrying: s.state = "retrying"; break;
                case State::Failed: s.state = "failed"; break;
                default: s.state = paused_.load() ? "paused" : "starting"; break;
            }
            s.reason = d->reason;
            s.chip = d->chip;
            s.samples = d->samples.load();
            s.late = d->late.load();
            s.dropped = d->dropped.load();
            s.overflows = d->overflows.load();
            s.data_full = d->data_full.load();
            s.decode_calls = d->decode_calls.load();
            s.library_ns = d->library_ns.load();
            out.push_back(std::move(s));
        }
        return out;
    }
    std::vector<CuptiEvent> drain_events() override {
        std::lock_guard<std::mutex> lock(mutex_);
        std::vector<CuptiEvent> out;
        out.swap(events_);
        return out;
    }
    std::string library_path() const override { return lib_->path(); }
    std::string nvperf_host_path() const override { return lib_->nvperf_host_path(); }
    std::uint64_t decode_cpu_ns() const override { return decode_cpu_ns_.load(std::memory_order_relaxed); }

private:
    void add_device(std::uint32_t index) {
        auto d = std::make_unique<Device>();
        d->cuda_index = index;
        auto chip = CUAGENT_CUPTI_PARAMS(DeviceGetChipNameParams, pChipName);
        chip.deviceIndex = index;
        const Result r = lib_->DeviceGetChipName(&chip);
        if (r != kSuccess || chip.pChipName == nullptr)
            throw std::runtime_error("cuptiDeviceGetChipName(device " + std::to_string(index) + "): " +
                                     lib_->error_string(r));
        d->chip = chip.pChipName;
        // The metrics must exist and fit one pass on this chip: checked now,
        // without the device, so that a chip they do not suit fails here.
        std::vector<const char*> metrics(std::begin(kMetricNames), std::end(kMetricNames));
        HostConfig check(*lib_, d->chip, nullptr, metrics);
        if (!check.ok())
            throw std::runtime_error("CUPTI PM sampling on device " + std::to_string(index) + " (" + d->chip +
                                     "): " + check.error());
        DeviceDescription& desc = d->description;
        desc.id = "cupti-" + std::to_string(index);
        desc.index = index;
        desc.vendor = "nvidia";
        desc.model = d->chip;
        desc.backend = "cupti";
        desc.unit_kind = "sm";
        desc.units = 1;
        desc.levels = {"sm"};
        desc.counts = {1};
        desc.partitions.push_back(Partition{"0", "whole", 1, {}, 0, ""});
        table_ = drivers::CounterTable(kCounters);
        for (std::uint32_t c = 0; c < kCounterCount; ++c) table_.declare(desc, c);
        table_.resolve(desc);
        desc.validate();
        // Finished windows: the aggregator takes them within a few ms; room
        // for a few seconds of them when no engine runs.
        d->ring = std::make_unique<SlotRing>(sizeof(PmWindow), 64);
        devices_.push_back(std::move(d));
    }

    // ---- decode thread: every CUPTI call after construction happens here ----

    // Wakes are what this thread costs beyond the work itself (tens of us
    // each in a VM), so it does not poll: it decodes each device's whole
    // buffer `settle` after every window end (the window's last samples have
    // reached the buffer by then) and between window ends every
    // decode_interval (so that a window's batch stays small), on the window
    // grid; and again shortly after while a window just over is not whole.
    void decode_loop() {
        std::unique_lock<std::mutex> lock(mutex_);
        while (!stop_) {
            const bool want = !paused_.load();
            const std::string pause_reason = pause_reason_;
            if (grid_seen_ != grid_.load()) {
                // Another engine run (grid): the open windows were folded on the old one.
                grid_seen_ = grid_.load();
                window_ = window_ns_;
                origin_ = origin_ns_;
                for (auto& d : devices_) {
                    if (d->fold.n > 0) d->dropped.fetch_add(d->fold.n, std::memory_order_relaxed);
                    d->fold.n = 0;
                    d->handed = std::numeric_limits<std::int64_t>::min();
                }
            }
            lock.unlock();
            for (auto& d : devices_) step(*d, want, pause_reason);
            timespec cpu{};
            if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu) == 0)
                decode_cpu_ns_.store(static_cast<std::uint64_t>(cpu.tv_sec) * 1'000'000'000u +
                                         static_cast<std::uint64_t>(cpu.tv_nsec),
                                     std::memory_order_relaxed);
            lock.lock();
            const std::int64_t wait = next_wake() - monotonic_ns();
            if (!stop_ && wait > 0) wake_.wait_for(lock, std::chrono::nanoseconds(wait));
        }
        lock.unlock();
        for (auto& d : devices_)
            if (d->state == State::Sampling) teardown(*d, true);
    }

    // When to decode next (under mutex_).
    std::int64_t next_wake() const {
        const std::int64_t now = monotonic_ns();
        const std::int64_t last_end = now - (now - origin_) % window_;
        const std::int64_t parts = (window_ + options_.decode_interval_ns - 1) / options_.decode_interval_ns;
        const std::int64_t step = std::max<std::int64_t>(window_ / parts, 1);
        const std::int64_t first = last_end + settle_ns_;  // the decode that closes the last window
        std::int64_t wake = last_end + window_ + settle_ns_;
        if (now < first) {
            wake = first;
        } else {
            const std::int64_t k = (now - first) / step + 1;
            if (k < parts) wake = first + k * step;
        }
        for (const auto& d : devices_) {
            if (d->state == State::Sampling) {
                // The window just over still lacks samples: look again soon,
                // for as long as the engine waits for it.
                if (now >= first && d->complete_before.load(std::memory_order_relaxed) < last_end &&
                    now < last_end + settle_ns_ + kDecodeAllowanceNs)
                    wake = std::min(wake, now + std::max<std::int64_t>(sample_ns_, 500'000));
            } else if (d->state == State::Retrying && !paused_.load()) {
                wake = std::min(wake, d->retry_at);
            }
        }
        return wake;
    }

    void step(Device& d, bool want, const std::string& pause_reason) {
        const std::int64_t now = monotonic_ns();
        if (!want) {
            if (d.state == State::Sampling) teardown(d, true);
            if (d.state != State::Failed) set_state(d, State::Off, pause_reason);
            return;
        }
        if (d.state == State::Failed) return;
        if (d.state != State::Sampling) {
            if (now < retry_at(d)) return;
            const Result r = start(d);
            if (r == kSuccess) {
                d.backoff = 0;
                // Its first samples are taken after `now`: what came before is whole.
                d.started_ns = now;
                d.complete_before.store(now, std::memory_order_release);
                set_state(d, State::Sampling, "");
            } else {
                retry_later(d, r, now);
            }
            return;
        }
        const Result r = decode(d);
        if (r != kSuccess) {
            teardown(d, false);
            retry_later(d, r, now);
        }
    }

    std::int64_t retry_at(Device& d) {
        std::lock_guard<std::mutex> lock(mutex_);
        return d.retry_at;
    }

    void retry_later(Device& d, Result r, std::int64_t now) {
        std::string reason;
        if (r == kErrorInsufficientPrivileges || r == kErrorVirtualizedInsufficientPrivileges)
            reason = "not permitted: " + lib_->error_string(r) + "; " + permission_hint();
        else if (r == kErrorHardwareBusy)
            reason = "busy: " + lib_->error_string(r) +
                     " (another profiler holds the counters: ncu, nsys --gpu-metrics, DCGM profiling)";
        else if (r == kErrorInvalidDevice)
            reason = "device lost: " + lib_->error_string(r);
        else
            reason = last_step_ + ": " + lib_->error_string(r);
        if (r == kErrorNotInitialized) reinitialize_ = true;
        d.backoff = d.backoff == 0 ? options_.retry_min_ns : std::min(d.backoff * 2, options_.retry_max_ns);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            d.retry_at = now + d.backoff;
        }
        set_state(d, State::Retrying, reason);
    }

    // Publishes the device's state, and an event when sampling stops or resumes.
    void set_state(Device& d, State s, const std::string& reason) {
        d.state = s;
        d.published_state.store(static_cast<int>(s));
        std::lock_guard<std::mutex> lock(mutex_);
        d.reason = reason;
        const std::uint32_t position = index_of(d);
        if (s == State::Sampling) {
            if (d.reported_paused) events_.push_back({position, "profiling_resumed", ""});
            d.reported_paused = false;
            d.reported_reason.clear();
        } else if (!d.reported_paused || d.reported_reason != reason) {
            events_.push_back({position, "profiling_paused", reason});
            d.reported_paused = true;
            d.reported_reason = reason;
        }
    }
    std::uint32_t index_of(const Device& d) const {
        for (std::size_t i = 0; i < devices_.size(); ++i)
            if (devices_[i].get() == &d) return static_cast<std::uint32_t>(i);
        return 0;
    }

    Result step_result(const char* step, Result r) {
        if (r != kSuccess) last_step_ = step;
        return r;
    }

    Result start(Device& d) {
        if (reinitialize_) {
            // CUPTI lost its profiler state (NOT_INITIALIZED): initialise again,
            // the only time a second cuptiProfilerInitialize is made.
            auto p = CUAGENT_CUPTI_PARAMS(ProfilerInitializeParams, pPriv);
            if (Result r = step_result("cuptiProfilerInitialize", lib_->ProfilerInitialize(&p)); r != kSuccess) return r;
            reinitialize_ = false;
        }
        auto avail = CUAGENT_CUPTI_PARAMS(PmGetCounterAvailabilityParams, pCounterAvailabilityImage);
        avail.deviceIndex = d.cuda_index;
        if (Result r = step_result("cuptiPmSamplingGetCounterAvailability", lib_->PmGetCounterAvailability(&avail));
            r != kSuccess)
            return r;
        std::vector<std::uint8_t> image(avail.counterAvailabilityImageSize);
        avail.pCounterAvailabilityImage = image.data();
        if (Result r = step_result("cuptiPmSamplingGetCounterAvailability", lib_->PmGetCounterAvailability(&avail));
            r != kSuccess)
            return r;
        auto config = std::make_unique<HostConfig>(*lib_, d.chip, image.data(), metrics_);
        if (!config->ok()) {
            last_step_ = config->error();
            return config->result() != kSuccess ? config->result() : kErrorNotSupported;
        }
        auto enable = CUAGENT_CUPTI_PARAMS(PmEnableParams, pPmSamplingObject);
        enable.deviceIndex = d.cuda_index;
        if (Result r = step_result("cuptiPmSamplingEnable", lib_->PmEnable(&enable)); r != kSuccess) return r;
        d.object = enable.pPmSamplingObject;
        d.config = std::move(config);

        auto set = CUAGENT_CUPTI_PARAMS(PmSetConfigParams, hwBufferAppendMode);
        set.pPmSamplingObject = d.object;
        set.configSize = d.config->image().size();
        set.pConfig = d.config->image().data();  // kept alive in d.config while sampling
        set.hardwareBufferSize = options_.hardware_buffer_bytes;
        set.samplingInterval = static_cast<std::uint64_t>(std::llround(1e9 / options_.rate_hz));
        set.triggerMode = kTriggerTimeInterval;
        set.hwBufferAppendMode = kKeepLatest;  // a slow decode loses the oldest, never stalls the GPU
        Result r = step_result("cuptiPmSamplingSetConfig", lib_->PmSetConfig(&set));
        if (r == kSuccess) {
            auto size = CUAGENT_CUPTI_PARAMS(PmGetCounterDataSizeParams, counterDataSize);
            size.pPmSamplingObject = d.object;
            size.pMetricNames = metrics_.data();
            size.numMetrics = metrics_.size();
            // About 250 ms of samples per image; it is re-initialised when full.
            size.maxSamples = static_cast<std::uint32_t>(std::max(64.0, options_.rate_hz / 4.0));
            r = step_result("cuptiPmSamplingGetCounterDataSize", lib_->PmGetCounterDataSize(&size));
            if (r == kSuccess) {
                d.counter_data.assign(size.counterDataSize, 0);
                r = init_counter_data(d);
            }
        }
        if (r == kSuccess) {
            auto go = CUAGENT_CUPTI_PARAMS(PmObjectParams, pPmSamplingObject);
            go.pPmSamplingObject = d.object;
            r = step_result("cuptiPmSamplingStart", lib_->PmStart(&go));
        }
        if (r != kSuccess) {
            disable(d);
            return r;
        }
        return kSuccess;
    }

    Result init_counter_data(Device& d) {
        auto init = CUAGENT_CUPTI_PARAMS(PmCounterDataImageInitializeParams, pCounterData);
        init.pPmSamplingObject = d.object;
        init.counterDataSize = d.counter_data.size();
        init.pCounterData = d.counter_data.data();
        d.consumed = 0;
        return step_result("cuptiPmSamplingCounterDataImageInitialize", lib_->PmCounterDataImageInitialize(&init));
    }

    // Decodes what the hardware buffer holds, folds every newly completed
    // sample into its window, and hands over each window that is whole.
    Result decode(Device& d) {
        // A full image is re-initialised and decoding goes on; bounded so that
        // one device cannot hold the thread.
        for (int round = 0; round < 8; ++round) {
            auto dec = CUAGENT_CUPTI_PARAMS(PmDecodeDataParams, overflow);
            dec.pPmSamplingObject = d.object;
            dec.pCounterDataImage = d.counter_data.data();
            dec.counterDataImageSize = d.counter_data.size();
            d.decode_calls.fetch_add(1, std::memory_order_relaxed);
            const std::int64_t t0 = monotonic_ns();
            const Result decoded = lib_->PmDecodeData(&dec);
            const std::int64_t decoded_at = monotonic_ns();
            d.library_ns.fetch_add(static_cast<std::uint64_t>(decoded_at - t0), std::memory_order_relaxed);
            if (Result r = step_result("cuptiPmSamplingDecodeData", decoded); r != kSuccess) return r;
            if (dec.overflow) d.overflows.fetch_add(1, std::memory_order_relaxed);
            // Every stop reason, OTHER included, leaves valid completed samples.
            if (Result r = hand_over(d, decoded_at); r != kSuccess) return r;
            if (dec.decodeStopReason != kStopCounterDataFull) break;
            d.data_full.fetch_add(1, std::memory_order_relaxed);
            if (Result r = init_counter_data(d); r != kSuccess) return r;
        }
        // Release, after the windows handed over: what the engine may finish.
        const std::int64_t owed = d.fold.n > 0 ? origin_ + d.fold.window * window_
                                               : std::max(d.started_ns, d.last_t_ns + 1);
        d.complete_before.store(owed, std::memory_order_release);
        return kSuccess;
    }

    Result sample_info(Device& d, std::size_t index, PmGetSampleInfoParams& sample) {
        sample = CUAGENT_CUPTI_PARAMS(PmGetSampleInfoParams, endTimestamp);
        sample.pPmSamplingObject = d.object;
        sample.pCounterDataImage = d.counter_data.data();
        sample.counterDataImageSize = d.counter_data.size();
        sample.sampleIndex = index;
        return step_result("cuptiPmSamplingCounterDataGetSampleInfo", lib_->PmGetSampleInfo(&sample));
    }

    // `decoded_at`: when DecodeData returned, after every sample it gave ended.
    Result hand_over(Device& d, std::int64_t decoded_at) {
        std::int64_t t0 = monotonic_ns();
        auto info = CUAGENT_CUPTI_PARAMS(PmGetCounterDataInfoParams, numCompletedSamples);
        info.pCounterDataImage = d.counter_data.data();
        info.counterDataImageSize = d.counter_data.size();
        if (Result r = step_result("cuptiPmSamplingGetCounterDataInfo", lib_->PmGetCounterDataInfo(&info));
            r != kSuccess)
            return r;
        if (d.consumed >= info.numCompletedSamples) return kSuccess;
        // GPU timestamps to CLOCK_MONOTONIC: a sample ended before it was
        // decoded, so the least (decoded_at - end) seen is the offset plus the
        // shortest latency. Learnt from the newest sample (the least lag)
        // before any of the batch is placed: no sample moves once placed.
        PmGetSampleInfoParams sample;
        if (Result r = sample_info(d, info.numCompletedSamples - 1, sample); r != kSuccess) return r;
        d.offset_ns = std::min(d.offset_ns, decoded_at - static_cast<std::int64_t>(sample.endTimestamp));
        double raw[kMetricCount];
        for (; d.consumed < info.numCompletedSamples; ++d.consumed) {
            if (Result r = sample_info(d, d.consumed, sample); r != kSuccess) return r;
            auto eval = CUAGENT_CUPTI_PARAMS(HostEvaluateToGpuValuesParams, pMetricValues);
            eval.pHostObject = d.config->host();
            eval.pCounterDataImage = d.counter_data.data();
            eval.counterDataImageSize = d.counter_data.size();
            eval.rangeIndex = d.consumed;
            eval.ppMetricNames = metrics_.data();
            eval.numMetrics = metrics_.size();
            eval.pMetricValues = raw;
            const Result r = lib_->HostEvaluateToGpuValues(&eval);
            const std::int64_t t1 = monotonic_ns();
            d.library_ns.fetch_add(static_cast<std::uint64_t>(t1 - t0), std::memory_order_relaxed);
            if (step_result("cuptiProfilerHostEvaluateToGpuValues", r) != kSuccess) return r;
            fold(d, sample.startTimestamp, sample.endTimestamp, raw);
            t0 = monotonic_ns();
        }
        return kSuccess;
    }

    // Converts one sample to counter units and folds it into its window.
    void fold(Device& d, std::uint64_t start, std::uint64_t end, const double* raw) {
        if (end <= start) return;
        const double seconds = static_cast<double>(end - start) * 1e-9;
        const double cycles = raw[kGpcHz] * seconds;
        auto ratio_of_cycles = [&](double v) { return cycles > 0 ? static_cast<float>(v / cycles) : kNaN; };
        auto pct = [](double v) { return static_cast<float>(v / 100.0); };
        auto per_second = [&](double v) { return static_cast<float>(v / seconds); };
        float v[kValues];
        v[kSmActive] = ratio_of_cycles(raw[kSmCyclesAvg]);
        v[kSmActivePeak] = kNaN;  // the window's largest kSmActive (Fold::peak)
        v[kSmActiveMax] = ratio_of_cycles(raw[kSmCyclesMax]);
        v[kSmActiveMin] = ratio_of_cycles(raw[kSmCyclesMin]);
        v[kTensor] = pct(raw[kTensorPct]);
        v[kInstIssue] = pct(raw[kInstPct]);
        v[kSmIdle] = pct(raw[kSmIdleWarpsPct]);
        v[kDramRead] = pct(raw[kDramReadPct]);
        v[kDramWrite] = pct(raw[kDramWritePct]);
        v[kNvlinkRx] = per_second(raw[kNvlRxBytes]);
        v[kNvlinkTx] = per_second(raw[kNvlTxBytes]);
        v[kPcieRead] = per_second(raw[kPcieReadBytes]);
        v[kPcieWrite] = per_second(raw[kPcieWriteBytes]);
        v[kGpcClock] = static_cast<float>(raw[kGpcHz]);
        v[kSamples] = kNaN;  // the window's count (Fold::n)
        // The sample's middle decides its window.
        const std::int64_t t = static_cast<std::int64_t>(start + (end - start) / 2) + d.offset_ns;
        const std::int64_t window = (t - origin_) / window_;
        if (window <= d.handed || (d.fold.n > 0 && window < d.fold.window)) {
            // Its window was handed over already: counted nowhere rather than in another.
            d.late.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        if (d.fold.n > 0 && window != d.fold.window) flush(d);  // a sample of a later window: this one is whole
        if (d.fold.n == 0) {
            d.fold = Fold{};
            d.fold.window = window;
        }
        d.fold.add(v);
        d.fold.t_ns = t;
        d.last_t_ns = t;
        d.samples.fetch_add(1, std::memory_order_relaxed);
    }

    // Hands the open window over to the engine.
    void flush(Device& d) {
        if (d.fold.n == 0) return;
        d.handed = d.fold.window;
        void* slot = d.ring->try_claim();
        if (slot == nullptr) {  // no engine takes them: drop, never wait
            d.dropped.fetch_add(d.fold.n, std::memory_order_relaxed);
        } else {
            auto* w = static_cast<PmWindow*>(slot);
            w->t_ns = d.fold.t_ns;
            w->grid = grid_seen_;
            for (std::size_t c = 0; c < kValues; ++c)
                w->values[c] = d.fold.counts[c] ? static_cast<float>(d.fold.sums[c] / d.fold.counts[c]) : kNaN;
            w->values[kSmActivePeak] = d.fold.peak;
            w->values[kSamples] = static_cast<float>(d.fold.n);
            d.ring->publish();
        }
        d.fold.n = 0;
    }

    // Stop (with a last decode of what is buffered when `drain`), Disable.
    void teardown(Device& d, bool drain) {
        if (d.object == nullptr) return;
        auto stop = CUAGENT_CUPTI_PARAMS(PmObjectParams, pPmSamplingObject);
        stop.pPmSamplingObject = d.object;
        if (lib_->PmStop(&stop) == kSuccess && drain) decode(d);
        disable(d);
    }
    void disable(Device& d) {
        if (d.object != nullptr) {
            auto off = CUAGENT_CUPTI_PARAMS(PmObjectParams, pPmSamplingObject);
            off.pPmSamplingObject = d.object;
            lib_->PmDisable(&off);
        }
        d.object = nullptr;
        d.config.reset();  // host deinit, after the config image is no longer in use
        d.counter_data.clear();
        d.state = State::Off;
        // No more samples will come: the open window is as whole as it gets.
        flush(d);
        d.complete_before.store(kOwesNothing, std::memory_order_release);
    }

    CuptiOptions options_;
    std::unique_ptr<Library> lib_;
    bool initialized_ = false;
    std::vector<std::unique_ptr<Device>> devices_;
    drivers::CounterTable table_;  // same for every device
    std::vector<const char*> metrics_;
    std::int64_t sample_ns_ = 0, settle_ns_ = 0;

    mutable std::mutex mutex_;  // pause state, reasons, events, retry times, the grid; never on the hot path
    std::int64_t window_ns_ = 0, origin_ns_ = 0;  // the engine's window grid (under mutex_)
    std::atomic<std::uint64_t> grid_{1};          // +1 at each engine start (written under mutex_)
    std::int64_t window_ = 1, origin_ = 0;        // the decode thread's copy of the grid
    std::uint64_t grid_seen_ = 0;                 // and its number
    std::atomic<std::uint64_t> decode_cpu_ns_{0};
    std::condition_variable wake_;
    bool stop_ = false;
    std::atomic<bool> paused_{false};
    std::string pause_reason_;
    std::vector<CuptiEvent> events_;
    std::string last_step_;    // decode thread
    bool reinitialize_ = false;  // decode thread
    std::thread thread_;
};

}  // namespace

std::shared_ptr<CuptiSource> make_cupti_source(const CuptiOptions& options) {
    return std::make_shared<Source>(options);
}

CuptiOfflineReport cupti_offline_check(const std::vector<std::string>& library, const std::string& chip) {
    Library lib(library.empty() ? default_candidates({}) : library);
    std::vector<const char*> metrics(std::begin(kMetricNames), std::end(kMetricNames));
    const OfflineCheck check = check_offline(lib, chip, metrics);
    return {lib.path(), check.metrics, check.passes, check.error};
}

std::vector<std::string> cupti_metric_names() { return {std::begin(kMetricNames), std::end(kMetricNames)}; }

std::vector<std::pair<std::string, std::size_t>> cupti_struct_sizes() {
    std::vector<std::pair<std::string, std::size_t>> out;
    for (const auto& s : kStructSizes) out.emplace_back(s.name, s.size);
    return out;
}

}  // namespace cuagent
