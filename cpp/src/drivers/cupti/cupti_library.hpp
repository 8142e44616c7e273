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

    Result (*ProfilerInitialize)(ProfilerInitializeParams*) = nullptr;
    Result (*ProfilerDeInitialize)(ProfilerDeInitializeParams*) = nullptr;
    Result (*DeviceGetChipName)(DeviceGetChipNameParams*) = nullptr;
    Result (*HostInitialize)(HostInitializeParams*) = nullptr;
    Result (*HostDeinitialize)(HostDeinitializeParams*) = nullptr;
    Result (*HostConfigAddMetrics)(HostConfigAddMetricsParams*) = nullptr;
    Result (*HostGetConfigImageSize)(HostGetConfigImageSizeParams*) = nullptr;
    Result (*HostGetConfigImage)(HostGetConfigImageParams*) = nullptr;
    Result (*HostGetNumOfPasses)(HostGetNumOfPassesParams*) = nullptr;
    Result (*HostEvaluateToGpuValues)(HostEvaluateToGpuValuesParams*) = nullptr;
    Result (*PmGetCounterAvailability)(PmGetCounterAvailabilityParams*) = nullptr;
    Result (*PmEnable)(PmEnableParams*) = nullptr;
    Result (*PmDisable)(PmObjectParams*) = nullptr;
    Result (*PmSetConfig)(PmSetConfigParams*) = nullptr;
    Result (*PmStart)(PmObjectParams*) = nullptr;
    Result (*PmStop)(PmObjectParams*) = nullptr;
    Result (*PmGetCounterDataSize)(PmGetCounterDataSizeParams*) = nullptr;
    Result (*PmCounterDataImageInitialize)(PmCounterDataImageInitializeParams*) = nullptr;
    Result (*PmDecodeData)(PmDecodeDataParams*) = nullptr;
    Result (*PmGetCounterDataInfo)(PmGetCounterDataInfoParams*) = nullptr;
    Result (*PmGetSampleInfo)(PmGetSampleInfoParams*) = nullptr;
    Result (*GetResultString)(Result, const char**) = nullptr;

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
