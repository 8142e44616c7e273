#include "amdsmi_library.hpp"

#include <map>
#include <mutex>
#include <stdexcept>

namespace cuagent::amdsmi {

namespace {

// Live libraries by the address of their amdsmi_init: two names (a soname, a
// path) that load the same copy find the same Library.
std::mutex g_registry_lock;
std::map<const void*, std::weak_ptr<Library>>& registry() {
    static std::map<const void*, std::weak_ptr<Library>> libraries;
    return libraries;
}

}  // namespace

std::vector<std::string> default_library_names() {
    return {"libamd_smi.so",    "libamd_smi.so.27", "libamd_smi.so.26", "libamd_smi.so.25",
            "libamd_smi.so.24", "/opt/rocm/lib/libamd_smi.so", "/opt/rocm/lib/libamd_smi.so.27",
            "/opt/rocm/lib/libamd_smi.so.26"};
}

std::shared_ptr<Library> Library::acquire(const std::string& path) {
    auto library = std::make_unique<drivers::DynamicLibrary>();
    std::string error;
    if (!library->try_open(path.empty() ? default_library_names() : std::vector<std::string>{path},
                           "the AMD SMI library (libamd_smi.so)", error))
        throw std::runtime_error("amdsmi: " + error + "; install amd-smi-lib or pass library=<path>");
    InitFn init = nullptr;
    library->lookup("amdsmi_init", init);

    std::lock_guard<std::mutex> lock(g_registry_lock);
    const void* key = reinterpret_cast<const void*>(init);
    if (init != nullptr) {
        if (auto existing = registry()[key].lock()) return existing;  // our extra dlopen reference goes
    }
    std::shared_ptr<Library> shared(new Library(std::move(library)));
    shared->initialise();
    registry()[key] = shared;
    return shared;
}

Library::Library(std::unique_ptr<drivers::DynamicLibrary> library) : library_(std::move(library)) {
    // Unloading a vendor library that registered atexit handlers or TLS
    // destructors crashes at process exit; AMD SMI starts threads of its own.
    library_->keep_loaded();
    auto& l = *library_;
    l.lookup("amdsmi_init", fn_.init);
    l.lookup("amdsmi_shut_down", fn_.shut_down);
    l.lookup("amdsmi_status_code_to_string", fn_.status_string);
    l.lookup("amdsmi_get_lib_version", fn_.lib_version);
    l.lookup("amdsmi_get_socket_handles", fn_.socket_handles);
    l.lookup("amdsmi_get_processor_handles", fn_.processor_handles);
    l.lookup("amdsmi_get_processor_type", fn_.processor_type);
    l.lookup("amdsmi_get_gpu_asic_info", fn_.asic_info);
    l.lookup("amdsmi_get_gpu_board_info", fn_.board_info);
    l.lookup("amdsmi_get_gpu_device_bdf", fn_.bdf);
    l.lookup("amdsmi_get_gpu_device_uuid", fn_.uuid);
    l.lookup("amdsmi_topo_get_numa_node_number", fn_.numa_node);
    l.lookup("amdsmi_get_gpu_kfd_info", fn_.kfd_info);
    l.lookup("amdsmi_get_gpu_memory_total", fn_.memory_total);
    l.lookup("amdsmi_get_gpu_memory_usage", fn_.memory_usage);
    l.lookup("amdsmi_get_gpu_activity", fn_.activity);
    l.lookup("amdsmi_get_power_info", fn_.power_info);
    l.lookup("amdsmi_get_temp_metric", fn_.temp_metric);
    l.lookup("amdsmi_get_clock_info", fn_.clock_info);
    l.lookup("amdsmi_get_gpu_total_ecc_count", fn_.total_ecc);
    l.lookup("amdsmi_get_gpu_metrics_info", fn_.gpu_metrics);
    l.lookup("amdsmi_get_gpu_compute_partition", fn_.compute_partition);
    l.lookup("amdsmi_get_gpu_memory_partition", fn_.memory_partition);
    l.lookup("amdsmi_get_gpu_process_list", fn_.process_list);
}

void Library::initialise() {
    const std::string required = library_->lacking({"amdsmi_init", "amdsmi_shut_down", "amdsmi_get_socket_handles",
                                                    "amdsmi_get_processor_handles"});
    if (!required.empty()) {
        throw std::runtime_error("amdsmi: " + library_->path() + " does not export " + required +
                                 "; it is not an AMD SMI library");
    }
    const Status status = fn_.init(kInitAmdGpus);
    if (status != kSuccess) {
        throw std::runtime_error("amdsmi: amdsmi_init(AMDSMI_INIT_AMD_GPUS) failed in " + library_->path() + ": " +
                                 status_text(status) + " (is the amdgpu driver loaded, and /sys and /dev/dri visible?)");
    }
    initialized_ = true;
    Version v{};
    if (fn_.lib_version != nullptr && fn_.lib_version(&v) == kSuccess) {
        version_ = std::to_string(v.major) + "." + std::to_string(v.minor) + "." + std::to_string(v.release);
        structs_known_ = v.major == kAbiMajor;
    }
}

Library::~Library() {
    if (initialized_) fn_.shut_down();
}

const char* Library::status_text(Status status) const noexcept {
    const char* text = nullptr;
    if (fn_.status_string != nullptr && fn_.status_string(status, &text) == kSuccess && text) return text;
    switch (status) {
        case kInval: return "AMDSMI_STATUS_INVAL";
        case kNotSupported: return "AMDSMI_STATUS_NOT_SUPPORTED";
        case kFileError: return "AMDSMI_STATUS_FILE_ERROR";
        case kInitError: return "AMDSMI_STATUS_INIT_ERROR";
        case kNotInit: return "AMDSMI_STATUS_NOT_INIT";
        case kBusy: return "AMDSMI_STATUS_BUSY";
        case kNotFound: return "AMDSMI_STATUS_NOT_FOUND";
        default: return "AMD SMI status (unknown)";
    }
}

}  // namespace cuagent::amdsmi
