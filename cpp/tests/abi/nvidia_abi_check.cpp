// The nvml driver's NVML slice (drivers/nvml/nvml_api.hpp, nvml_library.hpp)
// and the SM-layout probe's CUDA driver API slice (drivers/nvml/cuda_api.hpp)
// against NVIDIA's real nvml.h and cuda.h: every function's signature, every
// struct's layout, every constant's value. Compiled (-fsyntax-only) by
// tests/test_nvidia_abi.py with the headers of the nvidia-nvml-dev-cu12 and
// nvidia-cuda-runtime-cu12 wheels; nothing here needs a GPU or a driver.
#define NVML_NO_UNVERSIONED_FUNC_DEFS  // declare the _v2/_v3 names themselves
#include <cuda.h>
#include <nvml.h>

#include "abi_match.hpp"
#include "nvml/cuda_api.hpp"
#include "nvml/nvml_library.hpp"

namespace ours = cuagent::nvml;
namespace ours_cuda = cuagent::cuda;

namespace cuagent::abi {
template <> struct Theirs<ours::DeviceOpaque> { using type = nvmlDevice_st; };
template <> struct Theirs<ours::GpmSampleOpaque> { using type = nvmlGpmSample_st; };
template <> struct Theirs<ours::Memory> { using type = nvmlMemory_t; };
template <> struct Theirs<ours::MemoryV2> { using type = nvmlMemory_v2_t; };
template <> struct Theirs<ours::Utilization> { using type = nvmlUtilization_t; };
template <> struct Theirs<ours::PciInfo> { using type = nvmlPciInfo_t; };
template <> struct Theirs<ours::DeviceAttributes> { using type = nvmlDeviceAttributes_t; };
template <> struct Theirs<ours::GpmSupport> { using type = nvmlGpmSupport_t; };
template <> struct Theirs<ours::GpmMetricsGet> { using type = nvmlGpmMetricsGet_t; };
template <> struct Theirs<ours_cuda::CUctx_st> { using type = ::CUctx_st; };
template <> struct Theirs<ours_cuda::CUmod_st> { using type = ::CUmod_st; };
template <> struct Theirs<ours_cuda::CUfunc_st> { using type = ::CUfunc_st; };
template <> struct Theirs<ours_cuda::CUlaunchConfig> { using type = ::CUlaunchConfig; };
}  // namespace cuagent::abi

// ---- NVML: functions (expanded where our names resolve; ::name is the real one) ----
namespace cuagent::nvml {
CUAGENT_NVML_FUNCTIONS(CUAGENT_ABI_SAME_FUNCTION)
}

// ---- NVML: structs ----
CUAGENT_ABI_SAME_SIZE(ours::Memory, nvmlMemory_t)
CUAGENT_ABI_SAME_FIELD(ours::Memory, nvmlMemory_t, total)
CUAGENT_ABI_SAME_FIELD(ours::Memory, nvmlMemory_t, free)
CUAGENT_ABI_SAME_FIELD(ours::Memory, nvmlMemory_t, used)

CUAGENT_ABI_SAME_SIZE(ours::MemoryV2, nvmlMemory_v2_t)
CUAGENT_ABI_SAME_FIELD(ours::MemoryV2, nvmlMemory_v2_t, version)
CUAGENT_ABI_SAME_FIELD(ours::MemoryV2, nvmlMemory_v2_t, total)
CUAGENT_ABI_SAME_FIELD(ours::MemoryV2, nvmlMemory_v2_t, reserved)
CUAGENT_ABI_SAME_FIELD(ours::MemoryV2, nvmlMemory_v2_t, free)
CUAGENT_ABI_SAME_FIELD(ours::MemoryV2, nvmlMemory_v2_t, used)

CUAGENT_ABI_SAME_SIZE(ours::Utilization, nvmlUtilization_t)
CUAGENT_ABI_SAME_FIELD(ours::Utilization, nvmlUtilization_t, gpu)
CUAGENT_ABI_SAME_FIELD(ours::Utilization, nvmlUtilization_t, memory)

CUAGENT_ABI_SAME_SIZE(ours::PciInfo, nvmlPciInfo_t)
CUAGENT_ABI_SAME_FIELD(ours::PciInfo, nvmlPciInfo_t, busIdLegacy)
CUAGENT_ABI_SAME_FIELD(ours::PciInfo, nvmlPciInfo_t, domain)
CUAGENT_ABI_SAME_FIELD(ours::PciInfo, nvmlPciInfo_t, bus)
CUAGENT_ABI_SAME_FIELD(ours::PciInfo, nvmlPciInfo_t, device)
CUAGENT_ABI_SAME_FIELD(ours::PciInfo, nvmlPciInfo_t, pciDeviceId)
CUAGENT_ABI_SAME_FIELD(ours::PciInfo, nvmlPciInfo_t, pciSubSystemId)
CUAGENT_ABI_SAME_FIELD(ours::PciInfo, nvmlPciInfo_t, busId)

CUAGENT_ABI_SAME_SIZE(ours::DeviceAttributes, nvmlDeviceAttributes_t)
CUAGENT_ABI_SAME_FIELD(ours::DeviceAttributes, nvmlDeviceAttributes_t, multiprocessorCount)
CUAGENT_ABI_SAME_FIELD(ours::DeviceAttributes, nvmlDeviceAttributes_t, sharedCopyEngineCount)
CUAGENT_ABI_SAME_FIELD(ours::DeviceAttributes, nvmlDeviceAttributes_t, sharedDecoderCount)
CUAGENT_ABI_SAME_FIELD(ours::DeviceAttributes, nvmlDeviceAttributes_t, sharedEncoderCount)
CUAGENT_ABI_SAME_FIELD(ours::DeviceAttributes, nvmlDeviceAttributes_t, sharedJpegCount)
CUAGENT_ABI_SAME_FIELD(ours::DeviceAttributes, nvmlDeviceAttributes_t, sharedOfaCount)
CUAGENT_ABI_SAME_FIELD(ours::DeviceAttributes, nvmlDeviceAttributes_t, gpuInstanceSliceCount)
CUAGENT_ABI_SAME_FIELD(ours::DeviceAttributes, nvmlDeviceAttributes_t, computeInstanceSliceCount)
CUAGENT_ABI_SAME_FIELD(ours::DeviceAttributes, nvmlDeviceAttributes_t, memorySizeMB)

CUAGENT_ABI_SAME_SIZE(ours::GpmMetric, nvmlGpmMetric_t)
CUAGENT_ABI_SAME_FIELD(ours::GpmMetric, nvmlGpmMetric_t, metricId)
CUAGENT_ABI_SAME_FIELD(ours::GpmMetric, nvmlGpmMetric_t, nvmlReturn)
CUAGENT_ABI_SAME_FIELD(ours::GpmMetric, nvmlGpmMetric_t, value)
CUAGENT_ABI_SAME_FIELD(ours::GpmMetric, nvmlGpmMetric_t, metricInfo)
static_assert(offsetof(ours::GpmMetric, metricInfo.unit) == offsetof(nvmlGpmMetric_t, metricInfo.unit),
              "GpmMetric.metricInfo: names at other offsets than in nvmlGpmMetric_t");

// Our metrics[] is deliberately longer than the header's (see nvml_api.hpp):
// everything before it and each entry must match, and it must hold at least
// as many entries as this header's library may touch.
CUAGENT_ABI_SAME_FIELD(ours::GpmMetricsGet, nvmlGpmMetricsGet_t, version)
CUAGENT_ABI_SAME_FIELD(ours::GpmMetricsGet, nvmlGpmMetricsGet_t, numMetrics)
CUAGENT_ABI_SAME_FIELD(ours::GpmMetricsGet, nvmlGpmMetricsGet_t, sample1)
CUAGENT_ABI_SAME_FIELD(ours::GpmMetricsGet, nvmlGpmMetricsGet_t, sample2)
static_assert(offsetof(ours::GpmMetricsGet, metrics) == offsetof(nvmlGpmMetricsGet_t, metrics),
              "GpmMetricsGet.metrics: at another offset than in nvmlGpmMetricsGet_t");
static_assert(ours::kGpmMetricCapacity >= NVML_GPM_METRIC_MAX,
              "GpmMetricsGet.metrics: fewer entries than this header's NVML_GPM_METRIC_MAX");

CUAGENT_ABI_SAME_SIZE(ours::GpmSupport, nvmlGpmSupport_t)
CUAGENT_ABI_SAME_FIELD(ours::GpmSupport, nvmlGpmSupport_t, version)
CUAGENT_ABI_SAME_FIELD(ours::GpmSupport, nvmlGpmSupport_t, isSupportedDevice)

// ---- NVML: values ----
CUAGENT_ABI_SAME_VALUE(ours::kSuccess, NVML_SUCCESS)
CUAGENT_ABI_SAME_VALUE(ours::kErrorUninitialized, NVML_ERROR_UNINITIALIZED)
CUAGENT_ABI_SAME_VALUE(ours::kErrorInvalidArgument, NVML_ERROR_INVALID_ARGUMENT)
CUAGENT_ABI_SAME_VALUE(ours::kErrorNotSupported, NVML_ERROR_NOT_SUPPORTED)
CUAGENT_ABI_SAME_VALUE(ours::kErrorNoPermission, NVML_ERROR_NO_PERMISSION)
CUAGENT_ABI_SAME_VALUE(ours::kErrorNotFound, NVML_ERROR_NOT_FOUND)
CUAGENT_ABI_SAME_VALUE(ours::kErrorInsufficientSize, NVML_ERROR_INSUFFICIENT_SIZE)
CUAGENT_ABI_SAME_VALUE(ours::kErrorDriverNotLoaded, NVML_ERROR_DRIVER_NOT_LOADED)
CUAGENT_ABI_SAME_VALUE(ours::kErrorFunctionNotFound, NVML_ERROR_FUNCTION_NOT_FOUND)
CUAGENT_ABI_SAME_VALUE(ours::kErrorGpuIsLost, NVML_ERROR_GPU_IS_LOST)
CUAGENT_ABI_SAME_VALUE(ours::kErrorResetRequired, NVML_ERROR_RESET_REQUIRED)
CUAGENT_ABI_SAME_VALUE(ours::kErrorNoData, NVML_ERROR_NO_DATA)
CUAGENT_ABI_SAME_VALUE(ours::kErrorGpuNotFound, NVML_ERROR_GPU_NOT_FOUND)
CUAGENT_ABI_SAME_VALUE(ours::kErrorUnknown, NVML_ERROR_UNKNOWN)
CUAGENT_ABI_SAME_VALUE(ours::kTemperatureGpu, NVML_TEMPERATURE_GPU)
CUAGENT_ABI_SAME_VALUE(ours::kClockSm, NVML_CLOCK_SM)
CUAGENT_ABI_SAME_VALUE(ours::kClockMem, NVML_CLOCK_MEM)
CUAGENT_ABI_SAME_VALUE(ours::kMemoryErrorUncorrected, NVML_MEMORY_ERROR_TYPE_UNCORRECTED)
CUAGENT_ABI_SAME_VALUE(ours::kVolatileEcc, NVML_VOLATILE_ECC)
CUAGENT_ABI_SAME_VALUE(ours::kDeviceMigEnable, NVML_DEVICE_MIG_ENABLE)
CUAGENT_ABI_SAME_VALUE(ours::kTopologyInternal, NVML_TOPOLOGY_INTERNAL)
CUAGENT_ABI_SAME_VALUE(ours::kTopologySingle, NVML_TOPOLOGY_SINGLE)
CUAGENT_ABI_SAME_VALUE(ours::kTopologyMultiple, NVML_TOPOLOGY_MULTIPLE)
CUAGENT_ABI_SAME_VALUE(ours::kTopologyHostbridge, NVML_TOPOLOGY_HOSTBRIDGE)
CUAGENT_ABI_SAME_VALUE(ours::kTopologyNode, NVML_TOPOLOGY_NODE)
CUAGENT_ABI_SAME_VALUE(ours::kTopologySystem, NVML_TOPOLOGY_SYSTEM)
CUAGENT_ABI_SAME_VALUE(ours::kDeviceNameBufferSize, NVML_DEVICE_NAME_V2_BUFFER_SIZE)
CUAGENT_ABI_SAME_VALUE(ours::kDeviceUuidBufferSize, NVML_DEVICE_UUID_V2_BUFFER_SIZE)
CUAGENT_ABI_SAME_VALUE(ours::kMemoryV2Version, nvmlMemory_v2)
CUAGENT_ABI_SAME_VALUE(ours::kGpmGraphicsUtil, NVML_GPM_METRIC_GRAPHICS_UTIL)
CUAGENT_ABI_SAME_VALUE(ours::kGpmSmUtil, NVML_GPM_METRIC_SM_UTIL)
CUAGENT_ABI_SAME_VALUE(ours::kGpmSmOccupancy, NVML_GPM_METRIC_SM_OCCUPANCY)
CUAGENT_ABI_SAME_VALUE(ours::kGpmAnyTensorUtil, NVML_GPM_METRIC_ANY_TENSOR_UTIL)
CUAGENT_ABI_SAME_VALUE(ours::kGpmDramBwUtil, NVML_GPM_METRIC_DRAM_BW_UTIL)
CUAGENT_ABI_SAME_VALUE(ours::kGpmPcieTxPerSec, NVML_GPM_METRIC_PCIE_TX_PER_SEC)
CUAGENT_ABI_SAME_VALUE(ours::kGpmPcieRxPerSec, NVML_GPM_METRIC_PCIE_RX_PER_SEC)
CUAGENT_ABI_SAME_VALUE(ours::kGpmNvlinkTotalRxPerSec, NVML_GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC)
CUAGENT_ABI_SAME_VALUE(ours::kGpmNvlinkTotalTxPerSec, NVML_GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC)
CUAGENT_ABI_SAME_VALUE(ours::kGpmMetricsGetVersion, NVML_GPM_METRICS_GET_VERSION)
CUAGENT_ABI_SAME_VALUE(ours::kGpmSupportVersion, NVML_GPM_SUPPORT_VERSION)

// ---- CUDA driver API (the SM-layout probe) ----
namespace cuagent::cuda {
CUAGENT_CUDA_REQUIRED_FUNCTIONS(CUAGENT_ABI_SAME_FUNCTION)
CUAGENT_CUDA_OPTIONAL_FUNCTIONS(CUAGENT_ABI_SAME_FUNCTION)
}

static_assert(std::is_same_v<ours_cuda::CUdevice, ::CUdevice>, "CUdevice differs from cuda.h");
static_assert(std::is_same_v<ours_cuda::CUdeviceptr, ::CUdeviceptr>, "CUdeviceptr differs from cuda.h");

CUAGENT_ABI_SAME_SIZE(ours_cuda::CUlaunchAttributeValue, ::CUlaunchAttributeValue)
CUAGENT_ABI_SAME_FIELD(ours_cuda::CUlaunchAttributeValue, ::CUlaunchAttributeValue, clusterDim)
static_assert(offsetof(ours_cuda::CUlaunchAttributeValue, clusterDim.z) ==
                  offsetof(::CUlaunchAttributeValue, clusterDim.z),
              "CUlaunchAttributeValue.clusterDim: x, y, z at other offsets than in cuda.h");
CUAGENT_ABI_SAME_SIZE(ours_cuda::CUlaunchAttribute, ::CUlaunchAttribute)
CUAGENT_ABI_SAME_FIELD(ours_cuda::CUlaunchAttribute, ::CUlaunchAttribute, id)
CUAGENT_ABI_SAME_FIELD(ours_cuda::CUlaunchAttribute, ::CUlaunchAttribute, value)
CUAGENT_ABI_SAME_SIZE(ours_cuda::CUlaunchConfig, ::CUlaunchConfig)
CUAGENT_ABI_SAME_FIELD(ours_cuda::CUlaunchConfig, ::CUlaunchConfig, gridDimX)
CUAGENT_ABI_SAME_FIELD(ours_cuda::CUlaunchConfig, ::CUlaunchConfig, gridDimY)
CUAGENT_ABI_SAME_FIELD(ours_cuda::CUlaunchConfig, ::CUlaunchConfig, gridDimZ)
CUAGENT_ABI_SAME_FIELD(ours_cuda::CUlaunchConfig, ::CUlaunchConfig, blockDimX)
CUAGENT_ABI_SAME_FIELD(ours_cuda::CUlaunchConfig, ::CUlaunchConfig, blockDimY)
CUAGENT_ABI_SAME_FIELD(ours_cuda::CUlaunchConfig, ::CUlaunchConfig, blockDimZ)
CUAGENT_ABI_SAME_FIELD(ours_cuda::CUlaunchConfig, ::CUlaunchConfig, sharedMemBytes)
CUAGENT_ABI_SAME_FIELD(ours_cuda::CUlaunchConfig, ::CUlaunchConfig, hStream)
CUAGENT_ABI_SAME_FIELD(ours_cuda::CUlaunchConfig, ::CUlaunchConfig, attrs)
CUAGENT_ABI_SAME_FIELD(ours_cuda::CUlaunchConfig, ::CUlaunchConfig, numAttrs)

CUAGENT_ABI_SAME_VALUE(ours_cuda::CUDA_SUCCESS, ::CUDA_SUCCESS)
CUAGENT_ABI_SAME_VALUE(ours_cuda::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, ::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
CUAGENT_ABI_SAME_VALUE(ours_cuda::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                       ::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
CUAGENT_ABI_SAME_VALUE(ours_cuda::CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED,
                       ::CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED)
CUAGENT_ABI_SAME_VALUE(ours_cuda::CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION, ::CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION)
