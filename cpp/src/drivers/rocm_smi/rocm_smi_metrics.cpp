#include "rocm_smi_metrics.hpp"

#include <initializer_list>

namespace cuagent::rocm::metrics {

namespace {

std::size_t written_extent(const unsigned char* buffer, unsigned char canary) noexcept {
    std::size_t end = kBufferBytes;
    while (end > 0 && buffer[end - 1] == canary) --end;
    return end;
}

}  // namespace

LayoutProbe probe_public_layout(MetricsFn fn, std::uint32_t device, unsigned char* buffer) noexcept {
    LayoutProbe probe;
    if (fn == nullptr) return probe;
    // Two canaries: a last field that happens to equal one canary byte cannot
    // equal both.
    std::size_t written = 0;
    for (const unsigned char canary : {static_cast<unsigned char>(0xA5), static_cast<unsigned char>(0x5A)}) {
        std::memset(buffer, canary, kBufferBytes);
        probe.status = fn(device, buffer);
        if (probe.status != kSuccess) return probe;
        const std::size_t extent = written_extent(buffer, canary);
        if (extent > written) written = extent;
    }
    probe.written = written;
    // The last member of each known layout ends within 8 bytes of its size
    // (only tail padding may be left untouched).
    for (const PublicLayout& layout : kKnownLayouts) {
        if (written <= layout.size && written + 8 > layout.size) {
            probe.layout = layout;
            probe.known = true;
            return probe;
        }
    }
    // A release newer than the newest known one: its common prefix (up to
    // xcp_stats) is the same, since the struct only grows at the end, but its
    // xcp_stats entries may have grown again, so they are not decoded.
    if (written > kLayoutV18.size) {
        probe.layout = PublicLayout{written, 255, 0, 0};
    }
    return probe;
}

float fold_throttle(std::uint64_t status) noexcept {
    if (status == kNoData64) return std::numeric_limits<float>::quiet_NaN();
    unsigned folded = 0;
    if (status & 0x000000000000FFFFull) folded |= 1u;
    if (status & 0x00000000FFFF0000ull) folded |= 2u;
    if (status & 0x0000FFFF00000000ull) folded |= 4u;
    if (status & 0xFFFF000000000000ull) folded |= 8u;
    return static_cast<float>(folded);
}

}  // namespace cuagent::rocm::metrics
