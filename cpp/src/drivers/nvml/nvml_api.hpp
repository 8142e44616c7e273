// The slice of the NVML C API that the nvml driver uses, declared here from
// nvml.h facts (signatures, struct layouts, enum values) so that the package
// builds without the CUDA toolkit. Every function is looked up at run time
// (nvml::Library, nvml_library.hpp); a symbol the installed driver lacks stays null.
// tests/test_nvidia_abi.py compiles cpp/tests/abi/nvidia_abi_check.cpp, which
// compares every declaration here and in nvml_library.hpp with NVIDIA's real nvml.h.
#pragma once

#include <cstdint>
#include <string>

namespace cuagent::nvml {

using Return = int;  // nvmlReturn_t
inline constexpr Return kSuccess = 0;
inline constexpr Return kErrorUninitialized = 1;
inline constexpr Return kErrorInvalidArgument = 2;
inline constexpr Return kErrorNotSupported = 3;
inline constexpr Return kErrorNoPermission = 4;
inline constexpr Return kErrorNotFound = 6;
inline constexpr Return kErrorInsufficientSize = 7;
inline constexpr Return kErrorDriverNotLoaded = 9;
inline constexpr Return kErrorFunctionNotFound = 13;
inline constexpr Return kErrorGpuIsLost = 15;
inline constexpr Return kErrorResetRequired = 16;
inline constexpr Return kErrorNoData = 21;
inline constexpr Return kErrorGpuNotFound = 28;
inline constexpr Return kErrorUnknown = 999;

struct DeviceOpaque;
using Device = DeviceOpaque*;  // nvmlDevice_t
struct GpmSampleOpaque;
using GpmSample = GpmSampleOpaque*;  // nvmlGpmSample_t

inline constexpr int kTemperatureGpu = 0;  // NVML_TEMPERATURE_GPU
inline constexpr int kClockSm = 1;         // NVML_CLOCK_SM
inline constexpr int kClockMem = 2;        // NVML_CLOCK_MEM
inline constexpr int kMemoryErrorUncorrected = 1;  // NVML_MEMORY_ERROR_TYPE_UNCORRECTED
inline constexpr int kVolatileEcc = 0;             // NVML_VOLATILE_ECC
inline constexpr unsigned kDeviceMigEnable = 1;    // NVML_DEVICE_MIG_ENABLE
// nvmlGpuTopologyLevel_t: how far apart two GPUs are on the PCIe tree.
inline constexpr int kTopologyInternal = 0;    // NVML_TOPOLOGY_INTERNAL: same board
inline constexpr int kTopologySingle = 10;     // one PCIe switch
inline constexpr int kTopologyMultiple = 20;   // several PCIe switches
inline constexpr int kTopologyHostbridge = 30; // one host bridge
inline constexpr int kTopologyNode = 40;       // one NUMA node
inline constexpr int kTopologySystem = 50;     // across the SMP interconnect
inline constexpr unsigned kDeviceNameBufferSize = 96;   // NVML_DEVICE_NAME_V2_BUFFER_SIZE
inline constexpr unsigned kDeviceUuidBufferSize = 96;   // NVML_DEVICE_UUID_V2_BUFFER_SIZE

struct Memory {  // nvmlMemory_t
    unsigned long long total, free, used;
};
struct MemoryV2 {  // nvmlMemory_v2_t
    unsigned int version;
    unsigned long long total, reserved, free, used;
};
// NVML_STRUCT_VERSION(Memory, 2): sizeof | version << 24.
inline constexpr unsigned kMemoryV2Version = static_cast<unsigned>(sizeof(MemoryV2)) | (2u << 24);
static_assert(sizeof(MemoryV2) == 40, "nvmlMemory_v2_t layout");

struct Utilization {  // nvmlUtilization_t, percent
    unsigned int gpu, memory;
};

struct PciInfo {  // nvmlPciInfo_t (v3)
    char busIdLegacy[16];
    unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
    char busId[32];
};

struct DeviceAttributes {  // nvmlDeviceAttributes_t
    unsigned int multiprocessorCount, sharedCopyEngineCount, sharedDecoderCount,
        sharedEncoderCount, sharedJpegCount, sharedOfaCount, gpuInstanceSliceCount,
        computeInstanceSliceCount;
    unsigned long long memorySizeMB;
};

// GPM metric ids (nvmlGpmMetricId_t).
inline constexpr unsigned kGpmGraphicsUtil = 1;
inline constexpr unsigned kGpmSmUtil = 2;
inline constexpr unsigned kGpmSmOccupancy = 3;
inline constexpr unsigned kGpmAnyTensorUtil = 5;
inline constexpr unsigned kGpmDramBwUtil = 10;
inline constexpr unsigned kGpmPcieTxPerSec = 20;   // MiB/s
inline constexpr unsigned kGpmPcieRxPerSec = 21;
inline constexpr unsigned kGpmNvlinkTotalRxPerSec = 60;
inline constexpr unsigned kGpmNvlinkTotalTxPerSec = 61;
inline constexpr unsigned kGpmMetricsGetVersion = 1;
inline constexpr unsigned kGpmSupportVersion = 1;

struct GpmMetric {  // nvmlGpmMetric_t
    unsigned int metricId;
    Return nvmlReturn;
    double value;
    struct {
        char* shortName;
        char* longName;
        char* unit;
    } metricInfo;
};

// nvmlGpmMetricsGet_t ends in metrics[NVML_GPM_METRIC_MAX]; that bound grows
// with each driver (98, then 210, 477 in 2025 headers). The library reads
// numMetrics entries, but we size the array well past any known bound so a
// library that clears the whole array cannot overrun it.
inline constexpr unsigned kGpmMetricCapacity = 1024;
struct GpmMetricsGet {
    unsigned int version;
    unsigned int numMetrics;
    GpmSample sample1;
    GpmSample sample2;
    GpmMetric metrics[kGpmMetricCapacity];
};

struct GpmSupport {  // nvmlGpmSupport_t
    unsigned int version;
    unsigned int isSupportedDevice;
};

}  // namespace cuagent::nvml
