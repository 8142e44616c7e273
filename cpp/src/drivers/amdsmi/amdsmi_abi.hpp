// The parts of libamd_smi's C ABI the amdsmi driver uses, written from
// amdsmi.h facts (no ROCm headers are needed to build cuagent): status codes,
// enum values, function signatures and the structs the driver passes.
//
// Struct layouts are those of AMD SMI library major version 26 (ROCm 7.0 and
// its point releases). AMD bumps the major version for every header change
// that breaks the ABI, so the driver passes these structs only to a library
// of that major version (kAbiMajor); with any other it keeps to the calls
// whose arguments are scalars or strings and to the gpu_metrics table, whose
// layout it measures (amd_common/gpu_metrics.hpp). tests/test_amdsmi_abi.py
// compares every struct here, field by field, with the ctypes description of
// the ABI in AMD's own `amdsmi` Python package (amdsmi_wrapper.py, 7.0.2).
#pragma once

#include <cstddef>
#include <cstdint>

namespace cuagent::amdsmi {

inline constexpr std::uint32_t kAbiMajor = 26;

// amdsmi_status_t
enum Status : std::uint32_t {
    kSuccess = 0,
    kInval = 1,
    kNotSupported = 2,
    kNotYetImplemented = 3,
    kFailLoadModule = 4,
    kFailLoadSymbol = 5,
    kDrmError = 6,
    kApiFailed = 7,
    kTimeout = 8,
    kRetry = 9,
    kNoPerm = 10,
    kInterrupt = 11,
    kIo = 12,
    kAddressFault = 13,
    kFileError = 14,
    kOutOfResources = 15,
    kInternalException = 16,
    kInputOutOfBounds = 17,
    kInitError = 18,
    kRefcountOverflow = 19,
    kDirectoryNotFound = 20,
    kBusy = 30,
    kNotFound = 31,
    kNotInit = 32,
    kNoSlot = 33,
    kDriverNotLoaded = 34,
    kMoreData = 39,
    kNoData = 40,
    kInsufficientSize = 41,
    kUnexpectedSize = 42,
    kUnexpectedData = 43,
    kFileNotFound = 52,
    kArgPtrNull = 53,
    kAmdgpuRestartErr = 54,
    kUnknownError = 0xFFFFFFFF,
};

// amdsmi_init_flags_t, processor_type_t, amdsmi_memory_type_t,
// amdsmi_temperature_type_t, amdsmi_temperature_metric_t, amdsmi_clk_type_t
inline constexpr std::uint64_t kInitAmdGpus = 1u << 1;
inline constexpr std::uint32_t kProcessorAmdGpu = 1;
inline constexpr std::uint32_t kMemTypeVram = 0;
inline constexpr std::uint32_t kTempEdge = 0;
inline constexpr std::uint32_t kTempHotspot = 1;  // = JUNCTION
inline constexpr std::uint32_t kTempVram = 2;
inline constexpr std::uint32_t kTempCurrent = 0;
inline constexpr std::uint32_t kClkGfx = 0;
inline constexpr std::uint32_t kClkMem = 4;

inline constexpr std::size_t kStringLength = 256;  // AMDSMI_MAX_STRING_LENGTH
inline constexpr std::size_t kUuidSize = 38;       // AMDSMI_GPU_UUID_SIZE

// amdsmi_bdf_t: a union over one u64 of bit fields.
struct Bdf {
    std::uint64_t as_uint;
    std::uint32_t function() const { return static_cast<std::uint32_t>(as_uint & 0x7u); }
    std::uint32_t device() const { return static_cast<std::uint32_t>(as_uint >> 3) & 0x1Fu; }
    std::uint32_t bus() const { return static_cast<std::uint32_t>(as_uint >> 8) & 0xFFu; }
    std::uint32_t domain() const { return static_cast<std::uint32_t>(as_uint >> 16); }
};
static_assert(sizeof(Bdf) == 8);

// amdsmi_version_t (since 25.3, without the year)
struct Version {
    std::uint32_t major;
    std::uint32_t minor;
    std::uint32_t release;
    const char* build;
};
static_assert(sizeof(Version) == 24 && offsetof(Version, build) == 16);

// amdsmi_asic_info_t
struct AsicInfo {
    char market_name[kStringLength];
    std::uint32_t vendor_id;
    char vendor_name[kStringLength];
    std::uint32_t subvendor_id;
    std::uint64_t device_id;
    std::uint32_t rev_id;
    char asic_serial[kStringLength];
    std::uint32_t oam_id;
    std::uint32_t num_of_compute_units;
    std::uint64_t target_graphics_version;
    std::uint32_t subsystem_id;
    std::uint32_t reserved[21];
};
static_assert(sizeof(AsicInfo) == 896 && offsetof(AsicInfo, device_id) == 520 &&
              offsetof(AsicInfo, target_graphics_version) == 800);

// amdsmi_board_info_t
struct BoardInfo {
    char model_number[kStringLength];
    char product_serial[kStringLength];
    char fru_id[kStringLength];
    char product_name[kStringLength];
    char manufacturer_name[kStringLength];
    std::uint64_t reserved[64];
};
static_assert(sizeof(BoardInfo) == 1792);

// amdsmi_kfd_info_t
struct KfdInfo {
    std::uint64_t kfd_id;
    std::uint32_t node_id;
    std::uint32_t current_partition_id;
    std::uint32_t reserved[12];
};
static_assert(sizeof(KfdInfo) == 64);

// amdsmi_engine_usage_t (percent)
struct EngineUsage {
    std::uint32_t gfx_activity;
    std::uint32_t umc_activity;
    std::uint32_t mm_activity;
    std::uint32_t reserved[13];
};
static_assert(sizeof(EngineUsage) == 64);

// amdsmi_power_info_t (W; a field the device lacks reads all-ones)
struct PowerInfo {
    std::uint64_t socket_power;
    std::uint32_t current_socket_power;
    std::uint32_t average_socket_power;
    std::uint64_t gfx_voltage;  // mV
    std::uint64_t soc_voltage;
    std::uint64_t mem_voltage;
    std::uint32_t power_limit;
    std::uint64_t reserved[18];
};
static_assert(sizeof(PowerInfo) == 192 && offsetof(PowerInfo, current_socket_power) == 8 &&
              offsetof(PowerInfo, reserved) == 48);

// amdsmi_clk_info_t (MHz)
struct ClkInfo {
    std::uint32_t clk;
    std::uint32_t min_clk;
    std::uint32_t max_clk;
    std::uint8_t clk_locked;
    std::uint8_t clk_deep_sleep;
    std::uint32_t reserved[4];
};
static_assert(sizeof(ClkInfo) == 32 && offsetof(ClkInfo, reserved) == 16);

// amdsmi_error_count_t
struct ErrorCount {
    std::uint64_t correctable_count;
    std::uint64_t uncorrectable_count;
    std::uint64_t deferred_count;
    std::uint64_t reserved[5];
};
static_assert(sizeof(ErrorCount) == 64);

// amdsmi_proc_info_t: one entry of amdsmi_get_gpu_process_list
struct ProcInfo {
    char name[kStringLength];
    std::uint32_t pid;
    std::uint64_t mem;  // bytes
    struct {
        std::uint64_t gfx;  // ns of GFX engine time, since the process opened the device
        std::uint64_t enc;  // ns of media engine time
        std::uint32_t reserved[12];
    } engine_usage;
    struct {
        std::uint64_t gtt_mem;   // bytes
        std::uint64_t cpu_mem;
        std::uint64_t vram_mem;
        std::uint32_t reserved[10];
    } memory_usage;
    char container_name[kStringLength];
    std::uint32_t cu_occupancy;
    std::uint32_t reserved[11];
};
static_assert(sizeof(ProcInfo) == 704 && offsetof(ProcInfo, mem) == 264 && offsetof(ProcInfo, engine_usage) == 272 &&
              offsetof(ProcInfo, memory_usage) == 336 && offsetof(ProcInfo, container_name) == 400);

// A struct the library fills, followed by room for a larger one: a release
// that grew a struct without bumping its major version writes into the slack,
// not past the caller's frame. Only the fields of T are read.
template <typename T>
struct Out {
    T value;
    unsigned char slack[512];
};

// amdsmi_gpu_metrics_t: filled into a byte buffer and read through offsets
// (amd_common/gpu_metrics.hpp); named only so that the signature says which.
struct GpuMetrics;

// Handles are opaque pointers; enums are 32-bit and passed as uint32_t.
using Handle = void*;
using InitFn = Status (*)(std::uint64_t);
using ShutDownFn = Status (*)();
using StatusStringFn = Status (*)(Status, const char**);
using VersionFn = Status (*)(Version*);
using SocketHandlesFn = Status (*)(std::uint32_t*, Handle*);
using ProcessorHandlesFn = Status (*)(Handle, std::uint32_t*, Handle*);
using ProcessorTypeFn = Status (*)(Handle, std::uint32_t*);
using AsicInfoFn = Status (*)(Handle, AsicInfo*);
using BoardInfoFn = Status (*)(Handle, BoardInfo*);
using BdfFn = Status (*)(Handle, Bdf*);
using UuidFn = Status (*)(Handle, std::uint32_t*, char*);
using U32Fn = Status (*)(Handle, std::uint32_t*);                      // NUMA node
using KfdInfoFn = Status (*)(Handle, KfdInfo*);
using MemoryFn = Status (*)(Handle, std::uint32_t, std::uint64_t*);   // total, usage
using ActivityFn = Status (*)(Handle, EngineUsage*);
using TempFn = Status (*)(Handle, std::uint32_t, std::uint32_t, std::int64_t*);
using PowerInfoFn = Status (*)(Handle, PowerInfo*);
using ClockInfoFn = Status (*)(Handle, std::uint32_t, ClkInfo*);
using EccFn = Status (*)(Handle, ErrorCount*);
using MetricsFn = Status (*)(Handle, GpuMetrics*);
using PartitionFn = Status (*)(Handle, char*, std::uint32_t);
using ProcessListFn = Status (*)(Handle, std::uint32_t*, ProcInfo*);

}  // namespace cuagent::amdsmi
