// Single-producer single-consumer ring of fixed-size byte slots.
//
// The sampler (producer) claims a slot, lets the driver write a sample straight
// into it and publishes it; the aggregator (consumer) reads it in place and
// pops it. Neither side ever blocks or allocates: a full ring makes try_claim()
// return nullptr and the producer counts a drop. The slot size is chosen at run
// time because a sample's size depends on the device (132 SMs vs 304 CUs).
//
// Protocol (as in rigtorp/SPSCQueue and folly's ProducerConsumerQueue): head_
// and tail_ are free-running 64-bit counters, each written by one side only and
// on its own cache line; each side keeps a private copy of the other's counter
// and reloads it (acquire) only when the ring looks full or empty.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>

namespace cuagent {

// 128 bytes: adjacent-line prefetch on x86 pulls cache lines in pairs.
inline constexpr std::size_t kFalseSharingRange = 128;

class SlotRing {
public:
    // capacity is rounded up to a power of two (at least 2).
    SlotRing(std::size_t slot_bytes, std::size_t capacity);
    SlotRing(const SlotRing&) = delete;
    SlotRing& operator=(const SlotRing&) = delete;

    // Producer side.
    void* try_claim() noexcept {
        const std::uint64_t head = head_.load(std::memory_order_relaxed);  // only we write it
        if (head - tail_cache_ == capacity_) {
            // Looks full: the consumer may have moved on. Acquire pairs with the
            // release in pop(), so the slot it freed is no longer being read.
            tail_cache_ = tail_.load(std::memory_order_acquire);
            if (head - tail_cache_ == capacity_) return nullptr;
        }
        return slot(head);
    }
    void publish() noexcept {
        // Release: the sample bytes written into the claimed slot become visible
        // to the consumer before the new head does.
        head_.store(head_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    }

    // Consumer side.
    const void* front() noexcept {
        const std::uint64_t tail = tail_.load(std::memory_order_relaxed);  // only we write it
        if (tail == head_cache_) {
            // Looks empty. Acquire pairs with publish(): we see the slot's bytes.
            head_cache_ = head_.load(std::memory_order_acquire);
            if (tail == head_cache_) return nullptr;
        }
        return slot(tail);
    }
    void pop() noexcept {
        // Release: our reads of the slot finish before the producer may reuse it.
        tail_.store(tail_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    }

    std::size_t capacity() const noexcept { return static_cast<std::size_t>(capacity_); }
    std::size_t slot_bytes() const noexcept { return stride_; }

private:
    void* slot(std::uint64_t index) const noexcept {
        return storage_.get() + (index & mask_) * stride_;
    }

    struct AlignedDelete {
        void operator()(std::byte* p) const noexcept {
            ::operator delete[](p, std::align_val_t{kFalseSharingRange});
        }
    };

    alignas(kFalseSharingRange) std::atomic<std::uint64_t> head_{0};  // written by producer
    std::uint64_t tail_cache_ = 0;                                  // producer's view of tail_
    alignas(kFalseSharingRange) std::atomic<std::uint64_t> tail_{0};  // written by consumer
    std::uint64_t head_cache_ = 0;                                  // consumer's view of head_
    alignas(kFalseSharingRange) std::uint64_t capacity_ = 0;
    std::uint64_t mask_ = 0;
    std::size_t stride_ = 0;
    std::unique_ptr<std::byte[], AlignedDelete> storage_;
};

static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "the ring's counters must be lock-free");

}  // namespace cuagent
