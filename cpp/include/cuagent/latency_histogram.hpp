// Log-linear histogram of nanosecond latencies, written by one thread and read
// by any: each bucket is a relaxed atomic, so recording is wait-free and a
// reader sees counts that are each exact, if not all from the same instant.
// Resolution: exact below 16 ns, then 8 buckets per power of two (<= 12.5%).
#pragma once

#include <atomic>
#include <cstdint>

namespace cuagent {

class LatencyHistogram {
public:
    static constexpr int kBuckets = 16 + 8 * 44;

    void record(std::int64_t ns) noexcept {
        buckets_[bucket_of(ns)].fetch_add(1, std::memory_order_relaxed);
        std::int64_t seen = max_.load(std::memory_order_relaxed);
        while (ns > seen && !max_.compare_exchange_weak(seen, ns, std::memory_order_relaxed)) {}
    }

    std::uint64_t total() const noexcept {
        std::uint64_t n = 0;
        for (const auto& b : buckets_) n += b.load(std::memory_order_relaxed);
        return n;
    }

    // The q-quantile (0..1), as the midpoint of the bucket that holds it; 0 if empty.
    std::int64_t quantile(double q) const noexcept {
        const std::uint64_t n = total();
        if (n == 0) return 0;
        const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(n - 1)) + 1;
        std::uint64_t seen = 0;
        for (int i = 0; i < kBuckets; ++i) {
            seen += buckets_[i].load(std::memory_order_relaxed);
            if (seen >= rank) return midpoint(i);
        }
        return midpoint(kBuckets - 1);
    }

    std::int64_t max() const noexcept { return max_.load(std::memory_order_relaxed); }

    static int bucket_of(std::int64_t ns) noexcept {
        if (ns < 16) return ns < 0 ? 0 : static_cast<int>(ns);
        const int e = 63 - __builtin_clzll(static_cast<unsigned long long>(ns));  // >= 4
        const int sub = static_cast<int>((ns >> (e - 3)) & 7);
        const int b = 16 + (e - 4) * 8 + sub;
        return b < kBuckets ? b : kBuckets - 1;
    }

    static std::int64_t midpoint(int b) noexcept {
        if (b < 16) return b;
        const int e = (b - 16) / 8 + 4;
        const int sub = (b - 16) % 8;
        const std::int64_t lo = (std::int64_t{8} + sub) << (e - 3);
        return lo + ((std::int64_t{1} << (e - 3)) >> 1);
    }

private:
    std::atomic<std::uint64_t> buckets_[kBuckets] = {};
    std::atomic<std::int64_t> max_{0};
};

}  // namespace cuagent
