// Triple buffer: one writer publishes whole values, one reader takes the latest.
//
// The writer fills back(), then publish() swaps it with the shared middle slot;
// the reader's update() swaps the middle with its front slot when a fresh value
// is waiting. Both swaps are single atomic exchanges, so the writer (the
// aggregator thread) never waits for the reader and the reader never sees a
// half-written value. Readers that may run concurrently must serialise among
// themselves (the engine keeps one mutex per device for that, which only reader
// threads ever take).
#pragma once

#include <atomic>
#include <cstdint>

namespace cuagent {

template <class T>
class TripleBuffer {
public:
    explicit TripleBuffer(const T& initial) : slots_{initial, initial, initial} {}
    TripleBuffer(const TripleBuffer&) = delete;
    TripleBuffer& operator=(const TripleBuffer&) = delete;

    // Writer side.
    T& back() noexcept { return slots_[back_]; }
    void publish() noexcept {
        // acq_rel: release makes our writes to back() visible with the index;
        // acquire makes the reader's last reads of the slot we get back finish
        // before we overwrite it.
        back_ = static_cast<std::uint8_t>(
            middle_.exchange(static_cast<std::uint8_t>(back_ | kFresh),
                             std::memory_order_acq_rel) & kIndex);
    }

    // Reader side. Returns true if a newer value was taken.
    bool update() noexcept {
        if ((middle_.load(std::memory_order_relaxed) & kFresh) == 0) return false;
        // acq_rel: acquire pairs with publish(); release hands our old front
        // back to the writer only after our reads of it.
        front_ = static_cast<std::uint8_t>(middle_.exchange(front_, std::memory_order_acq_rel) &
                                           kIndex);
        return true;
    }
    const T& front() const noexcept { return slots_[front_]; }

private:
    static constexpr std::uint8_t kIndex = 0x3;
    static constexpr std::uint8_t kFresh = 0x4;

    T slots_[3];
    std::uint8_t back_ = 0;   // writer-owned
    std::uint8_t front_ = 2;  // reader-owned
    std::atomic<std::uint8_t> middle_{1};
};

}  // namespace cuagent
