#include "gpu_walk.hpp"

#include <stdexcept>

namespace cuagent::amd {

GpuWalk::GpuWalk(const char* backend, const AmdDriverOptions& options)
    : backend_(backend), kfd_root_(options.kfd_root), kfd_(read_kfd_gpu_nodes(backend, options.kfd_root)),
      names_(options.devices), matched_(options.devices.size(), false) {}

std::vector<KfdNode> GpuWalk::start(DeviceDescription& d, std::size_t physical,
                                    const std::optional<PciLocation>& at, const std::string& pci,
                                    const char* no_pci) const {
    d.index = static_cast<std::uint32_t>(physical);
    d.vendor = "amd";
    d.backend = backend_;
    d.pci = pci;
    std::vector<KfdNode> nodes = nodes_of_gpu(kfd_, at);
    if (nodes.empty()) {
        throw std::runtime_error(std::string(backend_) + ": no KFD topology node for device " +
                                 std::to_string(physical) +
                                 (pci.empty() ? " (" + std::string(no_pci) + ")" : " (PCI " + pci + ")") +
                                 " under " + kfd_root_ +
                                 "/topology/nodes; is /sys/class/kfd visible (containers: mount /sys)?");
    }
    return nodes;
}

bool GpuWalk::picks(std::size_t physical, const std::string& id) {
    if (names_.empty()) return true;
    const std::string number = std::to_string(physical);
    bool picked = false;
    for (std::size_t i = 0; i < names_.size(); ++i) {
        if (names_[i] == id || names_[i] == number) picked = matched_[i] = true;
    }
    return picked;
}

void GpuWalk::finish(std::size_t found) const {
    for (std::size_t i = 0; i < names_.size(); ++i) {
        if (!matched_[i]) {
            throw std::invalid_argument(std::string(backend_) + ": no AMD device '" + names_[i] + "' (" +
                                        std::to_string(found) +
                                        " found; give an index or an id like amd-<unique id>)");
        }
    }
}

}  // namespace cuagent::amd
