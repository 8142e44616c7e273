// The part of the CUPTI 12.x C API that the PM-sampling source calls: result
// codes, enums and parameter structs, declared here from the facts of the
// CUPTI 12.9 headers (cupti_result.h, cupti_target.h, cupti_profiler_target.h,
// cupti_profiler_host.h, cupti_pmsampling.h) so that cuagent builds without a
// CUDA toolkit. Every struct starts with structSize and pPriv; CUPTI checks
// structSize against the size it knows, so these must be the sizes of the
// OLDEST CUPTI loaded (12.9 rejects a 13.x-sized Host_Initialize_Params).
// tests/test_cupti_real.py compiles the real headers and compares each size;
// tests/test_nvidia_abi.py (cpp/tests/abi/cupti_abi_check.cpp) each field's offset,
// each function's signature (cupti_library.hpp) and each value.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cuagent::cupti {

using Result = int;  // CUptiResult
inline constexpr Result kSuccess = 0;
inline constexpr Result kErrorInvalidDevice = 2;
inline constexpr Result kErrorInvalidOperation = 7;
inline constexpr Result kErrorOutOfMemory = 8;
inline constexpr Result kErrorNotInitialized = 15;
inline constexpr Result kErrorHardwareBusy = 26;
inline constexpr Result kErrorNotSupported = 27;
inline constexpr Result kErrorInsufficientPrivileges = 35;
inline constexpr Result kErrorVirtualizedInsufficientPrivileges = 40;
inline constexpr Result kErrorUnknown = 999;

enum ProfilerType : int { kRangeProfiler = 0, kPmSampling = 1 };
enum TriggerMode : int { kTriggerSysclkInterval = 0, kTriggerTimeInterval = 1 };
enum DecodeStopReason : int { kStopOther = 0, kStopCounterDataFull = 1, kStopEndOfRecords = 2 };
enum AppendMode : int { kKeepOldest = 0, kKeepLatest = 1 };

struct HostObject;      // CUpti_Profiler_Host_Object
struct PmSamplingObject;  // CUpti_PmSampling_Object

// The size CUPTI expects: up to and including the last field (the headers'
// CUPTI_PROFILER_STRUCT_SIZE), not sizeof, which may add tail padding.
#define CUAGENT_CUPTI_SIZE(type_, last_) (offsetof(type_, last_) + sizeof(((type_*)nullptr)->last_))

struct ProfilerInitializeParams { std::size_t structSize; void* pPriv; };
struct ProfilerDeInitializeParams { std::size_t structSize; void* pPriv; };
struct DeviceGetChipNameParams {
    std::size_t structSize; void* pPriv;
    std::size_t deviceIndex;
    const char* pChipName;
};
struct HostInitializeParams {
    std::size_t structSize; void* pPriv;
    ProfilerType profilerType;
    const char* pChipName;
    const std::uint8_t* pCounterAvailabilityImage;
    HostObject* pHostObject;
};
struct HostDeinitializeParams { std::size_t structSize; void* pPriv; HostObject* pHostObject; };
struct HostConfigAddMetricsParams {
    std::size_t structSize; void* pPriv;
    HostObject* pHostObject;
    const char** ppMetricNames;
    std::size_t numMetrics;
};
struct HostGetConfigImageSizeParams {
    std::size_t structSize; void* pPriv;
    HostObject* pHostObject;
    std::size_t configImageSize;
};
struct HostGetConfigImageParams {
    std::size_t structSize; void* pPriv;
    HostObject* pHostObject;
    std::size_t configImageSize;
    std::uint8_t* pConfigImage;
};
struct HostGetNumOfPassesParams {
    std::size_t structSize; void* pPriv;
    std::size_t configImageSize;
    std::uint8_t* pConfigImage;
    std::size_t numOfPasses;
};
struct HostEvaluateToGpuValuesParams {
    std::size_t structSize; void* pPriv;
    HostObject* pHostObject;
    const std::uint8_t* pCounterDataImage;
    std::size_t counterDataImageSize;
    std::size_t rangeIndex;
    const char** ppMetricNames;
    std::size_t numMetrics;
    double* pMetricValues;
};
struct PmGetCounterAvailabilityParams {
    std::size_t structSize; void* pPriv;
    std::size_t deviceIndex;
    std::size_t counterAvailabilityImageSize;
    std::uint8_t* pCounterAvailabilityImage;
};
struct PmEnableParams {
    std::size_t structSize; void* pPriv;
    std::size_t deviceIndex;
    PmSamplingObject* pPmSamplingObject;
};
// Disable, Start and Stop take the same fields.
struct PmObjectParams { std::size_t structSize; void* pPriv; PmSamplingObject* pPmSamplingObject; };
struct PmSetConfigParams {
    std::size_t structSize; void* pPriv;
    PmSamplingObject* pPmSamplingObject;
    std::size_t configSize;
    const std::uint8_t* pConfig;
    std::size_t hardwareBufferSize;
    std::uint64_t samplingInterval;
    TriggerMode triggerMode;
    AppendMode hwBufferAppendMode;
};
struct PmGetCounterDataSizeParams {
    std::size_t structSize; void* pPriv;
    PmSamplingObject* pPmSamplingObject;
    const char** pMetricNames;
    std::size_t numMetrics;
    std::uint32_t maxSamples;
    std::size_t counterDataSize;
};
struct PmCounterDataImageInitializeParams {
    std::size_t structSize; void* pPriv;
    PmSamplingObject* pPmSamplingObject;
    std::size_t counterDataSize;
    std::uint8_t* pCounterData;
};
struct PmDecodeDataParams {
    std::size_t structSize; void* pPriv;
    PmSamplingObject* pPmSamplingObject;
    std::uint8_t* pCounterDataImage;
    std::size_t counterDataImageSize;
    DecodeStopReason decodeStopReason;
    std::uint8_t overflow;
};
struct PmGetCounterDataInfoParams {
    std::size_t structSize; void* pPriv;
    const std::uint8_t* pCounterDataImage;
    std::size_t counterDataImageSize;
    std::size_t numTotalSamples;
    std::size_t numPopulatedSamples;
    std::size_t numCompletedSamples;
};
struct PmGetSampleInfoParams {
    std::size_t structSize; void* pPriv;
    PmSamplingObject* pPmSamplingObject;
    const std::uint8_t* pCounterDataImage;
    std::size_t counterDataImageSize;
    std::size_t sampleIndex;
    std::uint64_t startTimestamp;
    std::uint64_t endTimestamp;
};

// A params struct with structSize set and everything else zero (pPriv null).
template <typename P, std::size_t Size>
P params() noexcept {
    P p{};
    p.structSize = Size;
    return p;
}

// The header sizes, by the real headers' macro names (the offline test
// compares them with the wheel's).
struct StructSize { const char* name; std::size_t size; };
inline constexpr StructSize kStructSizes[] = {
    {"CUpti_Profiler_Initialize_Params", CUAGENT_CUPTI_SIZE(ProfilerInitializeParams, pPriv)},
    {"CUpti_Profiler_DeInitialize_Params", CUAGENT_CUPTI_SIZE(ProfilerDeInitializeParams, pPriv)},
    {"CUpti_Device_GetChipName_Params", CUAGENT_CUPTI_SIZE(DeviceGetChipNameParams, pChipName)},
    {"CUpti_Profiler_Host_Initialize_Params", CUAGENT_CUPTI_SIZE(HostInitializeParams, pHostObject)},
    {"CUpti_Profiler_Host_Deinitialize_Params", CUAGENT_CUPTI_SIZE(HostDeinitializeParams, pHostObject)},
    {"CUpti_Profiler_Host_ConfigAddMetrics_Params", CUAGENT_CUPTI_SIZE(HostConfigAddMetricsParams, numMetrics)},
    {"CUpti_Profiler_Host_GetConfigImageSize_Params", CUAGENT_CUPTI_SIZE(HostGetConfigImageSizeParams, configImageSize)},
    {"CUpti_Profiler_Host_GetConfigImage_Params", CUAGENT_CUPTI_SIZE(HostGetConfigImageParams, pConfigImage)},
    {"CUpti_Profiler_Host_GetNumOfPasses_Params", CUAGENT_CUPTI_SIZE(HostGetNumOfPassesParams, numOfPasses)},
    {"CUpti_Profiler_Host_EvaluateToGpuValues_Params", CUAGENT_CUPTI_SIZE(HostEvaluateToGpuValuesParams, pMetricValues)},
    {"CUpti_PmSampling_GetCounterAvailability_Params",
     CUAGENT_CUPTI_SIZE(PmGetCounterAvailabilityParams, pCounterAvailabilityImage)},
    {"CUpti_PmSampling_Enable_Params", CUAGENT_CUPTI_SIZE(PmEnableParams, pPmSamplingObject)},
    {"CUpti_PmSampling_Disable_Params", CUAGENT_CUPTI_SIZE(PmObjectParams, pPmSamplingObject)},
    {"CUpti_PmSampling_Start_Params", CUAGENT_CUPTI_SIZE(PmObjectParams, pPmSamplingObject)},
    {"CUpti_PmSampling_Stop_Params", CUAGENT_CUPTI_SIZE(PmObjectParams, pPmSamplingObject)},
    {"CUpti_PmSampling_SetConfig_Params", CUAGENT_CUPTI_SIZE(PmSetConfigParams, hwBufferAppendMode)},
    {"CUpti_PmSampling_GetCounterDataSize_Params", CUAGENT_CUPTI_SIZE(PmGetCounterDataSizeParams, counterDataSize)},
    {"CUpti_PmSampling_CounterDataImage_Initialize_Params",
     CUAGENT_CUPTI_SIZE(PmCounterDataImageInitializeParams, pCounterData)},
    {"CUpti_PmSampling_DecodeData_Params", CUAGENT_CUPTI_SIZE(PmDecodeDataParams, overflow)},
    {"CUpti_PmSampling_GetCounterDataInfo_Params", CUAGENT_CUPTI_SIZE(PmGetCounterDataInfoParams, numCompletedSamples)},
    {"CUpti_PmSampling_CounterData_GetSampleInfo_Params", CUAGENT_CUPTI_SIZE(PmGetSampleInfoParams, endTimestamp)},
};

// Shorthand: a params struct of type P sized up to its field `last`.
#define CUAGENT_CUPTI_PARAMS(type_, last_) ::cuagent::cupti::params<type_, CUAGENT_CUPTI_SIZE(type_, last_)>()

}  // namespace cuagent::cupti
