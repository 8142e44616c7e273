// The CUPTI PM-sampling source: device-wide hardware counters of NVIDIA GPUs
// sampled by the GPU at about 1 kHz, added beside NVML on the same device
// (ExtraSource). CUPTI gives rollups across SMs (avg/max/min), never per-SM
// series. libcupti is dlopen'd, so cuagent builds and runs without it.
//
// One decode thread per source owns every CUPTI call: it starts sampling,
// decodes the hardware buffer every few ms, and hands each completed sample
// through a lock-free SPSC ring per device to read(), which runs on the
// sampler thread and never blocks. When the counters are busy (ncu, nsys
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
    std::int64_t decode_interval_ns = 2'000'000;  // how often the hardware buffer is decoded
    // How often the sampler takes the decoded samples (each read folds all it
    // finds). Longer costs less CPU, but a sample still waiting when its window
    // ends is dropped (counted as late): latency over the window is the loss.
    std::int64_t read_interval_ns = 1'000'000;
    std::int64_t window_ns = 100'000'000;  // the engine's window: a sample is only counted in its own
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
    std::uint64_t samples = 0, late = 0, dropped = 0, overflows = 0, data_full = 0, decode_calls = 0;
    std::uint64_t evaluate_ns = 0;  // time spent evaluating samples (decode cost)
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
