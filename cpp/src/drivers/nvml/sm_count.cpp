// How many SMs a whole NVIDIA GPU has, without launching anything on it. NVML
// gives an SM count only for MIG handles; for a whole GPU it gives the CUDA
// core count (nvmlDeviceGetNumGpuCores) and the compute capability, and every
// SM of one compute capability holds the same number of FP32 cores. The model
// table is the fallback for drivers that answer neither.
#include <cctype>
#include <string>

#include "cuagent/drivers/nvml.hpp"

namespace cuagent {

std::uint32_t nvidia_cores_per_sm(int major, int minor) {
    // FP32 cores per SM by compute capability, as NVIDIA's CUDA programming guide
    // tabulates them ("Arithmetic Instructions"): GA100 (8.0) has 64, every other
    // part from Ampere's 8.6 on has 128. Capabilities not listed are unknown (0):
    // a future architecture must not be guessed.
    switch (major) {
        case 7: return 64;                         // Volta 7.0/7.2, Turing 7.5
        case 8: return minor == 0 ? 64 : 128;     // A100/A30; GA10x, Orin, Ada (8.6, 8.7, 8.9)
        case 9: return minor == 0 ? 128 : 0;       // Hopper
        default: return 0;
    }
}

std::uint32_t nvidia_sm_count_from_cores(std::uint32_t cores, int major, int minor) {
    const std::uint32_t per_sm = nvidia_cores_per_sm(major, minor);
    if (per_sm == 0 || cores == 0 || cores % per_sm != 0) return 0;  // not a whole number of SMs: unknown
    return cores / per_sm;
}

namespace {

// `name` appears in `model` as a whole word: "A10" is not in "A10G" nor "A100",
// "H200" not in "GH200", "T4" not in "T400".
bool names(const std::string& model, const std::string& name) {
    for (std::size_t at = model.find(name); at != std::string::npos; at = model.find(name, at + 1)) {
        const std::size_t end = at + name.size();
        const bool starts = at == 0 || !std::isalnum(static_cast<unsigned char>(model[at - 1]));
        const bool ends = end == model.size() || !std::isalnum(static_cast<unsigned char>(model[end]));
        if (starts && ends) return true;
    }
    return false;
}

}  // namespace

std::uint32_t nvidia_sm_count_for_model(const std::string& model) {
    // Enabled SMs of each product as NVIDIA specifies them. Order matters:
    // more specific names first ("H100 PCIe" before "H100").
    static const std::pair<const char*, std::uint32_t> table[] = {
        {"H100 PCIe", 114}, {"H100 NVL", 132}, {"H100", 132}, {"H200", 132}, {"GH200", 132},
        {"A100", 108}, {"A800", 108}, {"A30", 56}, {"A10", 72}, {"A10G", 80}, {"A40", 84},
        {"L40S", 142}, {"L40", 142}, {"L4", 58}, {"V100", 80}, {"T4", 40},
    };
    for (const auto& [name, sms] : table)
        if (names(model, name)) return sms;
    return 0;
}

}  // namespace cuagent
