// Reading the public gpu_metrics table a ROCm SMI library fills: which layout
// the library writes (measured, not assumed), and field access that treats
// all-ones as "no data". Hot-path helpers: no allocation, no exceptions.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

#include "rocm_smi_abi.hpp"

namespace cuagent::rocm::metrics {

inline std::uint16_t u16_at(const unsigned char* table, std::size_t offset) noexcept {
    std::uint16_t v;
    std::memcpy(&v, table + offset, sizeof v);
    return v;
}
inline std::uint32_t u32_at(const unsigned char* table, std::size_t offset) noexcept {
    std::uint32_t v;
    std::memcpy(&v, table + offset, sizeof v);
    return v;
}
inline std::uint64_t u64_at(const unsigned char* table, std::size_t offset) noexcept {
    std::uint64_t v;
    std::memcpy(&v, table + offset, sizeof v);
    return v;
}

inline constexpr std::uint16_t kNoData16 = 0xFFFF;
inline constexpr std::uint32_t kNoData32 = 0xFFFFFFFFu;
inline constexpr std::uint64_t kNoData64 = ~std::uint64_t{0};

// A u16 field as float, NaN when the table lacks it.
inline float u16_or_nan(const unsigned char* table, std::size_t offset) noexcept {
    const std::uint16_t v = u16_at(table, offset);
    return v == kNoData16 ? std::numeric_limits<float>::quiet_NaN() : static_cast<float>(v);
}

// Content revision of a format-1 table; 0 for anything else (format 2 and 3
// are APU and partition tables, which this driver does not decode).
inline unsigned content_revision(const unsigned char* table) noexcept {
    return table[kFormatRevision] == 1 ? table[kContentRevision] : 0u;
}

// The layout the library writes, found by calling it twice over two canary
// fills of `buffer` (kBufferBytes) and seeing how far it wrote. Slow path.
struct LayoutProbe {
    Status status = kNotSupported;  // of the calls
    std::size_t written = 0;        // bytes the library wrote
    PublicLayout layout{0, 0, 0, 0};  // size 0: not a known release
    bool known = false;
};
LayoutProbe probe_public_layout(MetricsFn fn, std::uint32_t device, unsigned char* buffer) noexcept;

// AMD's independent throttle status (64 bits) folded into classes a float
// carries exactly: 1 power limits (bits 0-15), 2 current limits (16-31),
// 4 temperature limits (32-47), 8 other (48-63). NaN when absent.
float fold_throttle(std::uint64_t indep_throttle_status) noexcept;

}  // namespace cuagent::rocm::metrics
