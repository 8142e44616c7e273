// The mock driver under the sanitizers: every preset x scenario simulated for a
// few seconds at two read cadences. Checks that read() never allocates, that
// values stay in their physical ranges, and that the result does not depend on
// how often the device was read (determinism).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "check.hpp"
#include "cuagent/drivers/mock.hpp"
#include "cuagent/sample_layout.hpp"

namespace {
bool g_counting = false;
long g_allocations = 0;
}  // namespace

// Count heap allocations made while a read is in progress.
void* operator new(std::size_t n) {
    if (g_counting) ++g_allocations;
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

using namespace cuagent;

namespace {

constexpr std::int64_t kStart = 5'000'000'000;

std::vector<float> read_at(Driver& d, std::int64_t t, const SampleLayout& layout) {
    std::vector<float> v(layout.values(), NAN);
    char detail[128];
    g_counting = true;
    const ReadStatus s = d.read(0, t, v.data(), detail, sizeof detail);
    g_counting = false;
    CHECK(s == ReadStatus::Ok, "read failed at %lld", static_cast<long long>(t));
    return v;
}

void check_ranges(const DeviceDescription& desc, const SampleLayout& layout, const std::vector<float>& v) {
    for (std::size_t c = 0; c < desc.counters.size(); ++c) {
        const auto& spec = desc.counters[c];
        const auto& slot = layout.slot(c);
        for (std::uint32_t e = 0; e < slot.elements; ++e) {
            const float x = v[slot.offset + e];
            CHECK(std::isfinite(x), "%s %s[%u] not finite", desc.model.c_str(), spec.name.c_str(), e);
            if (spec.unit == "ratio")
                CHECK(x >= 0.0f && x <= 1.0f, "%s %s[%u] = %g out of [0,1]", desc.model.c_str(),
                      spec.name.c_str(), e, static_cast<double>(x));
            else
                CHECK(x >= 0.0f, "%s %s = %g negative", desc.model.c_str(), spec.name.c_str(),
                      static_cast<double>(x));
        }
    }
}

}  // namespace

int main() {
    {
        // The counter itself works (so a zero below means something).
        g_counting = true;
        int* volatile probe = new int(1);
        g_counting = false;
        delete probe;
        CHECK(g_allocations == 1, "allocation counter broken (%ld)", g_allocations);
        g_allocations = 0;
    }
    long reads = 0;
    for (const auto& preset : mock_presets()) {
        for (const auto& scenario : mock_scenarios()) {
            MockDeviceSpec spec;
            spec.preset = preset;
            spec.scenario = scenario;
            spec.units = preset == "generic" ? 40 : 0;
            auto dense = make_mock_driver({spec}, 42);
            auto sparse = make_mock_driver({spec}, 42);
            const SampleLayout layout(dense->device(0));
            read_at(*sparse, kStart, layout);
            // 1.5 s at 2 kHz on one driver, every 250 ms on the other.
            for (std::int64_t t = kStart; t <= kStart + 1'500'000'000; t += 500'000) {
                const auto v = read_at(*dense, t, layout);
                ++reads;
                check_ranges(dense->device(0), layout, v);
                if ((t - kStart) % 250'000'000 == 0 && t > kStart) {
                    const auto w = read_at(*sparse, t, layout);
                    for (std::size_t i = 0; i < v.size(); ++i)
                        CHECK(v[i] == w[i], "%s/%s: value %zu differs at t=%lld with read cadence",
                              preset.c_str(), scenario.c_str(), i, static_cast<long long>(t));
                }
            }
        }
    }
    {
        // Faults: lost, back (a reset), read errors; none of it allocates either.
        MockDeviceSpec spec;
        spec.faults.lost_at_s = 0.3;
        spec.faults.back_at_s = 0.6;
        spec.faults.read_error_rate = 0.1;
        auto d = make_mock_driver({spec}, 7);
        const SampleLayout layout(d->device(0));
        std::vector<float> v(layout.values());
        char detail[128];
        int seen[3] = {0, 0, 0};
        for (std::int64_t t = kStart; t <= kStart + 1'500'000'000; t += 500'000) {
            g_counting = true;
            const ReadStatus s = d->read(0, t, v.data(), detail, sizeof detail);
            g_counting = false;
            ++seen[static_cast<int>(s)];
            ++reads;
        }
        CHECK(seen[0] > 0 && seen[1] > 0 && seen[2] > 0, "ok/error/lost = %d/%d/%d", seen[0], seen[1],
              seen[2]);
    }
    CHECK(g_allocations == 0, "read() allocated %ld times", g_allocations);
    std::printf("check_mock: %ld reads over every preset x scenario, no allocation, deterministic\n", reads);
    return 0;
}
