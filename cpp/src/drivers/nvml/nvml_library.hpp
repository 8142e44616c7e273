// libnvidia-ml loaded at run time (common/dynamic_library.hpp), every symbol
// looked up on its own: an older driver that lacks a function (GPM before
// Hopper drivers, the 2023 rename of ThrottleReasons to ClocksEventReasons)
// leaves that pointer null, and the driver drops the counters it serves
// instead of failing.
#pragma once

#include <string>

#include "common/dynamic_library.hpp"
#include "nvml_api.hpp"

namespace cuagent::nvml {

// X(name, return, parameters): every function the nvml driver may call.
#define CUAGENT_NVML_FUNCTIONS(X)                                                         \
    X(nvmlInit_v2, Return, (void))                                                        \
    X(nvmlShutdown, Return, (void))                                                       \
    X(nvmlErrorString, const char*, (Return))                                             \
    X(nvmlDeviceGetCount_v2, Return, (unsigned int*))                                     \
    X(nvmlDeviceGetHandleByIndex_v2, Return, (unsigned int, Device*))                     \
    X(nvmlDeviceGetName, Return, (Device, char*, unsigned int))                           \
    X(nvmlDeviceGetNumGpuCores, Return, (Device, unsigned int*))                          \
    X(nvmlDeviceGetCudaComputeCapability, Return, (Device, int*, int*))                   \
    X(nvmlDeviceGetUUID, Return, (Device, char*, unsigned int))                           \
    X(nvmlDeviceGetPciInfo_v3, Return, (Device, PciInfo*))                                \
    X(nvmlDeviceGetNumaNodeId, Return, (Device, unsigned int*))                           \
    X(nvmlDeviceGetMemoryInfo, Return, (Device, Memory*))                                 \
    X(nvmlDeviceGetMemoryInfo_v2, Return, (Device, MemoryV2*))                            \
    X(nvmlDeviceGetUtilizationRates, Return, (Device, Utilization*))                      \
    X(nvmlDeviceGetPowerUsage, Return, (Device, unsigned int*))                           \
    X(nvmlDeviceGetTemperature, Return, (Device, int, unsigned int*))                     \
    X(nvmlDeviceGetClockInfo, Return, (Device, int, unsigned int*))                       \
    X(nvmlDeviceGetCurrentClocksEventReasons, Return, (Device, unsigned long long*))      \
    X(nvmlDeviceGetCurrentClocksThrottleReasons, Return, (Device, unsigned long long*))   \
    X(nvmlDeviceGetTotalEccErrors, Return, (Device, int, int, unsigned long long*))       \
    X(nvmlDeviceGetMigMode, Return, (Device, unsigned int*, unsigned int*))               \
    X(nvmlDeviceGetMaxMigDeviceCount, Return, (Device, unsigned int*))                    \
    X(nvmlDeviceGetMigDeviceHandleByIndex, Return, (Device, unsigned int, Device*))       \
    X(nvmlDeviceGetGpuInstanceId, Return, (Device, unsigned int*))                        \
    X(nvmlDeviceGetAttributes_v2, Return, (Device, DeviceAttributes*))                    \
    X(nvmlDeviceGetTopologyCommonAncestor, Return, (Device, Device, int*))                \
    X(nvmlDeviceGetNvLinkState, Return, (Device, unsigned int, int*))                     \
    X(nvmlDeviceGetNvLinkRemotePciInfo_v2, Return, (Device, unsigned int, PciInfo*))      \
    X(nvmlGpmQueryDeviceSupport, Return, (Device, GpmSupport*))                           \
    X(nvmlGpmSampleAlloc, Return, (GpmSample*))                                           \
    X(nvmlGpmSampleFree, Return, (GpmSample))                                             \
    X(nvmlGpmSampleGet, Return, (Device, GpmSample))                                      \
    X(nvmlGpmMigSampleGet, Return, (Device, unsigned int, GpmSample))                     \
    X(nvmlGpmMetricsGet, Return, (GpmMetricsGet*))

class Library {
public:
    // Opens `path` (a soname like "libnvidia-ml.so.1" or a file) and calls
    // nvmlInit_v2. Throws std::runtime_error naming the library and the
    // dlerror / NVML error when it cannot be opened or initialised.
    explicit Library(const std::string& path);
    ~Library();
    Library(const Library&) = delete;
    Library& operator=(const Library&) = delete;

    const std::string& path() const { return library_.path(); }
    // "nvmlDeviceGetPowerUsage: Not Supported (3)" style text for errors.
    std::string describe(const char* function, Return r) const;

#define CUAGENT_NVML_MEMBER(name, ret, params) ret(*name) params = nullptr;
    CUAGENT_NVML_FUNCTIONS(CUAGENT_NVML_MEMBER)
#undef CUAGENT_NVML_MEMBER

private:
    drivers::DynamicLibrary library_;
    bool initialised_ = false;
};

}  // namespace cuagent::nvml
