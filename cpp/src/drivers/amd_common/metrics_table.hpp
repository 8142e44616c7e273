// One GPU's gpu_metrics table as both AMD drivers read it: the buffer the
// library fills, the layout it was measured to write, which of the decoder's
// fields the table carries (what discovery declares from it), and the decoder
// that carries state from one read to the next. The drivers differ only in the
// call that fills the buffer and in which of a GPU's devices answers it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "compute_topology.hpp"
#include "gpu_metrics.hpp"
#include "gpu_metrics_decoder.hpp"

namespace cuagent::amd {

class MetricsTable {
public:
    static constexpr std::size_t kNoSource = ~std::size_t{0};

    // Allocates the buffer (metrics::kBufferBytes): discovery, never a read.
    MetricsTable();

    // Slow path: asks each of `sources` (a GPU's devices, primary first) for
    // the table through `fetch(source, buffer)`, which returns the library's
    // status (0: success), until one answers in a layout this code can read.
    // Returns that source's position in `sources`, kNoSource when none does
    // (the table is then absent).
    template <typename Source, typename Fetch>
    std::size_t probe(const std::vector<Source>& sources, Fetch fetch) {
        for (std::size_t i = 0; i < sources.size(); ++i) {
            const metrics::LayoutProbe p = metrics::probe_public_layout(
                [&](unsigned char* buffer) { return static_cast<std::uint32_t>(fetch(sources[i], buffer)); },
                buffer_.get());
            if (p.status != 0 || p.layout.size == 0) continue;
            present_ = true;
            layout_ = p.layout;
            return i;
        }
        return kNoSource;
    }

    bool present() const { return present_; }
    const metrics::PublicLayout& layout() const { return layout_; }
    // The content revision of the table probed; 0 when absent.
    unsigned revision() const { return present_ ? metrics::content_revision(buffer_.get()) : 0u; }

    // What the probed table carries, each the field the decoder reads for it.
    bool has_gfx_activity() const { return has(metrics::kAverageGfxActivity); }
    bool has_umc_activity() const { return has(metrics::kAverageUmcActivity); }
    bool has_power() const;
    bool has_hotspot_temperature() const { return has(metrics::kTemperatureHotspot); }
    bool has_graphics_clock() const;
    bool has_memory_clock() const { return has(metrics::kCurrentUclk); }
    // indep_throttle_status: in tables up to 1.5 of a layout longer than 96 bytes.
    bool has_throttle() const;
    // The 1.6+ accumulators the violation ratios come from.
    bool has_accumulators() const;
    // Per-XCD activity for the GPU's compute partitions.
    bool has_xcd_activity(const XcdShape& shape) const;

    // Slow path: where the decoder writes, for the GPU's partition shape and
    // its XCCs in all (for the clocks). Forgets every earlier table.
    void configure(const XcdShape& shape, std::uint32_t xccs_total, const TableTargets& targets);

    // The buffer a read fills, then decodes into `values`: hot path, no
    // allocation (TableDecoder::decode says what a stale table writes).
    unsigned char* buffer() noexcept { return buffer_.get(); }
    bool decode(float* values) noexcept { return decoder_.decode(buffer_.get(), values); }

private:
    bool has(std::size_t offset16) const { return present_ && metrics::has_u16(buffer_.get(), offset16); }

    std::unique_ptr<unsigned char[]> buffer_;
    bool present_ = false;
    metrics::PublicLayout layout_{0, 0, 0, 0};
    TableDecoder decoder_;  // read-to-read state: the sampler thread only
};

}  // namespace cuagent::amd
