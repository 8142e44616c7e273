// How both AMD drivers name a physical GPU, so that switching backends keeps
// its id (the feed's topics) and its model.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace cuagent::amd {

// The GPU's id: "amd-<unique id as 16 hex digits>" when `unique` is known
// (KFD's unique_id is what rsmi_dev_unique_id_get reads), else "amd-<uuid>"
// when the library gives one, else "amd-pci-<pci>", else "amd-<physical index>".
std::string device_id(const std::optional<std::uint64_t>& unique, const std::string& uuid, std::size_t physical,
                      const std::string& pci);

// The model of a GPU whose library names none: "AMD GPU (device 0x74a1)",
// from its KFD node's PCI device id.
std::string generic_model(std::uint32_t device_id);

}  // namespace cuagent::amd
