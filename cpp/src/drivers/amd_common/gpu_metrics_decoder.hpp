// Decoding one device's gpu_metrics tables, read after read: the same for the
// rocm_smi and amdsmi drivers, which differ only in how they fetch the table.
// It keeps what one table needs from the one before (firmware timestamp,
// accumulators), so it belongs to one device and is used by the sampler thread
// only. decode() is hot path: no allocation, no exceptions.
#pragma once

#include <cstdint>

#include "gpu_metrics.hpp"

namespace cuagent::amd {

// Where the decoder writes each value it takes from the table: a float offset
// in the sample (drivers::CounterTable::offset), kNone for a value the driver
// reads elsewhere or not at all.
struct TableTargets {
    static constexpr std::uint32_t kNone = 0xFFFFFFFFu;
    std::uint32_t gr_active = kNone;          // ratio, average_gfx_activity
    std::uint32_t dram_active = kNone;        // ratio, average_umc_activity
    std::uint32_t power = kNone;              // W
    std::uint32_t temp = kNone;               // C, hotspot
    std::uint32_t sm_clock = kNone;           // Hz
    std::uint32_t mem_clock = kNone;          // Hz
    std::uint32_t throttle = kNone;           // fold_throttle mask
    std::uint32_t power_violation = kNone;    // ratio of firmware ticks
    std::uint32_t thermal_violation = kNone;  // ratio of firmware ticks
    std::uint32_t xcd_active = kNone;         // first of xcps x xccs_per_xcp ratios
};

class TableDecoder {
public:
    TableDecoder();

    // Slow path: the layout the library writes (measured), the compute
    // partition shape (xcp_stats[p] is partition p, its gfx_busy_*[x] XCD
    // p * xccs_per_xcp + x), the XCCs of the whole device (for the clocks) and
    // where the values go. Forgets every earlier table.
    void configure(const metrics::PublicLayout& layout, std::uint32_t xcps, std::uint32_t xccs_per_xcp,
                   std::uint32_t xccs_total, const TableTargets& targets);

    // Decodes the table `t` just read into `values`. A table whose firmware
    // timestamp has not moved since the last one is the same data again: it
    // writes nothing and returns false, so a window's mean is not weighted by
    // how often we happened to look.
    bool decode(const unsigned char* t, float* values) noexcept;

private:
    void read_xcds(const unsigned char* t, float* active, double ticks) noexcept;
    float graphics_clock_hz(const unsigned char* t, unsigned revision) const noexcept;

    metrics::PublicLayout layout_{0, 0, 0, 0};
    std::uint32_t xcps_ = 1;
    std::uint32_t xccs_per_xcp_ = 1;
    std::uint32_t xccs_total_ = 1;
    TableTargets at_;

    std::uint64_t last_firmware_timestamp_ = 0;
    bool seen_table_ = false;
    std::uint64_t last_accumulation_ = metrics::kNoData64;
    std::uint64_t last_ppt_ = metrics::kNoData64;
    std::uint64_t last_thm_ = metrics::kNoData64;
    std::uint64_t last_busy_acc_[metrics::kMaxXcd];
};

}  // namespace cuagent::amd
