// librocm_smi64 loaded at run time (common/dynamic_library.hpp): rsmi_init /
// rsmi_shut_down, and every function looked up on its own, so that a release
// lacking one call loses only the counters that call feeds.
#pragma once

#include <string>
#include <vector>

#include "common/dynamic_library.hpp"
#include "rocm_smi_abi.hpp"

namespace cuagent::rocm {

struct Functions {
    InitFn init = nullptr;
    ShutDownFn shut_down = nullptr;
    StatusStringFn status_string = nullptr;
    NumDevicesFn num_monitor_devices = nullptr;
    NameFn name = nullptr;
    Name32Fn brand = nullptr;
    Name32Fn market_name = nullptr;
    U64Fn unique_id = nullptr;
    U64Fn pci_id = nullptr;
    NumaFn numa_affinity = nullptr;
    MemoryFn memory_total = nullptr;
    MemoryFn memory_usage = nullptr;
    U64Fn current_socket_power = nullptr;
    PowerAveFn power_ave = nullptr;
    TempFn temp_metric = nullptr;
    ClockFn gpu_clk_freq = nullptr;
    U32Fn busy_percent = nullptr;
    MetricsFn gpu_metrics = nullptr;
    Name32Fn compute_partition = nullptr;
    Name32Fn memory_partition = nullptr;
};

class Library {
public:
    // Loads `path` (a file or a bare name); empty: librocm_smi64.so, then the
    // versioned names, then /opt/rocm/lib. Throws std::runtime_error (one line)
    // naming every place tried when none loads, or when rsmi_init fails.
    explicit Library(const std::string& path);
    ~Library();
    Library(const Library&) = delete;
    Library& operator=(const Library&) = delete;

    const Functions& fn() const { return fn_; }
    const std::string& path() const { return library_.path(); }
    // Names of the looked-up functions the library does not export.
    const std::vector<std::string>& missing() const { return library_.missing(); }
    // The library's text for a status ("RSMI_STATUS_..."); no allocation.
    const char* status_text(Status status) const noexcept;

private:
    drivers::DynamicLibrary library_;
    bool initialized_ = false;
    Functions fn_;
};

// Candidate names, unversioned first (ABI-checked by the package manager's
// symlink), then the versions ROCm 5..7 ship.
std::vector<std::string> default_library_names();

}  // namespace cuagent::rocm
