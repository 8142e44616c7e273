// The CUPTI PM-sampling source's hand-declared CUPTI slice (drivers/cupti/cupti_api.hpp,
// cupti_library.hpp) against the real CUPTI 12.9 headers of the nvidia-cuda-cupti-cu12
// wheel: every function's signature, every params struct field's offset and size (the
// sizes CUPTI checks, structSize, are compared by tests/test_cupti_real.py), every
// result code and enum value. Compiled (-fsyntax-only) by tests/test_nvidia_abi.py.
#include <cupti_pmsampling.h>
#include <cupti_profiler_host.h>
#include <cupti_profiler_target.h>
#include <cupti_result.h>
#include <cupti_target.h>

#include "abi_match.hpp"
#include "cupti/cupti_library.hpp"

namespace ours = cuagent::cupti;

namespace cuagent::abi {
template <> struct Theirs<ours::HostObject> { using type = CUpti_Profiler_Host_Object; };
template <> struct Theirs<ours::PmSamplingObject> { using type = CUpti_PmSampling_Object; };
template <> struct Theirs<ours::ProfilerInitializeParams> { using type = CUpti_Profiler_Initialize_Params; };
template <> struct Theirs<ours::ProfilerDeInitializeParams> { using type = CUpti_Profiler_DeInitialize_Params; };
template <> struct Theirs<ours::DeviceGetChipNameParams> { using type = CUpti_Device_GetChipName_Params; };
template <> struct Theirs<ours::HostInitializeParams> { using type = CUpti_Profiler_Host_Initialize_Params; };
template <> struct Theirs<ours::HostDeinitializeParams> { using type = CUpti_Profiler_Host_Deinitialize_Params; };
template <> struct Theirs<ours::HostConfigAddMetricsParams> { using type = CUpti_Profiler_Host_ConfigAddMetrics_Params; };
template <> struct Theirs<ours::HostGetConfigImageSizeParams> { using type = CUpti_Profiler_Host_GetConfigImageSize_Params; };
template <> struct Theirs<ours::HostGetConfigImageParams> { using type = CUpti_Profiler_Host_GetConfigImage_Params; };
template <> struct Theirs<ours::HostGetNumOfPassesParams> { using type = CUpti_Profiler_Host_GetNumOfPasses_Params; };
template <> struct Theirs<ours::HostEvaluateToGpuValuesParams> { using type = CUpti_Profiler_Host_EvaluateToGpuValues_Params; };
template <> struct Theirs<ours::PmGetCounterAvailabilityParams> { using type = CUpti_PmSampling_GetCounterAvailability_Params; };
template <> struct Theirs<ours::PmEnableParams> { using type = CUpti_PmSampling_Enable_Params; };
template <> struct Theirs<ours::PmSetConfigParams> { using type = CUpti_PmSampling_SetConfig_Params; };
template <> struct Theirs<ours::PmGetCounterDataSizeParams> { using type = CUpti_PmSampling_GetCounterDataSize_Params; };
template <> struct Theirs<ours::PmCounterDataImageInitializeParams> { using type = CUpti_PmSampling_CounterDataImage_Initialize_Params; };
template <> struct Theirs<ours::PmDecodeDataParams> { using type = CUpti_PmSampling_DecodeData_Params; };
template <> struct Theirs<ours::PmGetCounterDataInfoParams> { using type = CUpti_PmSampling_GetCounterDataInfo_Params; };
template <> struct Theirs<ours::PmGetSampleInfoParams> { using type = CUpti_PmSampling_CounterData_GetSampleInfo_Params; };
// Disable, Start and Stop take params of the same fields (compared below): ours is one struct.
template <class Real>
struct Matches<ours::PmObjectParams, Real>
    : std::bool_constant<std::is_same_v<Real, CUpti_PmSampling_Disable_Params> ||
                         std::is_same_v<Real, CUpti_PmSampling_Start_Params> ||
                         std::is_same_v<Real, CUpti_PmSampling_Stop_Params>> {};
}  // namespace cuagent::abi

// ---- functions (expanded where our names resolve; ::name is the real one) ----
#define CUAGENT_CUPTI_SAME_FUNCTION(member, name, ret, params) CUAGENT_ABI_SAME_FUNCTION(name, ret, params)
namespace cuagent::cupti {
CUAGENT_CUPTI_FUNCTIONS(CUAGENT_CUPTI_SAME_FUNCTION)
}

// ---- params structs: each field where the real header has it ----
CUAGENT_ABI_SAME_FIELD(ours::ProfilerInitializeParams, CUpti_Profiler_Initialize_Params, structSize)
CUAGENT_ABI_SAME_FIELD(ours::ProfilerInitializeParams, CUpti_Profiler_Initialize_Params, pPriv)

CUAGENT_ABI_SAME_FIELD(ours::ProfilerDeInitializeParams, CUpti_Profiler_DeInitialize_Params, structSize)
CUAGENT_ABI_SAME_FIELD(ours::ProfilerDeInitializeParams, CUpti_Profiler_DeInitialize_Params, pPriv)

CUAGENT_ABI_SAME_FIELD(ours::DeviceGetChipNameParams, CUpti_Device_GetChipName_Params, structSize)
CUAGENT_ABI_SAME_FIELD(ours::DeviceGetChipNameParams, CUpti_Device_GetChipName_Params, pPriv)
CUAGENT_ABI_SAME_FIELD(ours::DeviceGetChipNameParams, CUpti_Device_GetChipName_Params, deviceIndex)
CUAGENT_ABI_SAME_FIELD(ours::DeviceGetChipNameParams, CUpti_Device_GetChipName_Params, pChipName)

CUAGENT_ABI_SAME_FIELD(ours::HostInitializeParams, CUpti_Profiler_Host_Initialize_Params, structSize)
CUAGENT_ABI_SAME_FIELD(ours::HostInitializeParams, CUpti_Profiler_Host_Initialize_Params, pPriv)
CUAGENT_ABI_SAME_FIELD(ours::HostInitializeParams, CUpti_Profiler_Host_Initialize_Params, profilerType)
CUAGENT_ABI_SAME_FIELD(ours::HostInitializeParams, CUpti_Profiler_Host_Initialize_Params, pChipName)
CUAGENT_ABI_SAME_FIELD(ours::HostInitializeParams, CUpti_Profiler_Host_Initialize_Params, pCounterAvailabilityImage)
CUAGENT_ABI_SAME_FIELD(ours::HostInitializeParams, CUpti_Profiler_Host_Initialize_Params, pHostObject)

CUAGENT_ABI_SAME_FIELD(ours::HostDeinitializeParams, CUpti_Profiler_Host_Deinitialize_Params, structSize)
CUAGENT_ABI_SAME_FIELD(ours::HostDeinitializeParams, CUpti_Profiler_Host_Deinitialize_Params, pPriv)
CUAGENT_ABI_SAME_FIELD(ours::HostDeinitializeParams, CUpti_Profiler_Host_Deinitialize_Params, pHostObject)

CUAGENT_ABI_SAME_FIELD(ours::HostConfigAddMetricsParams, CUpti_Profiler_Host_ConfigAddMetrics_Params, structSize)
CUAGENT_ABI_SAME_FIELD(ours::HostConfigAddMetricsParams, CUpti_Profiler_Host_ConfigAddMetrics_Params, pPriv)
CUAGENT_ABI_SAME_FIELD(ours::HostConfigAddMetricsParams, CUpti_Profiler_Host_ConfigAddMetrics_Params, pHostObject)
CUAGENT_ABI_SAME_FIELD(ours::HostConfigAddMetricsParams, CUpti_Profiler_Host_ConfigAddMetrics_Params, ppMetricNames)
CUAGENT_ABI_SAME_FIELD(ours::HostConfigAddMetricsParams, CUpti_Profiler_Host_ConfigAddMetrics_Params, numMetrics)

CUAGENT_ABI_SAME_FIELD(ours::HostGetConfigImageSizeParams, CUpti_Profiler_Host_GetConfigImageSize_Params, structSize)
CUAGENT_ABI_SAME_FIELD(ours::HostGetConfigImageSizeParams, CUpti_Profiler_Host_GetConfigImageSize_Params, pPriv)
CUAGENT_ABI_SAME_FIELD(ours::HostGetConfigImageSizeParams, CUpti_Profiler_Host_GetConfigImageSize_Params, pHostObject)
CUAGENT_ABI_SAME_FIELD(ours::HostGetConfigImageSizeParams, CUpti_Profiler_Host_GetConfigImageSize_Params, configImageSize)

CUAGENT_ABI_SAME_FIELD(ours::HostGetConfigImageParams, CUpti_Profiler_Host_GetConfigImage_Params, structSize)
CUAGENT_ABI_SAME_FIELD(ours::HostGetConfigImageParams, CUpti_Profiler_Host_GetConfigImage_Params, pPriv)
CUAGENT_ABI_SAME_FIELD(ours::HostGetConfigImageParams, CUpti_Profiler_Host_GetConfigImage_Params, pHostObject)
CUAGENT_ABI_SAME_FIELD(ours::HostGetConfigImageParams, CUpti_Profiler_Host_GetConfigImage_Params, configImageSize)
CUAGENT_ABI_SAME_FIELD(ours::HostGetConfigImageParams, CUpti_Profiler_Host_GetConfigImage_Params, pConfigImage)

CUAGENT_ABI_SAME_FIELD(ours::HostGetNumOfPassesParams, CUpti_Profiler_Host_GetNumOfPasses_Params, structSize)
CUAGENT_ABI_SAME_FIELD(ours::HostGetNumOfPassesParams, CUpti_Profiler_Host_GetNumOfPasses_Params, pPriv)
CUAGENT_ABI_SAME_FIELD(ours::HostGetNumOfPassesParams, CUpti_Profiler_Host_GetNumOfPasses_Params, configImageSize)
CUAGENT_ABI_SAME_FIELD(ours::HostGetNumOfPassesParams, CUpti_Profiler_Host_GetNumOfPasses_Params, pConfigImage)
CUAGENT_ABI_SAME_FIELD(ours::HostGetNumOfPassesParams, CUpti_Profiler_Host_GetNumOfPasses_Params, numOfPasses)

CUAGENT_ABI_SAME_FIELD(ours::HostEvaluateToGpuValuesParams, CUpti_Profiler_Host_EvaluateToGpuValues_Params, structSize)
CUAGENT_ABI_SAME_FIELD(ours::HostEvaluateToGpuValuesParams, CUpti_Profiler_Host_EvaluateToGpuValues_Params, pPriv)
CUAGENT_ABI_SAME_FIELD(ours::HostEvaluateToGpuValuesParams, CUpti_Profiler_Host_EvaluateToGpuValues_Params, pHostObject)
CUAGENT_ABI_SAME_FIELD(ours::HostEvaluateToGpuValuesParams, CUpti_Profiler_Host_EvaluateToGpuValues_Params, pCounterDataImage)
CUAGENT_ABI_SAME_FIELD(ours::HostEvaluateToGpuValuesParams, CUpti_Profiler_Host_EvaluateToGpuValues_Params, counterDataImageSize)
CUAGENT_ABI_SAME_FIELD(ours::HostEvaluateToGpuValuesParams, CUpti_Profiler_Host_EvaluateToGpuValues_Params, rangeIndex)
CUAGENT_ABI_SAME_FIELD(ours::HostEvaluateToGpuValuesParams, CUpti_Profiler_Host_EvaluateToGpuValues_Params, ppMetricNames)
CUAGENT_ABI_SAME_FIELD(ours::HostEvaluateToGpuValuesParams, CUpti_Profiler_Host_EvaluateToGpuValues_Params, numMetrics)
CUAGENT_ABI_SAME_FIELD(ours::HostEvaluateToGpuValuesParams, CUpti_Profiler_Host_EvaluateToGpuValues_Params, pMetricValues)

CUAGENT_ABI_SAME_FIELD(ours::PmGetCounterAvailabilityParams, CUpti_PmSampling_GetCounterAvailability_Params, structSize)
CUAGENT_ABI_SAME_FIELD(ours::PmGetCounterAvailabilityParams, CUpti_PmSampling_GetCounterAvailability_Params, pPriv)
CUAGENT_ABI_SAME_FIELD(ours::PmGetCounterAvailabilityParams, CUpti_PmSampling_GetCounterAvailability_Params, deviceIndex)
CUAGENT_ABI_SAME_FIELD(ours::PmGetCounterAvailabilityParams, CUpti_PmSampling_GetCounterAvailability_Params, counterAvailabilityImageSize)
CUAGENT_ABI_SAME_FIELD(ours::PmGetCounterAvailabilityParams, CUpti_PmSampling_GetCounterAvailability_Params, pCounterAvailabilityImage)

CUAGENT_ABI_SAME_FIELD(ours::PmEnableParams, CUpti_PmSampling_Enable_Params, structSize)
CUAGENT_ABI_SAME_FIELD(ours::PmEnableParams, CUpti_PmSampling_Enable_Params, pPriv)
CUAGENT_ABI_SAME_FIELD(ours::PmEnableParams, CUpti_PmSampling_Enable_Params, deviceIndex)
CUAGENT_ABI_SAME_FIELD(ours::PmEnableParams, CUpti_PmSampling_Enable_Params, pPmSamplingObject)

CUAGENT_ABI_SAME_FIELD(ours::PmObjectParams, CUpti_PmSampling_Disable_Params, structSize)
CUAGENT_ABI_SAME_FIELD(ours::PmObjectParams, CUpti_PmSampling_Disable_Params, pPriv)
CUAGENT_ABI_SAME_FIELD(ours::PmObjectParams, CUpti_PmSampling_Disable_Params, pPmSamplingObject)

CUAGENT_ABI_SAME_FIELD(ours::PmObjectParams, CUpti_PmSampling_Start_Params, structSize)
CUAGENT_ABI_SAME_FIELD(ours::PmObjectParams, CUpti_PmSampling_Start_Params, pPriv)
CUAGENT_ABI_SAME_FIELD(ours::PmObjectParams, CUpti_PmSampling_Start_Params, pPmSamplingObject)

CUAGENT_ABI_SAME_FIELD(ours::PmObjectParams, CUpti_PmSampling_Stop_Params, structSize)
CUAGENT_ABI_SAME_FIELD(ours::PmObjectParams, CUpti_PmSampling_Stop_Params, pPriv)
CUAGENT_ABI_SAME_FIELD(ours::PmObjectParams, CUpti_PmSampling_Stop_Params, pPmSamplingObject)

CUAGENT_ABI_SAME_FIELD(ours::PmSetConfigParams, CUpti_PmSampling_SetConfig_Params, structSize)
CUAGENT_ABI_SAME_FIELD(ours::PmSetConfigParams, CUpti_PmSampling_SetConfig_Params, pPriv)
CUAGENT_ABI_SAME_FIELD(ours::PmSetConfigParams, CUpti_PmSampling_SetConfig_Params, pPmSamplingObject)
CUAGENT_ABI_SAME_FIELD(ours::PmSetConfigParams, CUpti_PmSampling_SetConfig_Params, configSize)
CUAGENT_ABI_SAME_FIELD(ours::PmSetConfigParams, CUpti_PmSampling_SetConfig_Params, pConfig)
CUAGENT_ABI_SAME_FIELD(ours::PmSetConfigParams, CUpti_PmSampling_SetConfig_Params, hardwareBufferSize)
CUAGENT_ABI_SAME_FIELD(ours::PmSetConfigParams, CUpti_PmSampling_SetConfig_Params, samplingInterval)
CUAGENT_ABI_SAME_FIELD(ours::PmSetConfigParams, CUpti_PmSampling_SetConfig_Params, triggerMode)
CUAGENT_ABI_SAME_FIELD(ours::PmSetConfigParams, CUpti_PmSampling_SetConfig_Params, hwBufferAppendMode)

CUAGENT_ABI_SAME_FIELD(ours::PmGetCounterDataSizeParams, CUpti_PmSampling_GetCounterDataSize_Params, structSize)
CUAGENT_ABI_SAME_FIELD(ours::PmGetCounterDataSizeParams, CUpti_PmSampling_GetCounterDataSize_Params, pPriv)
CUAGENT_ABI_SAME_FIELD(ours::PmGetCounterDataSizeParams, CUpti_PmSampling_GetCounterDataSize_Params, pPmSamplingObject)
CUAGENT_ABI_SAME_FIELD(ours::PmGetCounterDataSizeParams, CUpti_PmSampling_GetCounterDataSize_Params, pMetricNames)
CUAGENT_ABI_SAME_FIELD(ours::PmGetCounterDataSizeParams, CUpti_PmSampling_GetCounterDataSize_Params, numMetrics)
CUAGENT_ABI_SAME_FIELD(ours::PmGetCounterDataSizeParams, CUpti_PmSampling_GetCounterDataSize_Params, maxSamples)
CUAGENT_ABI_SAME_FIELD(ours::PmGetCounterDataSizeParams, CUpti_PmSampling_GetCounterDataSize_Params, counterDataSize)

CUAGENT_ABI_SAME_FIELD(ours::PmCounterDataImageInitializeParams, CUpti_PmSampling_CounterDataImage_Initialize_Params, structSize)
CUAGENT_ABI_SAME_FIELD(ours::PmCounterDataImageInitializeParams, CUpti_PmSampling_CounterDataImage_Initialize_Params, pPriv)
CUAGENT_ABI_SAME_FIELD(ours::PmCounterDataImageInitializeParams, CUpti_PmSampling_CounterDataImage_Initialize_Params, pPmSamplingObject)
CUAGENT_ABI_SAME_FIELD(ours::PmCounterDataImageInitializeParams, CUpti_PmSampling_CounterDataImage_Initialize_Params, counterDataSize)
CUAGENT_ABI_SAME_FIELD(ours::PmCounterDataImageInitializeParams, CUpti_PmSampling_CounterDataImage_Initialize_Params, pCounterData)

CUAGENT_ABI_SAME_FIELD(ours::PmDecodeDataParams, CUpti_PmSampling_DecodeData_Params, structSize)
CUAGENT_ABI_SAME_FIELD(ours::PmDecodeDataParams, CUpti_PmSampling_DecodeData_Params, pPriv)
CUAGENT_ABI_SAME_FIELD(ours::PmDecodeDataParams, CUpti_PmSampling_DecodeData_Params, pPmSamplingObject)
CUAGENT_ABI_SAME_FIELD(ours::PmDecodeDataParams, CUpti_PmSampling_DecodeData_Params, pCounterDataImage)
CUAGENT_ABI_SAME_FIELD(ours::PmDecodeDataParams, CUpti_PmSampling_DecodeData_Params, counterDataImageSize)
CUAGENT_ABI_SAME_FIELD(ours::PmDecodeDataParams, CUpti_PmSampling_DecodeData_Params, decodeStopReason)
CUAGENT_ABI_SAME_FIELD(ours::PmDecodeDataParams, CUpti_PmSampling_DecodeData_Params, overflow)

CUAGENT_ABI_SAME_FIELD(ours::PmGetCounterDataInfoParams, CUpti_PmSampling_GetCounterDataInfo_Params, structSize)
CUAGENT_ABI_SAME_FIELD(ours::PmGetCounterDataInfoParams, CUpti_PmSampling_GetCounterDataInfo_Params, pPriv)
CUAGENT_ABI_SAME_FIELD(ours::PmGetCounterDataInfoParams, CUpti_PmSampling_GetCounterDataInfo_Params, pCounterDataImage)
CUAGENT_ABI_SAME_FIELD(ours::PmGetCounterDataInfoParams, CUpti_PmSampling_GetCounterDataInfo_Params, counterDataImageSize)
CUAGENT_ABI_SAME_FIELD(ours::PmGetCounterDataInfoParams, CUpti_PmSampling_GetCounterDataInfo_Params, numTotalSamples)
CUAGENT_ABI_SAME_FIELD(ours::PmGetCounterDataInfoParams, CUpti_PmSampling_GetCounterDataInfo_Params, numPopulatedSamples)
CUAGENT_ABI_SAME_FIELD(ours::PmGetCounterDataInfoParams, CUpti_PmSampling_GetCounterDataInfo_Params, numCompletedSamples)

CUAGENT_ABI_SAME_FIELD(ours::PmGetSampleInfoParams, CUpti_PmSampling_CounterData_GetSampleInfo_Params, structSize)
CUAGENT_ABI_SAME_FIELD(ours::PmGetSampleInfoParams, CUpti_PmSampling_CounterData_GetSampleInfo_Params, pPriv)
CUAGENT_ABI_SAME_FIELD(ours::PmGetSampleInfoParams, CUpti_PmSampling_CounterData_GetSampleInfo_Params, pPmSamplingObject)
CUAGENT_ABI_SAME_FIELD(ours::PmGetSampleInfoParams, CUpti_PmSampling_CounterData_GetSampleInfo_Params, pCounterDataImage)
CUAGENT_ABI_SAME_FIELD(ours::PmGetSampleInfoParams, CUpti_PmSampling_CounterData_GetSampleInfo_Params, counterDataImageSize)
CUAGENT_ABI_SAME_FIELD(ours::PmGetSampleInfoParams, CUpti_PmSampling_CounterData_GetSampleInfo_Params, sampleIndex)
CUAGENT_ABI_SAME_FIELD(ours::PmGetSampleInfoParams, CUpti_PmSampling_CounterData_GetSampleInfo_Params, startTimestamp)
CUAGENT_ABI_SAME_FIELD(ours::PmGetSampleInfoParams, CUpti_PmSampling_CounterData_GetSampleInfo_Params, endTimestamp)

// ---- values ----
CUAGENT_ABI_SAME_VALUE(ours::kSuccess, CUPTI_SUCCESS)
CUAGENT_ABI_SAME_VALUE(ours::kErrorInvalidDevice, CUPTI_ERROR_INVALID_DEVICE)
CUAGENT_ABI_SAME_VALUE(ours::kErrorInvalidOperation, CUPTI_ERROR_INVALID_OPERATION)
CUAGENT_ABI_SAME_VALUE(ours::kErrorOutOfMemory, CUPTI_ERROR_OUT_OF_MEMORY)
CUAGENT_ABI_SAME_VALUE(ours::kErrorNotInitialized, CUPTI_ERROR_NOT_INITIALIZED)
CUAGENT_ABI_SAME_VALUE(ours::kErrorHardwareBusy, CUPTI_ERROR_HARDWARE_BUSY)
CUAGENT_ABI_SAME_VALUE(ours::kErrorNotSupported, CUPTI_ERROR_NOT_SUPPORTED)
CUAGENT_ABI_SAME_VALUE(ours::kErrorInsufficientPrivileges, CUPTI_ERROR_INSUFFICIENT_PRIVILEGES)
CUAGENT_ABI_SAME_VALUE(ours::kErrorVirtualizedInsufficientPrivileges,
                       CUPTI_ERROR_VIRTUALIZED_DEVICE_INSUFFICIENT_PRIVILEGES)
CUAGENT_ABI_SAME_VALUE(ours::kErrorUnknown, CUPTI_ERROR_UNKNOWN)
CUAGENT_ABI_SAME_VALUE(static_cast<int>(ours::kRangeProfiler), CUPTI_PROFILER_TYPE_RANGE_PROFILER)
CUAGENT_ABI_SAME_VALUE(static_cast<int>(ours::kPmSampling), CUPTI_PROFILER_TYPE_PM_SAMPLING)
CUAGENT_ABI_SAME_VALUE(static_cast<int>(ours::kTriggerSysclkInterval), CUPTI_PM_SAMPLING_TRIGGER_MODE_GPU_SYSCLK_INTERVAL)
CUAGENT_ABI_SAME_VALUE(static_cast<int>(ours::kTriggerTimeInterval), CUPTI_PM_SAMPLING_TRIGGER_MODE_GPU_TIME_INTERVAL)
CUAGENT_ABI_SAME_VALUE(static_cast<int>(ours::kStopOther), CUPTI_PM_SAMPLING_DECODE_STOP_REASON_OTHER)
CUAGENT_ABI_SAME_VALUE(static_cast<int>(ours::kStopCounterDataFull), CUPTI_PM_SAMPLING_DECODE_STOP_REASON_COUNTER_DATA_FULL)
CUAGENT_ABI_SAME_VALUE(static_cast<int>(ours::kStopEndOfRecords), CUPTI_PM_SAMPLING_DECODE_STOP_REASON_END_OF_RECORDS)
CUAGENT_ABI_SAME_VALUE(static_cast<int>(ours::kKeepOldest), CUPTI_PM_SAMPLING_HARDWARE_BUFFER_APPEND_MODE_KEEP_OLDEST)
CUAGENT_ABI_SAME_VALUE(static_cast<int>(ours::kKeepLatest), CUPTI_PM_SAMPLING_HARDWARE_BUFFER_APPEND_MODE_KEEP_LATEST)
static_assert(sizeof(ours::ProfilerType) == sizeof(CUpti_ProfilerType) &&
                  sizeof(ours::TriggerMode) == sizeof(CUpti_PmSampling_TriggerMode) &&
                  sizeof(ours::DecodeStopReason) == sizeof(CUpti_PmSampling_DecodeStopReason) &&
                  sizeof(ours::AppendMode) == sizeof(CUpti_PmSampling_HardwareBuffer_AppendMode),
              "a CUPTI enum of another size than the real one");
