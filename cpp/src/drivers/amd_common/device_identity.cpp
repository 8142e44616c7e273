#include "device_identity.hpp"

#include <cinttypes>
#include <cstdio>

namespace cuagent::amd {

std::string device_id(const std::optional<std::uint64_t>& unique, const std::string& uuid, std::size_t physical,
                      const std::string& pci) {
    if (unique) {
        char id[32];
        std::snprintf(id, sizeof id, "amd-%016" PRIx64, *unique);
        return id;
    }
    if (!uuid.empty()) return "amd-" + uuid;
    return pci.empty() ? "amd-" + std::to_string(physical) : "amd-pci-" + pci;
}

std::string generic_model(std::uint32_t device_id) {
    char model[48];
    std::snprintf(model, sizeof model, "AMD GPU (device 0x%04x)", device_id);
    return model;
}

}  // namespace cuagent::amd
