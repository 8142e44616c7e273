// The rocm_smi driver's read path. Each read makes a handful of rsmi calls
// per GPU (the gpu_metrics table, busy percent, memory, power, temperature),
// decodes the table through the layout measured at discovery, and tells a
// lost device (every call failing the way a vanished sysfs fails) from a
// failed read.
#include "cuagent/drivers/rocm_smi.hpp"

#include <stdexcept>
#include <string>

#include "amd_common/call_tally.hpp"
#include "rocm_smi_device.hpp"
#include "rocm_smi_library.hpp"

namespace cuagent {

namespace {

using namespace rocm;

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

// What one read's calls did (amd_common/), which takes status 0 for success.
static_assert(kSuccess == Status{});
using Tally = amd::CallTally<Status, gone>;

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

        if (gpu.table.present() &&
            tally.ok("rsmi_dev_gpu_metrics_info_get", fn.gpu_metrics(gpu.table_device, gpu.table.buffer())))
            gpu.table.decode(values);

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

        return tally.verdict(detail, detail_size, [&](Status s) { return library_.status_text(s); });
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
