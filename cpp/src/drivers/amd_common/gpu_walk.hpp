// The walk both AMD drivers' discovery makes over a host's physical GPUs (the
// library's devices already grouped, amd_common/pci.hpp): the KFD tree read
// once, the --devices selection, and what a GPU's description says before the
// driver asks its own library about it. Slow path.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "cuagent/drivers/amd_options.hpp"
#include "cuagent/topology.hpp"
#include "kfd.hpp"
#include "pci.hpp"

namespace cuagent::amd {

class GpuWalk {
public:
    // Reads the KFD tree under options.kfd_root; errors name `backend`.
    GpuWalk(const char* backend, const AmdDriverOptions& options);

    // Starts `d` as physical GPU `physical` at `at` (its index, vendor,
    // backend and `pci` text) and returns its KFD nodes in partition order.
    // Throws std::runtime_error, one line naming the GPU, when it has none;
    // `no_pci` says what the library lacked when `at` is empty ("no PCI id").
    std::vector<KfdNode> start(DeviceDescription& d, std::size_t physical, const std::optional<PciLocation>& at,
                               const std::string& pci, const char* no_pci) const;

    // Whether --devices picks the GPU at `physical` with `id`: each name is an
    // index ("0") or an id ("amd-<unique id>"); none picks every GPU.
    bool picks(std::size_t physical, const std::string& id);

    // After the last of the `found` GPUs: throws std::invalid_argument naming
    // the first --devices name that picked none.
    void finish(std::size_t found) const;

private:
    const char* backend_;
    std::string kfd_root_;
    std::vector<KfdNode> kfd_;
    std::vector<std::string> names_;  // --devices
    std::vector<bool> matched_;       // per name: it picked a GPU
};

}  // namespace cuagent::amd
