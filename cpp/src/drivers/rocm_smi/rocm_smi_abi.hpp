// The parts of librocm_smi64's C ABI the rocm_smi driver uses, written from
// rocm_smi.h (no ROCm headers are needed to build cuagent): status codes, enum
// values, function signatures, and the byte layouts of the public
// rsmi_gpu_metrics_t of each library release.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace cuagent::rocm {

// rsmi_status_t
enum Status : std::uint32_t {
    kSuccess = 0x0,
    kInvalidArgs = 0x1,
    kNotSupported = 0x2,
    kFileError = 0x3,
    kPermission = 0x4,
    kOutOfResources = 0x5,
    kInternalException = 0x6,
    kInputOutOfBounds = 0x7,
    kInitError = 0x8,
    kNotYetImplemented = 0x9,
    kNotFound = 0xA,
    kInsufficientSize = 0xB,
    kInterrupt = 0xC,
    kUnexpectedSize = 0xD,
    kNoData = 0xE,
    kUnexpectedData = 0xF,
    kBusy = 0x10,
    kRefcountOverflow = 0x11,
    kSettingUnavailable = 0x12,
    kAmdgpuRestartErr = 0x13,
    kDrmError = 0x14,
    kFailLoadModule = 0x15,
    kFailLoadSymbol = 0x16,
    kUnknownError = 0xFFFFFFFF,
};

// rsmi_clk_type_t, rsmi_memory_type_t, rsmi_temperature_type_t, rsmi_temperature_metric_t
inline constexpr std::uint32_t kClkTypeSys = 0x0;
inline constexpr std::uint32_t kClkTypeMem = 0x4;
inline constexpr std::uint32_t kMemTypeVram = 0;
inline constexpr std::uint32_t kTempTypeEdge = 0;
inline constexpr std::uint32_t kTempTypeJunction = 1;
inline constexpr std::uint32_t kTempCurrent = 0;

// rsmi_frequencies_t of current headers (has_deep_sleep came first in 2023;
// older headers lacked it, which shifts every field: see Frequencies decoding).
struct Frequencies {
    bool has_deep_sleep;
    std::uint32_t num_supported;
    std::uint32_t current;
    std::uint64_t frequency[33];
};
static_assert(offsetof(Frequencies, num_supported) == 4 && offsetof(Frequencies, frequency) == 16,
              "rsmi_frequencies_t layout");

// rsmi_frequencies_t of releases before has_deep_sleep (ROCm 5.x; measured on
// Debian's 5.2.3): num_supported first, at most 32 frequencies. It fits in a
// Frequencies, which is the buffer passed either way.
struct FrequenciesV5 {
    std::uint32_t num_supported;
    std::uint32_t current;
    std::uint64_t frequency[32];
};
static_assert(sizeof(FrequenciesV5) <= sizeof(Frequencies), "a Frequencies holds either layout");

enum class FrequencyLayout : std::uint8_t { Current, V5 };

// The current frequency (Hz) in what rsmi_dev_gpu_clk_freq_get wrote into `f`,
// read through `layout`; false when the answer does not hold together in that
// layout. The two cannot be mistaken for each other: read as V5, a current
// struct's first word is has_deep_sleep (0 or 1, then padding) and fails
// current < num_supported; read as current, a V5 struct's first byte is a
// count >= 2, or 1 with 0 in the num_supported slot.
inline bool current_frequency(const Frequencies& f, FrequencyLayout layout, std::uint64_t* hz) noexcept {
    const auto* raw = reinterpret_cast<const unsigned char*>(&f);
    if (layout == FrequencyLayout::Current) {
        if (raw[0] > 1 || f.num_supported == 0 || f.num_supported > 33 || f.current >= f.num_supported) return false;
        *hz = f.frequency[f.current];
        return true;
    }
    FrequenciesV5 v5;
    std::memcpy(&v5, raw, sizeof v5);
    if (v5.num_supported == 0 || v5.num_supported > 32 || v5.current >= v5.num_supported) return false;
    *hz = v5.frequency[v5.current];
    return true;
}

// Enums are 32-bit in this ABI; they are passed as uint32_t.
using InitFn = Status (*)(std::uint64_t);
using ShutDownFn = Status (*)();
using StatusStringFn = Status (*)(Status, const char**);
using NumDevicesFn = Status (*)(std::uint32_t*);
using NameFn = Status (*)(std::uint32_t, char*, std::size_t);          // rsmi_dev_name_get
using Name32Fn = Status (*)(std::uint32_t, char*, std::uint32_t);      // brand, market name, partitions
using U64Fn = Status (*)(std::uint32_t, std::uint64_t*);               // unique id, pci id, socket power
using U32Fn = Status (*)(std::uint32_t, std::uint32_t*);               // busy percent
using NumaFn = Status (*)(std::uint32_t, std::int32_t*);
using MemoryFn = Status (*)(std::uint32_t, std::uint32_t, std::uint64_t*);
using PowerAveFn = Status (*)(std::uint32_t, std::uint32_t, std::uint64_t*);
using TempFn = Status (*)(std::uint32_t, std::uint32_t, std::uint32_t, std::int64_t*);
using ClockFn = Status (*)(std::uint32_t, std::uint32_t, Frequencies*);
using MetricsFn = Status (*)(std::uint32_t, void*);

// ---- gpu_metrics -----------------------------------------------------------
//
// rsmi_dev_gpu_metrics_info_get fills the library's own public table, whatever
// the kernel's table version: fields the kernel table lacks are all-ones, the
// header (size, format/content revision) is the kernel table's. The public
// struct grew with each library release, so its layout is the library's, not
// the table's:
//   96 bytes    releases that know tables up to 1.3 (ROCm 5.x; measured on
//               Debian's 5.2.3): the kernel's 1.1 table; a 1.2 or 1.3 table is
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
// measured once (see detect_public_layout), never assumed from a header.
namespace metrics {

inline constexpr std::size_t kMaxXcp = 8;
inline constexpr std::size_t kMaxXcc = 8;
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

}  // namespace metrics
}  // namespace cuagent::rocm
