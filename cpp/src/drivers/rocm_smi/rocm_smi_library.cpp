#include "rocm_smi_library.hpp"

#include <stdexcept>

namespace cuagent::rocm {

std::vector<std::string> default_library_names() {
    return {"librocm_smi64.so",        "librocm_smi64.so.7",
            "librocm_smi64.so.6",      "librocm_smi64.so.5",
            "librocm_smi64.so.1",      "/opt/rocm/lib/librocm_smi64.so",
            "/opt/rocm/lib/librocm_smi64.so.7", "/opt/rocm/lib/librocm_smi64.so.6"};
}

Library::Library(const std::string& path) {
    std::string error;
    if (!library_.try_open(path.empty() ? default_library_names() : std::vector<std::string>{path},
                           "the ROCm SMI library (librocm_smi64.so)", error))
        throw std::runtime_error("rocm_smi: " + error + "; install rocm-smi-lib or pass library=<path>");
    // rocm_smi starts no threads we know of, but unloading a vendor library
    // that registered atexit handlers or TLS destructors crashes at process exit.
    library_.keep_loaded();
    library_.lookup("rsmi_init", fn_.init);
    library_.lookup("rsmi_shut_down", fn_.shut_down);
    library_.lookup("rsmi_status_string", fn_.status_string);
    library_.lookup("rsmi_num_monitor_devices", fn_.num_monitor_devices);
    library_.lookup("rsmi_dev_name_get", fn_.name);
    library_.lookup("rsmi_dev_brand_get", fn_.brand);
    library_.lookup("rsmi_dev_market_name_get", fn_.market_name);
    library_.lookup("rsmi_dev_unique_id_get", fn_.unique_id);
    library_.lookup("rsmi_dev_pci_id_get", fn_.pci_id);
    library_.lookup("rsmi_topo_numa_affinity_get", fn_.numa_affinity);
    library_.lookup("rsmi_dev_memory_total_get", fn_.memory_total);
    library_.lookup("rsmi_dev_memory_usage_get", fn_.memory_usage);
    library_.lookup("rsmi_dev_current_socket_power_get", fn_.current_socket_power);
    library_.lookup("rsmi_dev_power_ave_get", fn_.power_ave);
    library_.lookup("rsmi_dev_temp_metric_get", fn_.temp_metric);
    library_.lookup("rsmi_dev_gpu_clk_freq_get", fn_.gpu_clk_freq);
    library_.lookup("rsmi_dev_busy_percent_get", fn_.busy_percent);
    library_.lookup("rsmi_dev_gpu_metrics_info_get", fn_.gpu_metrics);
    library_.lookup("rsmi_dev_compute_partition_get", fn_.compute_partition);
    library_.lookup("rsmi_dev_memory_partition_get", fn_.memory_partition);

    if (!library_.lacking({"rsmi_init", "rsmi_shut_down", "rsmi_num_monitor_devices"}).empty()) {
        const std::string name = library_.path();
        library_.close();
        throw std::runtime_error("rocm_smi: " + name +
                                 " does not export rsmi_init, rsmi_shut_down and "
                                 "rsmi_num_monitor_devices; it is not a ROCm SMI library");
    }
    const Status status = fn_.init(0);
    if (status != kSuccess) {
        const std::string text = status_text(status);
        library_.close();
        throw std::runtime_error("rocm_smi: rsmi_init(0) failed in " + library_.path() + ": " + text +
                                 " (is the amdgpu driver loaded, and /sys and /dev/kfd visible?)");
    }
    initialized_ = true;
}

Library::~Library() {
    if (initialized_) fn_.shut_down();
}

const char* Library::status_text(Status status) const noexcept {
    const char* text = nullptr;
    if (fn_.status_string != nullptr && fn_.status_string(status, &text) == kSuccess && text) {
        return text;
    }
    switch (status) {
        case kNotSupported: return "RSMI_STATUS_NOT_SUPPORTED";
        case kFileError: return "RSMI_STATUS_FILE_ERROR";
        case kInitError: return "RSMI_STATUS_INIT_ERROR";
        case kInvalidArgs: return "RSMI_STATUS_INVALID_ARGS";
        case kBusy: return "RSMI_STATUS_BUSY";
        default: return "RSMI status (unknown)";
    }
}

}  // namespace cuagent::rocm
