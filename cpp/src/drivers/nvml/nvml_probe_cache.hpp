// The SM layout probe behind a per-device cache: the layout of a GPU does not
// change, so it is measured once per UUID and reused across agent restarts.
#pragma once

#include <string>

#include "cuagent/drivers/nvml.hpp"
#include "cuagent/drivers/sm_layout.hpp"

namespace cuagent {

// Reads <cache_dir>/<uuid>.sm-layout when valid, else probes the device with
// this PCI bus id and writes the cache. False with `why` when neither worked.
bool probe_layout_cached(const std::string& uuid, const std::string& pci_bus_id, const NvmlOptions& options,
                         SmLayout& layout, std::string& why);

}  // namespace cuagent
