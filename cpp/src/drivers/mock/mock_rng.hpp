// The mock's only source of randomness: xoshiro256** seeded through splitmix64.
// Everything random in a simulated device is drawn from one of these, in event
// order, which is what makes a device a function of (seed, index, time).
#pragma once

#include <cmath>
#include <cstdint>

namespace cuagent::mock {

// splitmix64 finaliser: a good 64-bit mix, also used to hash (seed, device,
// time) into the per-read fault decisions.
inline std::uint64_t mix64(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// Uniform in [0, 1) from the top 53 bits.
inline double unit_interval(std::uint64_t x) {
    return static_cast<double>(x >> 11) * 0x1.0p-53;
}

class Rng {
public:
    explicit Rng(std::uint64_t seed) {
        std::uint64_t x = seed;
        for (auto& word : s_) {
            x += 0x9e3779b97f4a7c15ull;
            word = mix64(x);
        }
    }

    std::uint64_t next() {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }

    double uniform() { return unit_interval(next()); }
    // In [lo, hi] (integers).
    std::uint32_t between(std::uint32_t lo, std::uint32_t hi) {
        if (hi <= lo) return lo;
        return lo + static_cast<std::uint32_t>(next() % (std::uint64_t{hi} - lo + 1));
    }
    double exponential(double mean) { return -mean * std::log1p(-uniform()); }
    // Log-normal with the given median; sigma is the spread of log(x).
    double lognormal(double median, double sigma) {
        if (sigma <= 0.0) return median;
        return median * std::exp(sigma * normal());
    }

private:
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    double normal() {
        // Sum of four uniforms, rescaled: close enough to a normal for spreads
        // of durations, bounded at +-3.46 sigma (no absurd outliers), and far
        // cheaper than Box-Muller on the per-block path.
        const std::uint64_t a = next(), b = next();
        const double sum = static_cast<double>(a >> 32) + static_cast<double>(a & 0xffffffffu) +
                           static_cast<double>(b >> 32) + static_cast<double>(b & 0xffffffffu);
        return (sum * 0x1.0p-32 - 2.0) * 1.7320508075688772;
    }
    std::uint64_t s_[4];
};

}  // namespace cuagent::mock
