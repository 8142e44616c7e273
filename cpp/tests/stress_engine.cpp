// The engine end to end under the sanitizers: a sampler at 10 kHz over four
// synthetic devices (two read inline, two on reader threads), readers hammering latest()/stats()/drain_events() from
// other threads, and start/stop cycles from a control thread. Every window a
// reader sees must be internally consistent (each device writes a constant, so
// every mean and max equals it exactly), windows never go backwards within a
// run, and the lost device raises its event.
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "check.hpp"
#include "cuagent/engine.hpp"

using namespace cuagent;

namespace {

class ConstantDriver final : public Driver {
public:
    explicit ConstantDriver(std::size_t devices) {
        for (std::size_t d = 0; d < devices; ++d) {
            DeviceDescription dev;
            dev.id = "const-" + std::to_string(d);
            dev.index = static_cast<std::uint32_t>(d);
            dev.vendor = "mock";
            dev.model = "constant";
            dev.backend = "test";
            dev.unit_kind = "sm";
            dev.units = 132;
            dev.levels = {"gpc", "sm"};
            dev.counts = {6, 132};
            dev.layout = {std::vector<std::uint16_t>(132)};
            for (std::uint16_t u = 0; u < 132; ++u) dev.layout[0][u] = static_cast<std::uint16_t>(u / 22);
            dev.partitions = {Partition{"0", "whole", 132, {}, 0, ""}};
            for (const char* name : {"active", "occupancy", "issue", "tensor", "mem_stall"})
                dev.counters.push_back({name, "sm", "ratio", "", Aggregation::Mean, ""});
            dev.counters[0].rollup = "sm_active";
            dev.counters.push_back({"power", "device", "W", "", Aggregation::Mean, ""});
            devices_.push_back(dev);
            values_.push_back(SampleLayout(dev).values());
        }
    }
    std::string name() const override { return "test"; }
    std::size_t device_count() const override { return devices_.size(); }
    const DeviceDescription& device(std::size_t i) const override { return devices_[i]; }
    // Devices 0 and 1 are read inline on the sampler thread, 2 and 3 on reader
    // threads of their own: both paths under the sanitizers.
    bool read_may_block(std::size_t i) const override { return i >= 2; }
    ReadStatus read(std::size_t d, std::int64_t, float* values, char* detail, std::size_t size) noexcept override {
        if (d == 3 && ++reads_of_3_ > 500) {  // device 3 falls off the bus after 500 reads
            std::snprintf(detail, size, "synthetic loss");
            return ReadStatus::Lost;
        }
        for (std::uint32_t i = 0; i < values_[d]; ++i) values[i] = value_of(d);
        return ReadStatus::Ok;
    }
    static float value_of(std::size_t d) { return 0.125f + 0.25f * static_cast<float>(d % 3); }

private:
    std::vector<DeviceDescription> devices_;
    std::vector<std::uint32_t> values_;
    std::uint64_t reads_of_3_ = 0;  // device 3's reader thread only
};

}  // namespace

int main() {
    auto driver = std::make_shared<ConstantDriver>(4);
    EngineConfig config;
    config.rate_hz = 10'000;
    config.window_ns = 20'000'000;
    Engine engine(driver, config);

    std::atomic<bool> done{false};
    std::atomic<std::uint64_t> windows_checked{0}, lost_events{0};
    auto reader = [&](std::size_t device) {
        WindowResult w;
        std::uint64_t last_seq = 0;
        while (!done.load()) {
            if (engine.latest(device, w)) {
                if (w.seq < last_seq) last_seq = 0;  // a restart begins numbering afresh
                CHECK(w.seq >= last_seq, "window went back");
                last_seq = w.seq;
                const float v = ConstantDriver::value_of(device);
                for (std::size_t i = 0; i < w.mean.size(); ++i) {
                    CHECK(std::fabs(w.mean[i] - v) < 1e-6f, "device %zu value %zu mean %f != %f", device, i, w.mean[i], v);
                    CHECK(w.max[i] == v, "device %zu max %f != %f", device, w.max[i], v);
                }
                CHECK(w.samples > 0, "an empty window was published");
                // What the Python binding does next, while another thread may
                // be restarting the engine: read the plan and the clock offset.
                CHECK(engine.plan(device).layout.values() == w.mean.size(), "plan and window disagree");
                (void)engine.realtime_offset_ns();
                (void)engine.running();
                CHECK(std::fabs(w.idle_units - (1.0f - v) * 132.0f) < 1e-3f, "idle_units %f", w.idle_units);
                windows_checked.fetch_add(1);
            }
            (void)engine.stats();
            std::vector<EngineEvent> events;
            engine.drain_events(events);
            for (const auto& e : events)
                if (e.type == EventType::DeviceLost) {
                    CHECK(e.device == 3, "lost event for device %u", e.device);
                    lost_events.fetch_add(1);
                }
        }
    };
    std::vector<std::thread> readers;
    for (std::size_t d = 0; d < 4; ++d) readers.emplace_back(reader, d);

    for (int cycle = 0; cycle < 4; ++cycle) {
        engine.start();
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
        engine.stop();
        engine.stop();  // idempotent
    }
    engine.start();
    bool threw = false;
    try {
        engine.start();
    } catch (const std::logic_error&) {
        threw = true;
    }
    CHECK(threw, "a second start() must throw");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    done.store(true);
    for (auto& t : readers) t.join();
    const EngineStats s = engine.stats();
    // Destroying a running engine must stop it cleanly (the destructor runs last).
    CHECK(windows_checked.load() > 0, "no window was ever seen");
    CHECK(lost_events.load() >= 1, "device 3 was lost but no event came");
    CHECK(s.samples > 0 && s.ticks > 0, "nothing sampled");
    std::printf("stress_engine: %llu windows checked, %llu lost events, %llu ticks, %llu skipped, %llu drops: passed\n",
                (unsigned long long)windows_checked.load(), (unsigned long long)lost_events.load(),
                (unsigned long long)s.ticks, (unsigned long long)s.skipped_ticks, (unsigned long long)s.drops);
    return 0;
}
