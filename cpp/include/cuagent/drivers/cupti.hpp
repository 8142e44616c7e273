// The CUPTI PM-sampling source: device-wide hardware counters of NVIDIA GPUs
// sampled by the GPU at about 1 kHz, added beside NVML on the same device
// (ExtraSource). CUPTI gives rollups across SMs (avg/max/min), never per-SM
// series. libcupti is dlopen'd, so cuagent builds and runs without it.
//
// One decode thread per source owns every CUPTI call: it starts sampling,
// decodes the hardware buffer in batches (just after each window of the
// engine ends, and every decode_interval between), maps each completed
// sample's GPU time to CLOCK_MONOTONIC, folds it into the window its time
// falls in, and hands each whole window through a lock-free SPSC ring per
// device to the engine's aggregator (Driver::stamps_own_samples), which holds
// the window open until it comes. The engine's sampler never reads it, so it
// keeps NVML's pace. When the counters are busy (ncu, nsys
// --gpu-metrics, DCGM profiling), not permitted, or paused by the operator,
// the device's CUPTI counters are absent and the thread retries with
// back-off, reporting each change as an event.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cuagent/driver.hpp"

namespace cuagent {

struct CuptiOptions {
    // libcupti paths or sonames to try in order; empty: the pip wheels under
    // python_paths, CUDA_HOME, /usr/local/cuda, then the loader's search.
    std::vector<std::string> library;
    std::vector<std::string> python_paths;
    // CUDA device indices to sample (CUPTI takes a device index, not a context).
    std::vector<std::uint32_t> devices;
    double rate_hz = 1000.0;               // GPU sampling rate, 100..20000
    // Longest time between two decodes of the hardware buffer, 1..1000 ms.
    // The buffer is always decoded just after each window's end; a shorter
    // interval adds decodes between, so the batch that closes a window is
    // smaller (its window is published sooner) at the cost of more wake-ups.
    std::int64_t decode_interval_ns = 100'000'000;
    std::size_t hardware_buffer_bytes = 64u << 20;
    std::int64_t retry_min_ns = 1'000'000'000;   // back-off after busy / not permitted / lost
    std::int64_t retry_max_ns = 60'000'000'000;
    bool start_paused = false;
};

struct CuptiEvent {
    std::uint32_t device = 0;  // position in CuptiOptions::devices
    std::string kind;          // "profiling_paused" | "profiling_resumed"
    std::string reason;        // e.g. "busy: CUPTI_ERROR_HARDWARE_BUSY ..."
};

struct CuptiDeviceStatus {
    std::string state;   // "sampling" | "paused" | "retrying" | "failed"
    std::string reason;  // why not sampling ("" while sampling)
    std::string chip;
    // samples: folded into windows; late: fell in a window already handed
    // over (counted nowhere); dropped: in windows no engine took.
    std::uint64_t samples = 0, late = 0, dropped = 0, overflows = 0, data_full = 0, decode_calls = 0;
    // Time the decode thread spent inside libcupti for this device (decode,
    // sample info, metric evaluation): CUPTI's share of the decode cost.
    std::uint64_t library_ns = 0;
};

class CuptiSource : public Driver {
public:
    // Releases (pause) or retakes (resume) the counters of every device; the
    // decode thread acts within one decode interval. Any thread.
    virtual void pause(const std::string& reason) = 0;
    virtual void resume() = 0;
    virtual bool paused() const = 0;
    virtual std::vector<CuptiDeviceStatus> status() const = 0;
    virtual std::vector<CuptiEvent> drain_events() = 0;
    virtual std::string library_path() const = 0;
    // The libnvperf_host.so loaded from libcupti's own directory ("" when
    // there was none there and libcupti finds one by itself).
    virtual std::string nvperf_host_path() const = 0;
    // CPU time of the decode thread so far (CUPTI's share: library_ns).
    virtual std::uint64_t decode_cpu_ns() const = 0;
};

// Throws std::runtime_error (one line) when libcupti cannot be loaded, lacks
// PM sampling, or a device's chip cannot take the metrics in one pass;
// std::invalid_argument for an option out of range. Starts the decode thread.
std::shared_ptr<CuptiSource> make_cupti_source(const CuptiOptions& options);

// Offline checks against the real host library (no GPU needed).
struct CuptiOfflineReport {
    std::string library;
    std::vector<std::pair<std::string, bool>> metrics;  // accepted for the chip, each alone
    std::size_t passes = 0;                              // of the whole set
    std::string error;
};
CuptiOfflineReport cupti_offline_check(const std::vector<std::string>& library, const std::string& chip);
// The metric names the source configures, and the params struct sizes it
// was compiled with (by the CUPTI headers' names).
std::vector<std::string> cupti_metric_names();
std::vector<std::pair<std::string, std::size_t>> cupti_struct_sizes();

}  // namespace cuagent
