// The public gpu_metrics table that both AMD libraries fill (ROCm SMI's
// rsmi_gpu_metrics_t, AMD SMI's amdsmi_gpu_metrics_t: the same fields at the
// same offsets, written from rocm_smi.h / amdsmi.h facts): which layout a
// library writes (measured, not assumed), and field access that treats
// all-ones as "no data". Hot-path helpers: no allocation, no exceptions.
//
// The library copies the kernel's table into its own public struct, every
// field the kernel table lacks set to all-ones, the header (size,
// format/content revision) taken from the kernel table. The public struct grew
// with each library release, so its layout is the library's, not the table's:
//   96 bytes    ROCm SMI releases that know tables up to 1.3 (ROCm 5.x; measured
//               on Debian's 5.2.3): the kernel's 1.1 table; a 1.2 or 1.3 table is
//               cut to it, its firmware_timestamp x 10 put in
//               system_clock_counter. (5.2.3 aborts the process, an assertion,
//               on a 1.4+ table.)
//   424 bytes   releases that know tables up to 1.5 (no xcp_stats)
//   1832 bytes  1.6: xcp_stats[8] = {u32 gfx_busy_inst[8], u16 jpeg_busy[32],
//               u16 vcn_busy[4], u64 gfx_busy_acc[8]} (168 bytes each)
//   2368 bytes  1.7: + u64 gfx_below_host_limit_acc[8] per XCP (232 bytes),
//               + vram_max_bandwidth, xgmi_link_status[8] after xcp_stats
//   4544 bytes  1.8: jpeg_busy grows to u16[40], which moves vcn_busy and
//               gfx_busy_acc (now at +120), + four u64[8] per XCP (504 bytes)
// The caller's buffer must hold the largest; which one the library writes is
// measured once (see probe_public_layout), never assumed from a header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>

namespace cuagent::amd::metrics {

inline constexpr std::size_t kMaxXcp = 8;
inline constexpr std::size_t kMaxXcc = 8;
inline constexpr std::size_t kMaxXcd = kMaxXcp * kMaxXcc;
// Bigger than any known table, so a release newer than 4544 bytes cannot
// overflow it either (it writes its own, unknown, size; we then decode nothing
// past the common prefix).
inline constexpr std::size_t kBufferBytes = 16384;

// Offsets shared by every release (the struct only ever grew at the end).
inline constexpr std::size_t kStructureSize = 0;     // u16
inline constexpr std::size_t kFormatRevision = 2;    // u8
inline constexpr std::size_t kContentRevision = 3;   // u8
inline constexpr std::size_t kTemperatureEdge = 4;   // u16, C
inline constexpr std::size_t kTemperatureHotspot = 6;
inline constexpr std::size_t kAverageGfxActivity = 16;   // u16, %
inline constexpr std::size_t kAverageUmcActivity = 18;   // u16, %
inline constexpr std::size_t kAverageSocketPower = 22;   // u16, W (tables < 1.4)
inline constexpr std::size_t kSystemClockCounter = 32;   // u64, ns (tables < 1.4)
inline constexpr std::size_t kCurrentGfxclk = 54;        // u16, MHz (tables < 1.4)
inline constexpr std::size_t kCurrentUclk = 58;          // u16, MHz
inline constexpr std::size_t kFirmwareTimestamp = 96;    // u64, 10 ns units (1.2+)
inline constexpr std::size_t kIndepThrottleStatus = 112; // u64 (1.3+)
inline constexpr std::size_t kCurrentSocketPower = 120;  // u16, W (1.4+)
inline constexpr std::size_t kCurrentGfxclks = 312;      // u16[8], MHz per XCC (1.4+)
inline constexpr std::size_t kV15End = 424;
// 1.6+ (public layouts of 1832 bytes and more)
inline constexpr std::size_t kAccumulationCounter = 424; // u64
inline constexpr std::size_t kPptResidencyAcc = 440;     // u64
inline constexpr std::size_t kSocketThmResidencyAcc = 448;
inline constexpr std::size_t kNumPartition = 472;        // u16
inline constexpr std::size_t kXcpStats = 480;

struct PublicLayout {
    std::size_t size;            // bytes the library writes
    unsigned max_revision;       // newest table content revision it knows
    std::size_t xcp_stride;      // 0: no xcp_stats
    std::size_t gfx_busy_acc;    // offset of gfx_busy_acc inside one XCP entry
};

inline constexpr PublicLayout kLayoutV13{96, 3, 0, 0};
inline constexpr PublicLayout kLayoutV15{424, 5, 0, 0};
inline constexpr PublicLayout kLayoutV16{1832, 6, 168, 104};
inline constexpr PublicLayout kLayoutV17{2368, 7, 232, 104};
inline constexpr PublicLayout kLayoutV18{4544, 8, 504, 120};
inline constexpr PublicLayout kKnownLayouts[] = {kLayoutV13, kLayoutV15, kLayoutV16, kLayoutV17, kLayoutV18};

constexpr std::size_t align8(std::size_t n) { return (n + 7) / 8 * 8; }
// The stated sizes follow from the entries: xcp_stats, u32 pcie_lc_perf_other_end_recovery,
// then (1.7+) u64 vram_max_bandwidth and u16 xgmi_link_status[8], padded to 8 bytes.
static_assert(align8(kXcpStats + kMaxXcp * kLayoutV16.xcp_stride + 4) == kLayoutV16.size);
static_assert(align8(align8(kXcpStats + kMaxXcp * kLayoutV17.xcp_stride + 4) + 8 + 16) == kLayoutV17.size);
static_assert(align8(align8(kXcpStats + kMaxXcp * kLayoutV18.xcp_stride + 4) + 8 + 16) == kLayoutV18.size);
static_assert(kLayoutV16.gfx_busy_acc == 4 * 8 + 2 * 32 + 2 * 4);
static_assert(kLayoutV18.gfx_busy_acc == 4 * 8 + 2 * 40 + 2 * 4);

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
// are APU and partition tables, which these drivers do not decode).
inline unsigned content_revision(const unsigned char* table) noexcept {
    return table[kFormatRevision] == 1 ? table[kContentRevision] : 0u;
}

// The layout the library writes, found by calling it twice over two canary
// fills of `buffer` (kBufferBytes) and seeing how far it wrote. `fill` makes
// one library call into the buffer and returns the library's status (0 is
// success in both libraries). Slow path.
struct LayoutProbe {
    std::uint32_t status = ~0u;      // of the calls; 0: success
    std::size_t written = 0;         // bytes the library wrote
    PublicLayout layout{0, 0, 0, 0}; // size 0: not a known release
    bool known = false;
};
LayoutProbe probe_public_layout(const std::function<std::uint32_t(unsigned char*)>& fill,
                                unsigned char* buffer);

// The table in `t` (written in `layout`) carries this u16 field.
inline bool has_u16(const unsigned char* t, std::size_t offset) noexcept { return u16_at(t, offset) != kNoData16; }

// The table carries per-XCD activity for `xcps` partitions of `xccs_per_xcp`
// XCCs: a 1.6+ table in a layout whose xcp_stats we know, with at least one XCD
// reading. False for a topology the table cannot hold (more than 8 x 8).
bool has_xcd_activity(const unsigned char* t, const PublicLayout& layout, std::uint32_t xcps,
                      std::uint32_t xccs_per_xcp) noexcept;

// The table carries the 1.6+ accumulators (residencies, accumulation counter).
bool has_accumulators(const unsigned char* t, const PublicLayout& layout) noexcept;

// AMD's independent throttle status (64 bits) folded into classes a float
// carries exactly: 1 power limits (bits 0-15), 2 current limits (16-31),
// 4 temperature limits (32-47), 8 other (48-63). NaN when absent.
float fold_throttle(std::uint64_t indep_throttle_status) noexcept;

}  // namespace cuagent::amd::metrics
