#include "gpu_metrics_decoder.hpp"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>

namespace cuagent::amd {

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr std::uint32_t kNone = TableTargets::kNone;

// A u16 percent field as a ratio; NaN when absent or beyond 100 %.
float percent_ratio(const unsigned char* t, std::size_t offset) noexcept {
    const std::uint16_t v = metrics::u16_at(t, offset);
    return v <= 100 ? static_cast<float>(v) / 100.0f : kNaN;
}

float residency_ratio(std::uint64_t now, std::uint64_t last, double ticks) noexcept {
    if (ticks <= 0 || now == metrics::kNoData64 || last == metrics::kNoData64 || now < last) return kNaN;
    const double ratio = static_cast<double>(now - last) / ticks;
    return static_cast<float>(ratio < 1.0 ? ratio : 1.0);
}

}  // namespace

TableDecoder::TableDecoder() { std::fill(std::begin(last_busy_acc_), std::end(last_busy_acc_), metrics::kNoData64); }

void TableDecoder::configure(const metrics::PublicLayout& layout, std::uint32_t xcps, std::uint32_t xccs_per_xcp,
                             std::uint32_t xccs_total, const TableTargets& targets) {
    layout_ = layout;
    xcps_ = xcps;
    xccs_per_xcp_ = xccs_per_xcp;
    xccs_total_ = xccs_total;
    at_ = targets;
    seen_table_ = false;
    last_firmware_timestamp_ = 0;
    last_accumulation_ = last_ppt_ = last_thm_ = metrics::kNoData64;
    std::fill(std::begin(last_busy_acc_), std::end(last_busy_acc_), metrics::kNoData64);
}

bool TableDecoder::decode(const unsigned char* t, float* values) noexcept {
    using namespace metrics;
    const unsigned revision = content_revision(t);
    // A 96-byte table ends before firmware_timestamp; its library puts that
    // (x 10) in system_clock_counter, or the kernel its read time (1.0, 1.1).
    const std::uint64_t stamp = u64_at(t, layout_.size > kFirmwareTimestamp ? kFirmwareTimestamp : kSystemClockCounter);
    if (stamp != kNoData64) {
        if (seen_table_ && stamp == last_firmware_timestamp_) return false;
        last_firmware_timestamp_ = stamp;
    }
    seen_table_ = true;

    if (at_.gr_active != kNone) values[at_.gr_active] = percent_ratio(t, kAverageGfxActivity);
    if (at_.dram_active != kNone) values[at_.dram_active] = percent_ratio(t, kAverageUmcActivity);
    if (at_.power != kNone)
        values[at_.power] = u16_or_nan(t, revision >= 4 ? kCurrentSocketPower : kAverageSocketPower);
    if (at_.temp != kNone) values[at_.temp] = u16_or_nan(t, kTemperatureHotspot);
    if (at_.sm_clock != kNone) values[at_.sm_clock] = graphics_clock_hz(t, revision);
    if (at_.mem_clock != kNone) values[at_.mem_clock] = u16_or_nan(t, kCurrentUclk) * 1e6f;
    if (at_.throttle != kNone) values[at_.throttle] = fold_throttle(u64_at(t, kIndepThrottleStatus));

    // Accumulators need a 1.6+ table in a layout that has them.
    const bool v16 = revision >= 6 && layout_.size >= kLayoutV16.size;
    const std::uint64_t accumulation = v16 ? u64_at(t, kAccumulationCounter) : kNoData64;
    const bool have_ticks = accumulation != kNoData64 && last_accumulation_ != kNoData64 &&
                            accumulation > last_accumulation_;
    const double ticks = have_ticks ? static_cast<double>(accumulation - last_accumulation_) : 0.0;

    if (at_.power_violation != kNone || at_.thermal_violation != kNone) {
        const std::uint64_t ppt = v16 ? u64_at(t, kPptResidencyAcc) : kNoData64;
        const std::uint64_t thm = v16 ? u64_at(t, kSocketThmResidencyAcc) : kNoData64;
        if (at_.power_violation != kNone) values[at_.power_violation] = residency_ratio(ppt, last_ppt_, ticks);
        if (at_.thermal_violation != kNone) values[at_.thermal_violation] = residency_ratio(thm, last_thm_, ticks);
        last_ppt_ = ppt;
        last_thm_ = thm;
    }
    if (at_.xcd_active != kNone && layout_.xcp_stride != 0 && revision >= 6) {
        read_xcds(t, values + at_.xcd_active, ticks);
    }
    last_accumulation_ = accumulation;
    return true;
}

// gfx_busy_acc sums the busy percent of every firmware tick, so its change
// over the change of accumulation_counter is the XCD's mean busy percent
// since the previous table: nothing between our reads is lost. Without a
// previous table (or after a counter reset) the instantaneous
// gfx_busy_inst stands in. A result beyond 100 % means the accumulator is
// not in the unit we expect; then the instantaneous value is used too.
void TableDecoder::read_xcds(const unsigned char* t, float* active, double ticks) noexcept {
    using namespace metrics;
    std::uint32_t partitions = u16_at(t, kNumPartition);
    if (partitions == 0 || partitions > xcps_) partitions = xcps_;
    if (partitions > kMaxXcp) partitions = kMaxXcp;  // the table's capacity
    for (std::uint32_t p = 0; p < partitions; ++p) {
        const unsigned char* entry = t + kXcpStats + p * layout_.xcp_stride;
        for (std::uint32_t x = 0; x < xccs_per_xcp_ && x < kMaxXcc; ++x) {
            const std::size_t xcd = p * xccs_per_xcp_ + x;
            const std::uint64_t acc = u64_at(entry, layout_.gfx_busy_acc + 8 * x);
            const std::uint32_t inst = u32_at(entry, 4 * x);
            float value = kNaN;
            const std::uint64_t last = last_busy_acc_[xcd];
            if (ticks > 0 && acc != kNoData64 && last != kNoData64 && acc >= last) {
                const double ratio = static_cast<double>(acc - last) / ticks / 100.0;
                if (ratio <= 1.05) value = static_cast<float>(ratio < 1.0 ? ratio : 1.0);
            }
            if (std::isnan(value) && inst != kNoData32 && inst <= 100) value = static_cast<float>(inst) / 100.0f;
            active[xcd] = value;
            last_busy_acc_[xcd] = acc;
        }
    }
}

// Tables 1.4+ give one clock per XCC: the mean of those that report.
float TableDecoder::graphics_clock_hz(const unsigned char* t, unsigned revision) const noexcept {
    using namespace metrics;
    if (revision < 4) return u16_or_nan(t, kCurrentGfxclk) * 1e6f;
    double sum = 0;
    unsigned n = 0;
    for (std::uint32_t x = 0; x < xccs_total_ && x < kMaxXcc; ++x) {
        const std::uint16_t mhz = u16_at(t, kCurrentGfxclks + 2 * x);
        if (mhz == kNoData16) continue;
        sum += mhz;
        ++n;
    }
    return n ? static_cast<float>(sum / n * 1e6) : kNaN;
}

}  // namespace cuagent::amd
