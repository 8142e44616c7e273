#include "gpu_metrics.hpp"

#include <initializer_list>

namespace cuagent::amd::metrics {

namespace {

std::size_t written_extent(const unsigned char* buffer, unsigned char canary) noexcept {
    std::size_t end = kBufferBytes;
    while (end > 0 && buffer[end - 1] == canary) --end;
    return end;
}

}  // namespace

LayoutProbe probe_public_layout(const std::function<std::uint32_t(unsigned char*)>& fill,
                                unsigned char* buffer) {
    LayoutProbe probe;
    // Two canaries: a last field that happens to equal one canary byte cannot
    // equal both.
    std::size_t written = 0;
    for (const unsigned char canary : {static_cast<unsigned char>(0xA5), static_cast<unsigned char>(0x5A)}) {
        std::memset(buffer, canary, kBufferBytes);
        probe.status = fill(buffer);
        if (probe.status != 0) return probe;
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

bool has_xcd_activity(const unsigned char* t, const PublicLayout& layout, std::uint32_t xcps,
                      std::uint32_t xccs_per_xcp) noexcept {
    if (layout.xcp_stride == 0 || content_revision(t) < 6) return false;
    // The table holds at most kMaxXcp partitions of kMaxXcc XCCs: a topology
    // beyond that cannot be read from it (per-XCD counters stay absent).
    if (xcps > kMaxXcp || xccs_per_xcp > kMaxXcc) return false;
    for (std::uint32_t p = 0; p < xcps; ++p) {
        const unsigned char* entry = t + kXcpStats + p * layout.xcp_stride;
        for (std::uint32_t x = 0; x < xccs_per_xcp; ++x) {
            if (u32_at(entry, 4 * x) != kNoData32) return true;
            if (u64_at(entry, layout.gfx_busy_acc + 8 * x) != kNoData64) return true;
        }
    }
    return false;
}

bool has_accumulators(const unsigned char* t, const PublicLayout& layout) noexcept {
    return content_revision(t) >= 6 && layout.size >= kLayoutV16.size &&
           u64_at(t, kAccumulationCounter) != kNoData64;
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

}  // namespace cuagent::amd::metrics
