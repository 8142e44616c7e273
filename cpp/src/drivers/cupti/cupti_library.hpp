// libcupti opened at run time, with every PM-sampling and host function it
// needs. libcupti loads libnvperf_host.so through the normal loader search,
// which on a machine with a CUDA toolkit silently finds another version; so
// the libnvperf_host.so beside the libcupti that loaded (however it was
// found) is loaded first, by path, and the loader then reuses it (it matches
// on the soname).
#pragma once

#include <string>
#include <vector>

#include "common/dynamic_library.hpp"
#include "cupti/cupti_api.hpp"

namespace cuagent::cupti {

// X(member, C name, return, parameters): every CUPTI function the source calls.
#define CUAGENT_CUPTI_FUNCTIONS(X) \
    X(ProfilerInitialize, cuptiProfilerInitialize, Result, (ProfilerInitializeParams*))                                        \
    X(ProfilerDeInitialize, cuptiProfilerDeInitialize, Result, (ProfilerDeInitializeParams*))                                  \
    X(DeviceGetChipName, cuptiDeviceGetChipName, Result, (DeviceGetChipNameParams*))                                           \
    X(HostInitialize, cuptiProfilerHostInitialize, Result, (HostInitializeParams*))                                            \
    X(HostDeinitialize, cuptiProfilerHostDeinitialize, Result, (HostDeinitializeParams*))                                      \
    X(HostConfigAddMetrics, cuptiProfilerHostConfigAddMetrics, Result, (HostConfigAddMetricsParams*))                          \
    X(HostGetConfigImageSize, cuptiProfilerHostGetConfigImageSize, Result, (HostGetConfigImageSizeParams*))                    \
    X(HostGetConfigImage, cuptiProfilerHostGetConfigImage, Result, (HostGetConfigImageParams*))                                \
    X(HostGetNumOfPasses, cuptiProfilerHostGetNumOfPasses, Result, (HostGetNumOfPassesParams*))                                \
    X(HostEvaluateToGpuValues, cuptiProfilerHostEvaluateToGpuValues, Result, (HostEvaluateToGpuValuesParams*))                 \
    X(PmGetCounterAvailability, cuptiPmSamplingGetCounterAvailability, Result, (PmGetCounterAvailabilityParams*))              \
    X(PmEnable, cuptiPmSamplingEnable, Result, (PmEnableParams*))                                                              \
    X(PmDisable, cuptiPmSamplingDisable, Result, (PmObjectParams*))                                                            \
    X(PmSetConfig, cuptiPmSamplingSetConfig, Result, (PmSetConfigParams*))                                                     \
    X(PmStart, cuptiPmSamplingStart, Result, (PmObjectParams*))                                                                \
    X(PmStop, cuptiPmSamplingStop, Result, (PmObjectParams*))                                                                  \
    X(PmGetCounterDataSize, cuptiPmSamplingGetCounterDataSize, Result, (PmGetCounterDataSizeParams*))                          \
    X(PmCounterDataImageInitialize, cuptiPmSamplingCounterDataImageInitialize, Result, (PmCounterDataImageInitializeParams*))  \
    X(PmDecodeData, cuptiPmSamplingDecodeData, Result, (PmDecodeDataParams*))                                                  \
    X(PmGetCounterDataInfo, cuptiPmSamplingGetCounterDataInfo, Result, (PmGetCounterDataInfoParams*))                          \
    X(PmGetSampleInfo, cuptiPmSamplingCounterDataGetSampleInfo, Result, (PmGetSampleInfoParams*))                              \
    X(GetResultString, cuptiGetResultString, Result, (Result, const char**))

class Library {
public:
    // `candidates`: paths or sonames, tried in order. Throws std::runtime_error
    // with one line naming every candidate tried, or the missing functions.
    explicit Library(const std::vector<std::string>& candidates);

    const std::string& path() const { return lib_.path(); }
    // The libnvperf_host.so loaded from libcupti's directory, or "".
    const std::string& nvperf_host_path() const { return nvperf_host_path_; }
    // "CUPTI_ERROR_HARDWARE_BUSY"-style name of a result (cuptiGetResultString),
    // or the number.
    std::string error_string(Result r) const;

#define CUAGENT_CUPTI_MEMBER(member, name, ret, params) ret(*member) params = nullptr;
    CUAGENT_CUPTI_FUNCTIONS(CUAGENT_CUPTI_MEMBER)
#undef CUAGENT_CUPTI_MEMBER

private:
    drivers::DynamicLibrary nvperf_host_;
    drivers::DynamicLibrary lib_;
    std::string nvperf_host_path_;
};

// Where libcupti is looked for when no path is given: the pip wheels
// (nvidia-cuda-cupti-cu12, nvidia-cuda-cupti) under `python_paths`, then
// CUDA_HOME / /usr/local/cuda, then the loader's search path.
std::vector<std::string> default_candidates(const std::vector<std::string>& python_paths);

}  // namespace cuagent::cupti
