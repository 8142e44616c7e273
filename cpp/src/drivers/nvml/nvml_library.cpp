#include "nvml_library.hpp"

#include <dlfcn.h>

#include <stdexcept>

namespace cuagent::nvml {

Library::Library(const std::string& path) : path_(path) {
    // RTLD_LOCAL: our lookups go through dlsym only, and a second copy opened
    // by pynvml (same soname) is the same loaded object anyway.
    handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle_ == nullptr) {
        const char* why = dlerror();
        throw std::runtime_error("nvml: cannot load " + path + " (the NVIDIA driver's NVML library): " +
                                 (why ? why : "unknown dlopen error"));
    }
#define CUAGENT_NVML_LOOKUP(name, ret, params) \
    name = reinterpret_cast<ret(*) params>(dlsym(handle_, #name));
    CUAGENT_NVML_FUNCTIONS(CUAGENT_NVML_LOOKUP)
#undef CUAGENT_NVML_LOOKUP
    if (nvmlInit_v2 == nullptr || nvmlShutdown == nullptr || nvmlDeviceGetCount_v2 == nullptr ||
        nvmlDeviceGetHandleByIndex_v2 == nullptr) {
        dlclose(handle_);
        handle_ = nullptr;
        throw std::runtime_error("nvml: " + path +
                                 " lacks nvmlInit_v2/nvmlShutdown/nvmlDeviceGetCount_v2/"
                                 "nvmlDeviceGetHandleByIndex_v2: not a usable libnvidia-ml");
    }
    const Return r = nvmlInit_v2();
    if (r != kSuccess) {
        const std::string why = describe("nvmlInit_v2", r);
        dlclose(handle_);
        handle_ = nullptr;
        throw std::runtime_error("nvml: " + path + ": " + why);
    }
    initialised_ = true;
}

Library::~Library() {
    if (initialised_) nvmlShutdown();
    if (handle_ != nullptr) dlclose(handle_);
}

std::string Library::describe(const char* function, Return r) const {
    const char* text = nvmlErrorString != nullptr ? nvmlErrorString(r) : nullptr;
    return std::string(function) + ": " + (text ? text : "error") + " (" + std::to_string(r) + ")";
}

}  // namespace cuagent::nvml
