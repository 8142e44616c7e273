// Two sources per device at different rates, under the sanitizers.
//
// Each engine device draws from a slow source (read every 10 ms on a reader
// thread of its own, like NVML's 100 ms refresh, and stalling one read in 25
// for 40 ms) and a fast one (every tick, inline on the sampler thread, like a
// high-rate CUPTI source). One engine has the slow source as its primary
// (it describes the devices) and the fast one as an extra source, the other
// engine the other way round. Each source writes, besides constants, the millisecond of
// its read (`*_ms`), so a watcher of latest() can check, for every window,
// that each source's values come from reads inside that window: merged at the
// right offsets, never stale (a stalled source's counters are absent, never
// the last ones again) and never misplaced. The stalls must leave windows with
// the fast source's counters and without the slow one's. Sources that would
// not fit their device's layout are refused up front.
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
constexpr std::int64_t kMsWrap = std::int64_t{1} << 20;  // a float holds it exactly

float millisecond_of(std::int64_t t_ns) { return static_cast<float>((t_ns / 1'000'000) % kMsWrap); }

DeviceDescription base_device(std::uint32_t d, std::uint32_t units = kUnits) {
    DeviceDescription dev;
    dev.id = "merged-" + std::to_string(d);
    dev.index = d;
    dev.vendor = "mock";
    dev.model = "two sources";
    dev.backend = "test";
    dev.unit_kind = "sm";
    dev.units = units;
    dev.levels = {"sm"};
    dev.counts = {units};
    dev.partitions = {Partition{"0", "whole", units, {}, 0, ""}};
    return dev;
}

// Device-level `power` and `slow_ms`, every 10 ms, reads may block (and do).
class SlowSource final : public Driver {
public:
    SlowSource() {
        for (std::uint32_t d = 0; d < 2; ++d) {
            DeviceDescription dev = base_device(d);
            dev.counters.push_back({"power", "device", "W", "", Aggregation::Mean, ""});
            dev.counters.push_back({"slow_ms", "device", "count", "", Aggregation::Mean, ""});
            devices_.push_back(dev);
        }
    }
    std::string name() const override { return "slow"; }
    std::size_t device_count() const override { return devices_.size(); }
    const DeviceDescription& device(std::size_t i) const override { return devices_[i]; }
    std::int64_t min_read_interval_ns(std::size_t) const override { return 10'000'000; }
    ReadStatus read(std::size_t d, std::int64_t now_ns, float* values, char*, std::size_t) noexcept override {
        if (++reads_[d] % 25 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(40));
        values[0] = power_of(d);
        values[1] = millisecond_of(now_ns);
        return ReadStatus::Ok;
    }
    static float power_of(std::size_t d) { return 100.0f + static_cast<float>(d); }

private:
    std::vector<DeviceDescription> devices_;
    std::uint64_t reads_[2] = {0, 0};  // each device's reader thread touches its own
};

// Unit-level `active` and device-level `fast_ms`, every tick, inline.
class FastSource final : public Driver {
public:
    explicit FastSource(std::uint32_t units = kUnits) {
        for (std::uint32_t d = 0; d < 2; ++d) {
            DeviceDescription dev = base_device(d, units);
            dev.counters.push_back({"active", "sm", "ratio", "", Aggregation::Mean, "sm_active"});
            dev.counters.push_back({"fast_ms", "device", "count", "", Aggregation::Mean, ""});
            devices_.push_back(dev);
        }
    }
    std::string name() const override { return "fast"; }
    std::size_t device_count() const override { return devices_.size(); }
    const DeviceDescription& device(std::size_t i) const override { return devices_[i]; }
    bool read_may_block(std::size_t) const override { return false; }
    ReadStatus read(std::size_t d, std::int64_t now_ns, float* values, char*, std::size_t) noexcept override {
        const std::uint32_t units = devices_[d].units;
        for (std::uint32_t u = 0; u < units; ++u) values[u] = active_of(d);
        values[units] = millisecond_of(now_ns);
        return ReadStatus::Ok;
    }
    static float active_of(std::size_t d) { return d == 0 ? 0.25f : 0.75f; }

private:
    std::vector<DeviceDescription> devices_;
};

int counter_index(const DeviceDescription& d, const char* name) {
    for (std::size_t c = 0; c < d.counters.size(); ++c)
        if (d.counters[c].name == name) return static_cast<int>(c);
    return -1;
}

}  // namespace

bool refused(std::shared_ptr<Driver> primary, std::shared_ptr<Driver> extra) {
    try {
        Engine e(std::move(primary), EngineConfig{}, {{0, std::move(extra), 0}});
    } catch (const std::invalid_argument& error) {
        std::printf("stress_sources: refused as it should: %s\n", error.what());
        return true;
    }
    return false;
}

int main() {
    // A per-unit counter of 16 units cannot merge onto 8; a counter name both
    // sources give would be ambiguous.
    CHECK(refused(std::make_shared<SlowSource>(), std::make_shared<FastSource>(16)), "a misfit source was merged");
    CHECK(refused(std::make_shared<FastSource>(), std::make_shared<FastSource>()), "a duplicate counter was merged");

    EngineConfig config;
    config.rate_hz = 2000;
    config.window_ns = 10'000'000;
    // Each engine's own drivers: a device's reads must never overlap, and two
    // engines reading one driver's device would.
    auto slow = std::make_shared<SlowSource>();
    auto fast = std::make_shared<FastSource>();
    Engine engine(slow, config, {{0, fast, 0}, {1, fast, 1}});
    auto slow_b = std::make_shared<SlowSource>();
    auto fast_b = std::make_shared<FastSource>();
    Engine reversed(fast_b, config, {{0, slow_b, 0}, {1, slow_b, 1}});

    struct Seen {
        std::atomic<std::uint64_t> windows{0}, fast_only{0}, both{0};
    };
    std::atomic<bool> done{false};
    auto watch = [&](Engine& e, std::size_t device, Seen& seen) {
        const DeviceDescription& desc = e.device(device);
        const auto& layout = e.plan(device).layout;
        const int power = counter_index(desc, "power"), slow_ms = counter_index(desc, "slow_ms");
        const int active = counter_index(desc, "active"), fast_ms = counter_index(desc, "fast_ms");
        CHECK(power >= 0 && slow_ms >= 0 && active >= 0 && fast_ms >= 0, "a source's counters are missing");
        WindowResult w;
        std::uint64_t last_seq = 0;
        while (!done.load()) {
            if (!e.latest(device, w) || w.seq == last_seq) {
                std::this_thread::sleep_for(std::chrono::microseconds(200));
                continue;
            }
            if (w.seq < last_seq) last_seq = 0;
            last_seq = w.seq;
            // The milliseconds a read inside this window can carry.
            const float first_ms = millisecond_of(w.t_end_ns - w.window_ns);
            const float last_ms = millisecond_of(w.t_end_ns - 1);
            auto in_window = [&](int counter) {
                const std::uint32_t i = layout.slot(static_cast<std::size_t>(counter)).offset;
                if (first_ms > last_ms) return true;  // the millisecond count wrapped: nothing to compare
                return w.mean[i] >= first_ms && w.max[i] <= last_ms;
            };
            const bool has_slow = w.present[static_cast<std::size_t>(slow_ms)] != 0;
            const bool has_fast = w.present[static_cast<std::size_t>(fast_ms)] != 0;
            CHECK(has_slow == (w.present[static_cast<std::size_t>(power)] != 0), "one source, half present");
            CHECK(has_fast == (w.present[static_cast<std::size_t>(active)] != 0), "one source, half present");
            if (has_slow) {
                CHECK(in_window(slow_ms), "device %zu: slow values from outside the window (stale or misplaced)", device);
                CHECK(w.mean[layout.slot(static_cast<std::size_t>(power)).offset] == SlowSource::power_of(device),
                      "device %zu: power merged at the wrong place", device);
            }
            if (has_fast) {
                CHECK(in_window(fast_ms), "device %zu: fast values from outside the window", device);
                const auto& slot = layout.slot(static_cast<std::size_t>(active));
                for (std::uint32_t u = 0; u < slot.elements; ++u)
                    CHECK(w.mean[slot.offset + u] == FastSource::active_of(device), "device %zu: active merged wrong", device);
            }
            seen.windows.fetch_add(1);
            if (has_fast && !has_slow) seen.fast_only.fetch_add(1);
            if (has_fast && has_slow) seen.both.fetch_add(1);
        }
    };
    Seen seen[4];
    engine.start();
    reversed.start();
    std::vector<std::thread> watchers;
    watchers.emplace_back(watch, std::ref(engine), 0, std::ref(seen[0]));
    watchers.emplace_back(watch, std::ref(engine), 1, std::ref(seen[1]));
    watchers.emplace_back(watch, std::ref(reversed), 0, std::ref(seen[2]));
    watchers.emplace_back(watch, std::ref(reversed), 1, std::ref(seen[3]));
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    done.store(true);
    for (auto& t : watchers) t.join();
    engine.stop();
    reversed.stop();

    for (int i = 0; i < 4; ++i) {
        CHECK(seen[i].windows.load() > 0, "watcher %d saw no window", i);
        CHECK(seen[i].both.load() > 0, "watcher %d never saw both sources merged in one window", i);
        // The slow source stalls for four windows at a time: those windows
        // carry the fast counters alone, never the slow ones' last values.
        CHECK(seen[i].fast_only.load() > 0, "watcher %d: the slow source's stalls left no window without it", i);
    }
    for (Engine* e : {&engine, &reversed}) {
        const EngineStats s = e->stats();
        for (const auto& d : s.devices) {
            CHECK(d.own_thread, "the slow source must be read on its own thread");
            CHECK(d.skipped_reads > 0, "the slow source's stalls skipped no reads");
        }
    }
    std::printf("stress_sources: windows seen %llu/%llu/%llu/%llu, with both sources %llu/%llu/%llu/%llu, "
                "fast only %llu/%llu/%llu/%llu: passed\n",
                (unsigned long long)seen[0].windows.load(), (unsigned long long)seen[1].windows.load(),
                (unsigned long long)seen[2].windows.load(), (unsigned long long)seen[3].windows.load(),
                (unsigned long long)seen[0].both.load(), (unsigned long long)seen[1].both.load(),
                (unsigned long long)seen[2].both.load(), (unsigned long long)seen[3].both.load(),
                (unsigned long long)seen[0].fast_only.load(), (unsigned long long)seen[1].fast_only.load(),
                (unsigned long long)seen[2].fast_only.load(), (unsigned long long)seen[3].fast_only.load());
    return 0;
}
