#include "cuagent/slot_ring.hpp"

#include <stdexcept>

namespace cuagent {

namespace {
std::uint64_t round_up_pow2(std::size_t n) {
    std::uint64_t p = 2;
    while (p < n) p <<= 1;
    return p;
}
}  // namespace

SlotRing::SlotRing(std::size_t slot_bytes, std::size_t capacity) {
    if (slot_bytes == 0) throw std::invalid_argument("SlotRing: slot_bytes must be > 0");
    if (capacity == 0 || capacity > (std::size_t{1} << 24))
        throw std::invalid_argument("SlotRing: capacity must be in 1..16777216");
    capacity_ = round_up_pow2(capacity);
    mask_ = capacity_ - 1;
    // Round slots to whole cache lines so neighbouring samples never share one.
    stride_ = (slot_bytes + 63) / 64 * 64;
    const std::size_t bytes = stride_ * static_cast<std::size_t>(capacity_);
    storage_.reset(static_cast<std::byte*>(
        ::operator new[](bytes, std::align_val_t{kFalseSharingRange})));
}

}  // namespace cuagent
