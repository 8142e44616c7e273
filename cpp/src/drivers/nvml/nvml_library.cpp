#include "nvml_library.hpp"

#include <stdexcept>

namespace cuagent::nvml {

Library::Library(const std::string& path) {
    // One candidate: the soname the loader searches for, or the caller's file.
    // A second copy opened by pynvml (same soname) is the same loaded object.
    library_.open({path}, "the NVIDIA driver's NVML library", "nvml: ");
#define CUAGENT_NVML_LOOKUP(name, ret, params) library_.lookup(#name, name);
    CUAGENT_NVML_FUNCTIONS(CUAGENT_NVML_LOOKUP)
#undef CUAGENT_NVML_LOOKUP
    const std::string lacking =
        library_.lacking({"nvmlInit_v2", "nvmlShutdown", "nvmlDeviceGetCount_v2", "nvmlDeviceGetHandleByIndex_v2"});
    if (!lacking.empty()) {
        library_.close();
        throw std::runtime_error("nvml: " + path + " lacks " + lacking + ": not a usable libnvidia-ml");
    }
    const Return r = nvmlInit_v2();
    if (r != kSuccess) {
        const std::string why = describe("nvmlInit_v2", r);
        library_.close();
        throw std::runtime_error("nvml: " + path + ": " + why);
    }
    initialised_ = true;
}

Library::~Library() {
    // Before the library member unloads it.
    if (initialised_) nvmlShutdown();
}

std::string Library::describe(const char* function, Return r) const {
    const char* text = nvmlErrorString != nullptr ? nvmlErrorString(r) : nullptr;
    return std::string(function) + ": " + (text ? text : "error") + " (" + std::to_string(r) + ")";
}

}  // namespace cuagent::nvml
