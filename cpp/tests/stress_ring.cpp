// SlotRing under contention: one producer pushes millions of numbered slots,
// one consumer checks that every number arrives once, in order, intact, and
// that the sum matches; a tiny ring forces constant full/empty transitions.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <thread>

#include "check.hpp"
#include "cuagent/slot_ring.hpp"

using cuagent::SlotRing;

namespace {

struct Payload {
    std::uint64_t seq;
    std::uint64_t words[13];  // a slot larger than one cache line, all derived from seq
};

void run(std::size_t capacity, std::uint64_t items) {
    SlotRing ring(sizeof(Payload), capacity);
    std::atomic<std::uint64_t> full_seen{0};
    std::thread producer([&] {
        for (std::uint64_t i = 0; i < items;) {
            void* slot = ring.try_claim();
            if (!slot) {
                full_seen.fetch_add(1, std::memory_order_relaxed);
                std::this_thread::yield();
                continue;
            }
            Payload p;
            p.seq = i;
            for (int w = 0; w < 13; ++w) p.words[w] = i * 31 + static_cast<std::uint64_t>(w);
            std::memcpy(slot, &p, sizeof p);
            ring.publish();
            ++i;
        }
    });
    std::uint64_t expected = 0, sum = 0;
    while (expected < items) {
        const void* slot = ring.front();
        if (!slot) {
            std::this_thread::yield();
            continue;
        }
        Payload p;
        std::memcpy(&p, slot, sizeof p);
        ring.pop();
        CHECK(p.seq == expected, "got %llu, expected %llu", (unsigned long long)p.seq, (unsigned long long)expected);
        for (int w = 0; w < 13; ++w)
            CHECK(p.words[w] == p.seq * 31 + static_cast<std::uint64_t>(w), "torn slot at %llu", (unsigned long long)p.seq);
        sum += p.seq;
        ++expected;
    }
    producer.join();
    CHECK(ring.front() == nullptr, "ring not empty at the end");
    CHECK(sum == items * (items - 1) / 2, "sum mismatch");
    std::printf("stress_ring: capacity %zu, %llu items in order, sum ok, producer saw full %llu times\n",
                ring.capacity(), (unsigned long long)items, (unsigned long long)full_seen.load());
}

}  // namespace

int main() {
    run(2, 200'000);        // every push meets a full ring
    run(64, 2'000'000);
    run(4096, 2'000'000);
    // A full ring refuses, and frees a slot once popped.
    SlotRing ring(8, 4);
    for (int i = 0; i < 4; ++i) {
        CHECK(ring.try_claim() != nullptr, "claim %d", i);
        ring.publish();
    }
    CHECK(ring.try_claim() == nullptr, "a full ring must refuse");
    CHECK(ring.front() != nullptr, "front of a full ring");
    ring.pop();
    CHECK(ring.try_claim() != nullptr, "a popped slot is free again");
    std::printf("stress_ring: passed\n");
    return 0;
}
