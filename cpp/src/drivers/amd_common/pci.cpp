#include "pci.hpp"

#include <cstdio>

namespace cuagent::amd {

std::string format_pci(std::uint32_t domain, std::uint32_t bus, std::uint32_t device, std::uint32_t function) {
    char text[32];
    std::snprintf(text, sizeof text, "%04x:%02x:%02x.%x", domain & 0xFFFFu, bus & 0xFFu, device & 0x1Fu,
                  function & 0x7u);
    return text;
}

}  // namespace cuagent::amd
