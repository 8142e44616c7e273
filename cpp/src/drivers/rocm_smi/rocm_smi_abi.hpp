// The parts of librocm_smi64's C ABI the rocm_smi driver uses, written from
// rocm_smi.h (no ROCm headers are needed to build cuagent): status codes, enum
// values and function signatures. The public rsmi_gpu_metrics_t is shared
// with AMD SMI: amd_common/gpu_metrics.hpp.
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

}  // namespace cuagent::rocm
