// TripleBuffer: a writer publishes millions of values whose every field is
// derived from one sequence number; a reader hammering update()/front() must
// never see a torn value and never see the sequence go backwards.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <vector>

#include "check.hpp"
#include "cuagent/triple_buffer.hpp"

int main() {
    constexpr std::uint64_t kItems = 1'000'000;
    struct Value {
        std::uint64_t seq = 0;
        std::vector<std::uint64_t> words = std::vector<std::uint64_t>(64, 0);
    };
    cuagent::TripleBuffer<Value> buffer{Value{}};
    std::atomic<bool> done{false};

    std::thread writer([&] {
        for (std::uint64_t i = 1; i <= kItems; ++i) {
            Value& v = buffer.back();
            v.seq = i;
            for (std::size_t w = 0; w < v.words.size(); ++w) v.words[w] = i ^ (w * 0x9E3779B97F4A7C15ull);
            buffer.publish();
        }
        done.store(true, std::memory_order_release);
    });

    std::uint64_t last = 0, reads = 0, fresh = 0;
    for (;;) {
        const bool finished = done.load(std::memory_order_acquire);
        if (buffer.update()) ++fresh;
        const Value& v = buffer.front();
        CHECK(v.seq >= last, "sequence went back from %llu to %llu", (unsigned long long)last, (unsigned long long)v.seq);
        for (std::size_t w = 0; w < v.words.size(); ++w)
            CHECK(v.words[w] == (v.seq ^ (w * 0x9E3779B97F4A7C15ull)) || v.seq == 0, "torn value at seq %llu", (unsigned long long)v.seq);
        last = v.seq;
        ++reads;
        if (finished && last == kItems) break;
        if (finished && !buffer.update() && last != kItems) {
            CHECK(false, "writer finished but the reader never got the last value (%llu)", (unsigned long long)last);
        }
    }
    writer.join();
    std::printf("stress_triple_buffer: %llu reads, %llu fresh values, never torn, monotonic: passed\n",
                (unsigned long long)reads, (unsigned long long)fresh);
    return 0;
}
