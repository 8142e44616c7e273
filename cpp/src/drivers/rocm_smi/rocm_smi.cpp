// The rocm_smi driver's read path. Each read makes a handful of rsmi calls
// per GPU (the gpu_metrics table, busy percent, memory, power, temperature),
// decodes the table through the layout measured at discovery, and tells a
// lost device (every call failing the way a vanished sysfs fails) from a
// failed read.
#include "cuagent/drivers/rocm_smi.hpp"

#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>

#include "rocm_smi_device.hpp"
#include "rocm_smi_library.hpp"
#include "rocm_smi_metrics.hpp"

namespace cuagent {

namespace {

using namespace rocm;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Statuses a call returns once its device has gone: the sysfs files vanish
// (ENOENT reads as NOT_SUPPORTED), reads fail, or the index no longer exists.
// Every call that succeeded at discovery failing this way means the device is
// lost; other failures (BUSY, INTERRUPT, ...) are a failed read.
bool gone(Status s) {
    switch (s) {
        case kNotSupported: case kFileError: case kNotFound: case kInvalidArgs:
        case kInitError: case kDrmError: case kAmdgpuRestartErr: case kNoData:
            return true;
        default:
            return false;
    }
}

// What one read's calls did, for the verdict and the event detail.
struct Tally {
    unsigned attempted = 0;
    unsigned succeeded = 0;
    unsigned vanished = 0;
    const char* first_call = nullptr;
    Status first_status = kSuccess;

    bool ok(const char* call, Status s) {
        ++attempted;
        if (s == kSuccess) {
            ++succeeded;
            return true;
        }
        if (gone(s)) ++vanished;
        if (first_call == nullptr) {
            first_call = call;
            first_status = s;
        }
        return false;
    }
};

class RocmSmiDriver final : public Driver {
public:
    explicit RocmSmiDriver(const RocmSmiOptions& options)
        : library_(options.library), gpus_(discover(library_, options)),
          min_interval_ns_(options.min_read_interval_ns) {}

    std::string name() const override { return "rocm_smi"; }
    std::size_t device_count() const override { return gpus_.size(); }
    const DeviceDescription& device(std::size_t index) const override { return gpus_.at(index).desc; }
    std::int64_t min_read_interval_ns(std::size_t) const override { return min_interval_ns_; }

    ReadStatus read(std::size_t index, std::int64_t /*now_ns*/, float* values, char* detail,
                    std::size_t detail_size) noexcept override {
        Gpu& gpu = gpus_[index];
        const Functions& fn = library_.fn();
        Tally tally;
        const std::uint32_t primary = gpu.rsmi.front();
        const drivers::CounterTable& at = gpu.counters;  // where each counter goes

        if (gpu.has_table) read_table(gpu, values, tally);

        if (at.declared(kGrActive)) {
            const std::size_t n = gpu.per_partition ? gpu.rsmi.size() : 1;
            for (std::size_t p = 0; p < n; ++p) {
                std::uint32_t busy = 0;
                if (tally.ok("rsmi_dev_busy_percent_get", fn.busy_percent(gpu.rsmi[p], &busy)) && busy <= 100)
                    values[at.offset(kGrActive) + p] = static_cast<float>(busy) / 100.0f;
            }
        }
        if (at.declared(kMemUsed)) {
            const std::size_t n = gpu.per_partition ? gpu.rsmi.size() : 1;
            for (std::size_t p = 0; p < n; ++p) {
                std::uint64_t used = 0;
                if (tally.ok("rsmi_dev_memory_usage_get", fn.memory_usage(gpu.rsmi[p], kMemTypeVram, &used)))
                    values[at.offset(kMemUsed) + p] = static_cast<float>(used);
            }
        }
        std::uint64_t microwatts = 0;
        if (gpu.power == PowerSource::SocketPower &&
            tally.ok("rsmi_dev_current_socket_power_get", fn.current_socket_power(primary, &microwatts)))
            values[at.offset(kPower)] = static_cast<float>(static_cast<double>(microwatts) * 1e-6);
        if (gpu.power == PowerSource::PowerAverage &&
            tally.ok("rsmi_dev_power_ave_get", fn.power_ave(primary, 0, &microwatts)))
            values[at.offset(kPower)] = static_cast<float>(static_cast<double>(microwatts) * 1e-6);
        if (gpu.temp == TempSource::Junction || gpu.temp == TempSource::Edge) {
            std::int64_t millidegrees = 0;
            const std::uint32_t sensor = gpu.temp == TempSource::Junction ? kTempTypeJunction : kTempTypeEdge;
            if (tally.ok("rsmi_dev_temp_metric_get", fn.temp_metric(primary, sensor, kTempCurrent, &millidegrees)))
                values[at.offset(kTemp)] = static_cast<float>(millidegrees) / 1000.0f;
        }
        if (gpu.sm_clock == ClockSource::Call) read_clock(gpu, primary, kClkTypeSys, values + at.offset(kSmClock), tally);
        if (gpu.mem_clock == ClockSource::Call) read_clock(gpu, primary, kClkTypeMem, values + at.offset(kMemClock), tally);

        if (tally.attempted == 0 || tally.succeeded > 0) return ReadStatus::Ok;
        if (detail != nullptr && detail_size > 0) {
            std::snprintf(detail, detail_size, "%s: %s", tally.first_call, library_.status_text(tally.first_status));
        }
        return tally.vanished == tally.attempted ? ReadStatus::Lost : ReadStatus::Error;
    }

private:
    // rsmi_frequencies_t in the layout discovery found the library to write
    // (releases before has_deep_sleep put num_supported first); an answer that
    // does not hold together in it reads absent rather than wrong.
    void read_clock(const Gpu& gpu, std::uint32_t device, std::uint32_t clock, float* out, Tally& tally) noexcept {
        Frequencies f{};
        std::uint64_t hz = 0;
        if (tally.ok("rsmi_dev_gpu_clk_freq_get", library_.fn().gpu_clk_freq(device, clock, &f)) &&
            current_frequency(f, gpu.frequency_layout, &hz))
            *out = static_cast<float>(hz);
    }

    // One table read. A table whose firmware timestamp has not moved since the
    // last read is the same data again: it contributes nothing, so a window's
    // mean is not weighted by how often we happened to look.
    void read_table(Gpu& gpu, float* values, Tally& tally) noexcept {
        unsigned char* t = gpu.table.get();
        if (!tally.ok("rsmi_dev_gpu_metrics_info_get", library_.fn().gpu_metrics(gpu.table_device, t))) return;
        const unsigned revision = metrics::content_revision(t);
        // A 96-byte table ends before firmware_timestamp; its library puts that
        // (x 10) in system_clock_counter, or the kernel its read time (1.0, 1.1).
        const std::uint64_t stamp = metrics::u64_at(t, gpu.layout.size > metrics::kFirmwareTimestamp
                                                           ? metrics::kFirmwareTimestamp
                                                           : metrics::kSystemClockCounter);
        if (stamp != metrics::kNoData64) {
            if (gpu.seen_table && stamp == gpu.last_firmware_timestamp) return;
            gpu.last_firmware_timestamp = stamp;
        }
        gpu.seen_table = true;

        const drivers::CounterTable& at = gpu.counters;
        if (gpu.power == PowerSource::Table)
            values[at.offset(kPower)] = metrics::u16_or_nan(
                t, revision >= 4 ? metrics::kCurrentSocketPower : metrics::kAverageSocketPower);
        if (gpu.temp == TempSource::Table) values[at.offset(kTemp)] = metrics::u16_or_nan(t, metrics::kTemperatureHotspot);
        if (gpu.sm_clock == ClockSource::Table) values[at.offset(kSmClock)] = graphics_clock_hz(gpu, t, revision);
        if (gpu.mem_clock == ClockSource::Table)
            values[at.offset(kMemClock)] = metrics::u16_or_nan(t, metrics::kCurrentUclk) * 1e6f;
        if (at.declared(kThrottle))
            values[at.offset(kThrottle)] = metrics::fold_throttle(metrics::u64_at(t, metrics::kIndepThrottleStatus));

        // Accumulators need a 1.6+ table in a layout that has them.
        const bool v16 = revision >= 6 && gpu.layout.size >= metrics::kLayoutV16.size;
        const std::uint64_t accumulation = v16 ? metrics::u64_at(t, metrics::kAccumulationCounter) : metrics::kNoData64;
        const bool have_ticks = accumulation != metrics::kNoData64 && gpu.last_accumulation != metrics::kNoData64 &&
                                accumulation > gpu.last_accumulation;
        const double ticks = have_ticks ? static_cast<double>(accumulation - gpu.last_accumulation) : 0.0;

        if (at.declared(kPowerViolation)) {
            const std::uint64_t ppt = v16 ? metrics::u64_at(t, metrics::kPptResidencyAcc) : metrics::kNoData64;
            const std::uint64_t thm = v16 ? metrics::u64_at(t, metrics::kSocketThmResidencyAcc) : metrics::kNoData64;
            values[at.offset(kPowerViolation)] = residency_ratio(ppt, gpu.last_ppt, ticks);
            values[at.offset(kThermalViolation)] = residency_ratio(thm, gpu.last_thm, ticks);
            gpu.last_ppt = ppt;
            gpu.last_thm = thm;
        }
        if (at.declared(kActive) && gpu.layout.xcp_stride != 0 && revision >= 6) {
            read_xcds(gpu, t, values + at.offset(kActive), ticks);
        }
        gpu.last_accumulation = accumulation;
    }

    // gfx_busy_acc sums the busy percent of every firmware tick, so its change
    // over the change of accumulation_counter is the XCD's mean busy percent
    // since the previous table: nothing between our reads is lost. Without a
    // previous table (or after a counter reset) the instantaneous
    // gfx_busy_inst stands in. A result beyond 100 % means the accumulator is
    // not in the unit we expect; then the instantaneous value is used too.
    void read_xcds(Gpu& gpu, const unsigned char* t, float* active, double ticks) noexcept {
        std::uint32_t partitions = metrics::u16_at(t, metrics::kNumPartition);
        if (partitions == 0 || partitions > gpu.xcp_count) partitions = gpu.xcp_count;
        if (partitions > metrics::kMaxXcp) partitions = metrics::kMaxXcp;  // the table's capacity
        for (std::uint32_t p = 0; p < partitions; ++p) {
            const unsigned char* entry = t + metrics::kXcpStats + p * gpu.layout.xcp_stride;
            for (std::uint32_t x = 0; x < gpu.xcc_per_xcp && x < metrics::kMaxXcc; ++x) {
                const std::size_t xcd = p * gpu.xcc_per_xcp + x;
                const std::uint64_t acc = metrics::u64_at(entry, gpu.layout.gfx_busy_acc + 8 * x);
                const std::uint32_t inst = metrics::u32_at(entry, 4 * x);
                float value = kNaN;
                const std::uint64_t last = gpu.last_busy_acc[xcd];
                if (ticks > 0 && acc != metrics::kNoData64 && last != metrics::kNoData64 && acc >= last) {
                    const double ratio = static_cast<double>(acc - last) / ticks / 100.0;
                    if (ratio <= 1.05) value = static_cast<float>(ratio < 1.0 ? ratio : 1.0);
                }
                if (std::isnan(value) && inst != metrics::kNoData32 && inst <= 100)
                    value = static_cast<float>(inst) / 100.0f;
                active[xcd] = value;
                gpu.last_busy_acc[xcd] = acc;
            }
        }
    }

    static float residency_ratio(std::uint64_t now, std::uint64_t last, double ticks) noexcept {
        if (ticks <= 0 || now == metrics::kNoData64 || last == metrics::kNoData64 || now < last) return kNaN;
        const double ratio = static_cast<double>(now - last) / ticks;
        return static_cast<float>(ratio < 1.0 ? ratio : 1.0);
    }

    // Tables 1.4+ give one clock per XCC: the mean of those that report.
    static float graphics_clock_hz(const Gpu& gpu, const unsigned char* t, unsigned revision) noexcept {
        if (revision < 4) return metrics::u16_or_nan(t, metrics::kCurrentGfxclk) * 1e6f;
        double sum = 0;
        unsigned n = 0;
        const std::uint32_t xccs = gpu.desc.counts.front();
        for (std::uint32_t x = 0; x < xccs && x < metrics::kMaxXcc; ++x) {
            const std::uint16_t mhz = metrics::u16_at(t, metrics::kCurrentGfxclks + 2 * x);
            if (mhz == metrics::kNoData16) continue;
            sum += mhz;
            ++n;
        }
        return n ? static_cast<float>(sum / n * 1e6) : kNaN;
    }

    Library library_;  // first member: outlives the devices that call into it
    std::vector<Gpu> gpus_;
    std::int64_t min_interval_ns_;
};

}  // namespace

std::unique_ptr<Driver> make_rocm_smi_driver(const RocmSmiOptions& options) {
    if (options.min_read_interval_ns < 0) {
        throw std::invalid_argument("rocm_smi: min_read_interval_ns must be >= 0, got " +
                                    std::to_string(options.min_read_interval_ns));
    }
    return std::make_unique<RocmSmiDriver>(options);
}

}  // namespace cuagent
