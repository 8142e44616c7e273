// The CUPTI source under the sanitizers, against the fake libcupti
// (tests/fakes/fake_cupti.c, built beside this test): two mock devices with a
// CUPTI source each at 2 kHz, an engine at 1 kHz reading them inline, while a
// control thread pauses and resumes the source and the fake fails decodes now
// and then (a lost device, NOT_INITIALIZED). Checks that windows keep coming,
// that CUPTI counters appear with their values while sampling, that nothing
// is left enabled afterwards and cuptiProfilerDeInitialize ran exactly once.
#include <dlfcn.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <thread>
#include <vector>

#include "check.hpp"
#include "cuagent/drivers/cupti.hpp"
#include "cuagent/drivers/mock.hpp"
#include "cuagent/engine.hpp"

using namespace cuagent;

#ifndef FAKE_CUPTI_PATH
#error "FAKE_CUPTI_PATH must name the fake libcupti"
#endif

int main() {
    void* fake = dlopen(FAKE_CUPTI_PATH, RTLD_NOW | RTLD_LOCAL);
    CHECK(fake != nullptr, "dlopen %s: %s", FAKE_CUPTI_PATH, dlerror());
    auto fail = reinterpret_cast<void (*)(const char*, int, int)>(dlsym(fake, "fake_cupti_fail"));
    auto enabled = reinterpret_cast<int (*)()>(dlsym(fake, "fake_cupti_enabled"));
    auto deinits = reinterpret_cast<int (*)()>(dlsym(fake, "fake_cupti_deinit_count"));
    auto bad = reinterpret_cast<int (*)()>(dlsym(fake, "fake_cupti_bad_structs"));
    CHECK(fail && enabled && deinits && bad, "fake controls missing");

    std::uint64_t windows_with_pm = 0, windows = 0;
    {
        std::shared_ptr<Driver> mock = make_mock_driver({MockDeviceSpec{}, MockDeviceSpec{}}, 7);
        CuptiOptions o;
        o.library = {FAKE_CUPTI_PATH};
        o.devices = {0, 1};
        o.rate_hz = 2000;
        o.retry_min_ns = 5'000'000;
        o.retry_max_ns = 20'000'000;
        std::shared_ptr<CuptiSource> cupti = make_cupti_source(o);
        EngineConfig config;
        config.rate_hz = 1000;
        Engine engine(mock, config, {ExtraSource{0, cupti, 0}, ExtraSource{1, cupti, 1}});
        int pm = -1;
        for (std::size_t c = 0; c < engine.device(0).counters.size(); ++c)
            if (engine.device(0).counters[c].name == "pm_sm_active") pm = static_cast<int>(c);
        CHECK(pm >= 0, "pm_sm_active not merged into the device");
        engine.start();

        std::atomic<bool> stop{false};
        std::thread control([&] {
            for (int round = 0; !stop.load(); ++round) {
                std::this_thread::sleep_for(std::chrono::milliseconds(37));
                if (round % 5 == 1) cupti->pause("stress");
                if (round % 5 == 2) cupti->resume();
                if (round % 7 == 3) fail("cuptiPmSamplingDecodeData", 2, 1);   // a device lost
                if (round % 11 == 5) fail("cuptiPmSamplingDecodeData", 15, 1);  // NOT_INITIALIZED
                (void)cupti->status();
                (void)cupti->drain_events();
            }
        });
        WindowResult w;
        std::uint64_t seq = 0;
        // Until enough windows went by (slow under the sanitizers on a busy machine).
        const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        while (std::chrono::steady_clock::now() < end && (windows < 20 || windows_with_pm < 5)) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            if (!engine.latest(0, w) || w.seq == seq) continue;
            seq = w.seq;
            ++windows;
            if (w.present[static_cast<std::size_t>(pm)]) {
                ++windows_with_pm;
                const auto& slot = engine.plan(0).layout.slot(static_cast<std::size_t>(pm));
                const float v = w.mean[slot.offset];
                CHECK(std::fabs(v - 0.5f) < 1e-3f, "pm_sm_active %f, the fake gives 0.5", v);
            }
        }
        stop.store(true);
        control.join();
        cupti->resume();
        engine.stop();
    }
    CHECK(windows >= 20, "only %llu windows", static_cast<unsigned long long>(windows));
    CHECK(windows_with_pm >= 5, "only %llu windows with CUPTI counters", static_cast<unsigned long long>(windows_with_pm));
    CHECK(enabled() == 0, "%d devices left enabled", enabled());
    CHECK(deinits() == 1, "cuptiProfilerDeInitialize ran %d times", deinits());
    CHECK(bad() == 0, "%d calls with a wrong structSize or pPriv", bad());
    std::printf("stress_cupti: %llu windows, %llu with CUPTI counters\n", static_cast<unsigned long long>(windows),
                static_cast<unsigned long long>(windows_with_pm));
    return 0;
}
