// A device whose reads stall, beside one that does not, under the sanitizers.
// Device 1 is read on its own reader thread and stalls one read in 150 for
// 60 ms (six 10 ms windows). Readers of latest() check that no window is ever
// published twice or out of order (a stalled sample arriving after its window
// went out used to publish that window again) and that every window holds
// exactly its device's values; at the end the stalled device must have missed
// windows, counted skipped reads, and still be sampled.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <thread>
#include <vector>

#include "check.hpp"
#include "cuagent/engine.hpp"

using namespace cuagent;

namespace {

constexpr std::uint32_t kUnits = 8;

class StallingDriver final : public Driver {
public:
    StallingDriver() {
        for (std::uint32_t d = 0; d < 2; ++d) {
            DeviceDescription dev;
            dev.id = "stall-" + std::to_string(d);
            dev.index = d;
            dev.vendor = "mock";
            dev.model = "stalling";
            dev.backend = "test";
            dev.unit_kind = "sm";
            dev.units = kUnits;
            dev.levels = {"sm"};
            dev.counts = {kUnits};
            dev.partitions = {Partition{"0", "whole", kUnits, {}, 0, ""}};
            dev.counters.push_back({"active", "sm", "ratio", "", Aggregation::Mean, "sm_active"});
            dev.counters.push_back({"power", "device", "W", "", Aggregation::Mean, ""});
            devices_.push_back(dev);
        }
    }
    std::string name() const override { return "test"; }
    std::size_t device_count() const override { return devices_.size(); }
    const DeviceDescription& device(std::size_t i) const override { return devices_[i]; }
    bool read_may_block(std::size_t i) const override { return i == 1; }
    ReadStatus read(std::size_t d, std::int64_t, float* values, char*, std::size_t) noexcept override {
        if (d == 1 && ++reads_of_1_ % 150 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(60));
        for (std::uint32_t i = 0; i <= kUnits; ++i) values[i] = value_of(d);
        return ReadStatus::Ok;
    }
    static float value_of(std::size_t d) { return d == 0 ? 0.25f : 0.75f; }

private:
    std::vector<DeviceDescription> devices_;
    std::uint64_t reads_of_1_ = 0;  // device 1's reader thread only
};

}  // namespace

int main() {
    auto driver = std::make_shared<StallingDriver>();
    EngineConfig config;
    config.rate_hz = 2000;
    config.window_ns = 10'000'000;
    Engine engine(driver, config);
    engine.start();

    std::atomic<bool> done{false};
    std::atomic<std::uint64_t> checked{0};
    auto watch = [&](std::size_t device) {
        WindowResult w;
        std::uint64_t last_seq = 0;
        std::int64_t last_end = 0;
        while (!done.load()) {
            if (engine.latest(device, w) && w.seq != last_seq) {
                CHECK(w.seq > last_seq, "device %zu: window %llu after %llu", device,
                      (unsigned long long)w.seq, (unsigned long long)last_seq);
                CHECK(w.t_end_ns > last_end, "device %zu: window ending %lld published again (or earlier) after %lld",
                      device, (long long)w.t_end_ns, (long long)last_end);
                CHECK(w.samples > 0, "device %zu: an empty window was published", device);
                for (std::size_t i = 0; i < w.mean.size(); ++i)
                    CHECK(w.mean[i] == StallingDriver::value_of(device), "device %zu value %zu: %f", device, i, w.mean[i]);
                last_seq = w.seq;
                last_end = w.t_end_ns;
                checked.fetch_add(1);
            }
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    };
    std::thread w0(watch, 0), w1(watch, 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    done.store(true);
    w0.join();
    w1.join();
    engine.stop();

    const EngineStats s = engine.stats();
    const DeviceStats& healthy = s.devices[0];
    const DeviceStats& stalling = s.devices[1];
    CHECK(!healthy.own_thread && stalling.own_thread, "device 1 must be read on its own thread, device 0 inline");
    CHECK(stalling.windows_missed > 0, "device 1 stalled through whole windows but missed none");
    CHECK(stalling.skipped_reads > 0, "device 1's stalls skipped no reads");
    CHECK(stalling.samples > 0 && healthy.samples > 0, "a device was never sampled");
    CHECK(checked.load() > 0, "no window was ever seen");
    std::printf("stress_stall: %llu windows checked; healthy: %llu windows, %llu missed; stalling: %llu windows, "
                "%llu missed, %llu late samples, %llu skipped reads: passed\n",
                (unsigned long long)checked.load(), (unsigned long long)healthy.windows,
                (unsigned long long)healthy.windows_missed, (unsigned long long)stalling.windows,
                (unsigned long long)stalling.windows_missed, (unsigned long long)stalling.late_samples,
                (unsigned long long)stalling.skipped_reads);
    return 0;
}
