#include "rocm_smi_library.hpp"

#include <dlfcn.h>

#include <stdexcept>

namespace cuagent::rocm {

std::vector<std::string> default_library_names() {
    return {"librocm_smi64.so",        "librocm_smi64.so.7",
            "librocm_smi64.so.6",      "librocm_smi64.so.5",
            "librocm_smi64.so.1",      "/opt/rocm/lib/librocm_smi64.so",
            "/opt/rocm/lib/librocm_smi64.so.7", "/opt/rocm/lib/librocm_smi64.so.6"};
}

namespace {

template <typename Fn>
void resolve(void* handle, const char* symbol, Fn& out, std::vector<std::string>& missing) {
    // dlsym returns the address as void*; POSIX guarantees it converts to a
    // function pointer.
    void* address = dlsym(handle, symbol);
    out = reinterpret_cast<Fn>(address);
    if (address == nullptr) missing.emplace_back(symbol);
}

}  // namespace

Library::Library(const std::string& path) {
    std::vector<std::string> candidates = path.empty() ? default_library_names()
                                                       : std::vector<std::string>{path};
    std::string tried;
    for (const auto& candidate : candidates) {
        // RTLD_LOCAL: rsmi's symbols stay out of the global namespace, where
        // they could clash with another copy loaded by a user's library.
        handle_ = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (handle_ != nullptr) {
            path_ = candidate;
            break;
        }
        const char* error = dlerror();
        tried += "\n  " + candidate + ": " + (error ? error : "not loadable");
    }
    if (handle_ == nullptr) {
        throw std::runtime_error(
            "rocm_smi: cannot load the ROCm SMI library (librocm_smi64.so); install rocm-smi-lib "
            "or pass library=<path>. Tried:" + tried);
    }

    resolve(handle_, "rsmi_init", fn_.init, missing_);
    resolve(handle_, "rsmi_shut_down", fn_.shut_down, missing_);
    resolve(handle_, "rsmi_status_string", fn_.status_string, missing_);
    resolve(handle_, "rsmi_num_monitor_devices", fn_.num_monitor_devices, missing_);
    resolve(handle_, "rsmi_dev_name_get", fn_.name, missing_);
    resolve(handle_, "rsmi_dev_brand_get", fn_.brand, missing_);
    resolve(handle_, "rsmi_dev_market_name_get", fn_.market_name, missing_);
    resolve(handle_, "rsmi_dev_unique_id_get", fn_.unique_id, missing_);
    resolve(handle_, "rsmi_dev_pci_id_get", fn_.pci_id, missing_);
    resolve(handle_, "rsmi_topo_numa_affinity_get", fn_.numa_affinity, missing_);
    resolve(handle_, "rsmi_dev_memory_total_get", fn_.memory_total, missing_);
    resolve(handle_, "rsmi_dev_memory_usage_get", fn_.memory_usage, missing_);
    resolve(handle_, "rsmi_dev_current_socket_power_get", fn_.current_socket_power, missing_);
    resolve(handle_, "rsmi_dev_power_ave_get", fn_.power_ave, missing_);
    resolve(handle_, "rsmi_dev_temp_metric_get", fn_.temp_metric, missing_);
    resolve(handle_, "rsmi_dev_gpu_clk_freq_get", fn_.gpu_clk_freq, missing_);
    resolve(handle_, "rsmi_dev_busy_percent_get", fn_.busy_percent, missing_);
    resolve(handle_, "rsmi_dev_gpu_metrics_info_get", fn_.gpu_metrics, missing_);
    resolve(handle_, "rsmi_dev_compute_partition_get", fn_.compute_partition, missing_);
    resolve(handle_, "rsmi_dev_memory_partition_get", fn_.memory_partition, missing_);

    if (fn_.init == nullptr || fn_.shut_down == nullptr || fn_.num_monitor_devices == nullptr) {
        std::string name = path_;
        dlclose(handle_);
        handle_ = nullptr;
        throw std::runtime_error("rocm_smi: " + name +
                                 " does not export rsmi_init, rsmi_shut_down and "
                                 "rsmi_num_monitor_devices; it is not a ROCm SMI library");
    }
    const Status status = fn_.init(0);
    if (status != kSuccess) {
        std::string text = status_text(status);
        dlclose(handle_);
        handle_ = nullptr;
        throw std::runtime_error("rocm_smi: rsmi_init(0) failed in " + path_ + ": " + text +
                                 " (is the amdgpu driver loaded, and /sys and /dev/kfd visible?)");
    }
    initialized_ = true;
}

Library::~Library() {
    if (initialized_) fn_.shut_down();
    // dlclose is deliberately skipped: rocm_smi starts no threads we know of,
    // but unloading a vendor library that registered atexit handlers or TLS
    // destructors crashes at process exit. The handle is reference counted, so
    // a later Library reuses it.
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
