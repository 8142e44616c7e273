// The amdsmi driver's read path. Each read makes a few AMD SMI calls per GPU
// (the gpu_metrics table, engine activity, VRAM use, ECC at most once a
// second), decodes the table through the layout measured at discovery
// (amd_common/), and tells a lost device (every call failing the way a
// vanished device fails) from a failed read.
#include "cuagent/drivers/amdsmi.hpp"

#include <limits>
#include <stdexcept>
#include <string>

#include "amd_common/call_tally.hpp"
#include "amdsmi_device.hpp"
#include "amdsmi_library.hpp"

namespace cuagent {

namespace {

using namespace amdsmi;
constexpr std::uint32_t kAllOnes32 = 0xFFFFFFFFu;

// Statuses a call returns once its device has gone: its sysfs files and DRM
// node vanish (the library maps ENOENT to NOT_SUPPORTED or FILE_ERROR), or the
// handle no longer resolves. Every call failing this way means the device is
// lost; other failures (BUSY, RETRY, TIMEOUT, ...) are a failed read.
bool gone(Status s) {
    switch (s) {
        case kNotSupported: case kInval: case kDrmError: case kIo: case kFileError: case kInitError:
        case kNotFound: case kDriverNotLoaded: case kNoData: case kFileNotFound: case kAmdgpuRestartErr:
            return true;
        default:
            return false;
    }
}

// What one read's calls did (amd_common/), which takes status 0 for success.
static_assert(kSuccess == Status{});
using Tally = amd::CallTally<Status, gone>;

class AmdSmiDriver final : public Driver {
public:
    AmdSmiDriver(const AmdSmiOptions& options, std::vector<std::string>* notes)
        : library_(Library::acquire(options.library)), gpus_(discover(*library_, options, notes)),
          min_interval_ns_(options.min_read_interval_ns), ecc_interval_ns_(options.ecc_interval_ns) {}

    std::string name() const override { return "amdsmi"; }
    std::size_t device_count() const override { return gpus_.size(); }
    const DeviceDescription& device(std::size_t index) const override { return gpus_.at(index).desc; }
    std::int64_t min_read_interval_ns(std::size_t) const override { return min_interval_ns_; }

    ReadStatus read(std::size_t index, std::int64_t now_ns, float* values, char* detail,
                    std::size_t detail_size) noexcept override {
        Gpu& gpu = gpus_[index];
        const Functions& fn = library_->fn();
        const drivers::CounterTable& at = gpu.counters;  // where each counter goes
        const Handle primary = gpu.processors.front();
        const std::size_t parts = gpu.per_partition ? gpu.processors.size() : 1;
        Tally tally;

        if (gpu.table.present() &&
            tally.ok("amdsmi_get_gpu_metrics_info",
                     fn.gpu_metrics(gpu.table_processor, reinterpret_cast<GpuMetrics*>(gpu.table.buffer()))))
            gpu.table.decode(values);

        if (gpu.activity == Source::Call) {
            for (std::size_t p = 0; p < parts; ++p) {
                Out<EngineUsage> u;
                if (!tally.ok("amdsmi_get_gpu_activity", fn.activity(gpu.processors[p], &u.value))) continue;
                if (at.declared(kGrActive) && u.value.gfx_activity <= 100)
                    values[at.offset(kGrActive) + p] = static_cast<float>(u.value.gfx_activity) / 100.0f;
                if (at.declared(kDramActive) && u.value.umc_activity <= 100)
                    values[at.offset(kDramActive) + p] = static_cast<float>(u.value.umc_activity) / 100.0f;
            }
        }
        if (at.declared(kMemUsed)) {
            for (std::size_t p = 0; p < parts; ++p) {
                std::uint64_t used = 0;
                if (tally.ok("amdsmi_get_gpu_memory_usage", fn.memory_usage(gpu.processors[p], kMemTypeVram, &used)))
                    values[at.offset(kMemUsed) + p] = static_cast<float>(used);
            }
        }
        if (gpu.power == Source::Call) {
            Out<PowerInfo> power;
            if (tally.ok("amdsmi_get_power_info", fn.power_info(primary, &power.value))) {
                const std::uint32_t w = power.value.current_socket_power != kAllOnes32
                    ? power.value.current_socket_power : power.value.average_socket_power;
                if (w != kAllOnes32) values[at.offset(kPower)] = static_cast<float>(w);
            }
        }
        if (gpu.temp == Source::Call) {
            std::int64_t celsius = 0;
            if (tally.ok("amdsmi_get_temp_metric", fn.temp_metric(primary, gpu.temp_sensor, kTempCurrent, &celsius)))
                values[at.offset(kTemp)] = static_cast<float>(celsius);
        }
        if (gpu.sm_clock == Source::Call) read_clock(primary, kClkGfx, values + at.offset(kSmClock), tally);
        if (gpu.mem_clock == Source::Call) read_clock(primary, kClkMem, values + at.offset(kMemClock), tally);
        if (at.declared(kEccUncorrected)) read_ecc(gpu, now_ns, values, tally);

        return tally.verdict(detail, detail_size, [&](Status s) { return library_->status_text(s); });
    }

private:
    void read_clock(Handle h, std::uint32_t clock, float* out, Tally& tally) noexcept {
        Out<ClkInfo> c;
        if (tally.ok("amdsmi_get_clock_info", library_->fn().clock_info(h, clock, &c.value)) && c.value.clk != kAllOnes32)
            *out = static_cast<float>(c.value.clk) * 1e6f;
    }

    // ECC counts change rarely and each read walks the RAS blocks' sysfs
    // files: re-read every ecc_interval_ns, the last counts carried between.
    void read_ecc(Gpu& gpu, std::int64_t now_ns, float* values, Tally& tally) noexcept {
        const drivers::CounterTable& at = gpu.counters;
        if (now_ns >= gpu.ecc_due_ns) {
            gpu.ecc_due_ns = now_ns + ecc_interval_ns_;
            Out<ErrorCount> ec;
            if (tally.ok("amdsmi_get_gpu_total_ecc_count", library_->fn().total_ecc(gpu.processors.front(), &ec.value))) {
                gpu.ecc_corrected = static_cast<float>(ec.value.correctable_count);
                gpu.ecc_uncorrected = static_cast<float>(ec.value.uncorrectable_count);
            } else {
                gpu.ecc_corrected = gpu.ecc_uncorrected = std::numeric_limits<float>::quiet_NaN();
                gpu.ecc_due_ns = now_ns;  // try again next read
            }
        }
        values[at.offset(kEccCorrected)] = gpu.ecc_corrected;
        values[at.offset(kEccUncorrected)] = gpu.ecc_uncorrected;
    }

    std::shared_ptr<Library> library_;  // first member: outlives the devices that call into it
    std::vector<Gpu> gpus_;
    std::int64_t min_interval_ns_;
    std::int64_t ecc_interval_ns_;
};

}  // namespace

std::unique_ptr<Driver> make_amdsmi_driver(const AmdSmiOptions& options, std::vector<std::string>* notes) {
    if (options.min_read_interval_ns < 0) {
        throw std::invalid_argument("amdsmi: min_read_interval_ns must be >= 0, got " +
                                    std::to_string(options.min_read_interval_ns));
    }
    if (options.ecc_interval_ns < 0) {
        throw std::invalid_argument("amdsmi: ecc_interval_ns must be >= 0, got " +
                                    std::to_string(options.ecc_interval_ns));
    }
    return std::make_unique<AmdSmiDriver>(options, notes);
}

}  // namespace cuagent
