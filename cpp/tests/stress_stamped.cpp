// A source that stamps its own samples, under the sanitizers.
//
// Like CUPTI's GPU, a "hardware" thread takes a sample every 250 us, with the
// exact time it was taken, and hands the samples over in batches, late: it
// wakes every 1..12 ms, and now and then stalls for 150 ms (longer than the
// 100 ms a window waits for it). The engine's driver is an NVML-like device
// read once per window on a reader thread. Every sample carries its window's
// index (`stamped_window`, a mean) and counts 1 (`stamped_count`, a sum), so
// for every window published: the mean is its own index (no sample of
// another window in it), and the count is at most what the hardware took in
// it (none twice); and it is exactly that in most windows (the window waited:
// only a stall, or a machine too busy to run the threads for 100 ms, leaves
// one short). Samples that came after their window gave up waiting are
// counted late, never folded elsewhere.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "check.hpp"
#include "cuagent/clock.hpp"
#include "cuagent/engine.hpp"
#include "cuagent/slot_ring.hpp"

using namespace cuagent;

namespace {

constexpr std::int64_t kWindowNs = 20'000'000;
constexpr std::int64_t kSampleNs = 250'000;
constexpr std::int64_t kIndexWrap = 1024;  // a float's mean of equal values stays exact

DeviceDescription describe(const char* counter_a, Aggregation a, const char* counter_b, Aggregation b) {
    DeviceDescription dev;
    dev.id = "stamped-0";
    dev.vendor = "mock";
    dev.model = "stamped";
    dev.backend = "test";
    dev.unit_kind = "sm";
    dev.units = 4;
    dev.levels = {"sm"};
    dev.counts = {4};
    dev.partitions = {Partition{"0", "whole", 4, {}, 0, ""}};
    dev.counters.push_back({counter_a, "device", "count", "", a, ""});
    if (counter_b) dev.counters.push_back({counter_b, "device", "count", "", b, ""});
    return dev;
}

// The engine's driver: `power`, once per window, on a reader thread.
class Primary final : public Driver {
public:
    Primary() : dev_(describe("power", Aggregation::Mean, nullptr, Aggregation::Mean)) {}
    std::string name() const override { return "primary"; }
    std::size_t device_count() const override { return 1; }
    const DeviceDescription& device(std::size_t) const override { return dev_; }
    std::int64_t min_read_interval_ns(std::size_t) const override { return kWindowNs; }
    ReadStatus read(std::size_t, std::int64_t, float* values, char*, std::size_t) noexcept override {
        values[0] = 300.0f;
        return ReadStatus::Ok;
    }

private:
    DeviceDescription dev_;
};

struct Item {
    std::int64_t t_ns;
    float window;
};

class Stamped final : public Driver {
public:
    Stamped()
        : dev_(describe("stamped_count", Aggregation::Sum, "stamped_window", Aggregation::Mean)),
          ring_(sizeof(Item), 4096) {}
    std::string name() const override { return "stamped"; }
    std::size_t device_count() const override { return 1; }
    const DeviceDescription& device(std::size_t) const override { return dev_; }
    bool stamps_own_samples(std::size_t) const override { return true; }
    ReadStatus read(std::size_t, std::int64_t, float*, char*, std::size_t) noexcept override {
        reads_.fetch_add(1);
        return ReadStatus::Error;
    }
    void on_engine_start(std::int64_t window_ns, std::int64_t origin_ns) override {
        window_ns_ = window_ns;
        origin_ns_ = origin_ns;
    }
    bool take_sample(std::size_t, std::int64_t* t_ns, float* values) noexcept override {
        const void* slot = ring_.front();
        if (slot == nullptr) return false;
        const auto* item = static_cast<const Item*>(slot);
        *t_ns = item->t_ns;
        values[0] = 1.0f;
        values[1] = item->window;
        ring_.pop();
        return true;
    }
    std::int64_t complete_before_ns(std::size_t) const noexcept override {
        return complete_before_.load(std::memory_order_acquire);
    }
    std::int64_t max_delay_ns(std::size_t) const override { return 100'000'000; }

    // The hardware: runs until `stop`; returns how many samples it took in
    // each window (by index) and how many it could not hand over.
    void run(const std::atomic<bool>& stop) {
        std::mt19937 random(7);
        std::int64_t next = monotonic_ns();
        complete_before_.store(next, std::memory_order_release);
        for (int wake = 1; !stop.load(); ++wake) {
            const int ms = wake % 40 == 0 ? 150 : static_cast<int>(1 + random() % 12);
            std::this_thread::sleep_for(std::chrono::milliseconds(ms));
            const std::int64_t now = monotonic_ns();
            for (; next + kSampleNs / 2 <= now; next += kSampleNs) {  // taken and through the buffer
                const std::int64_t index = (next - origin_ns_) / window_ns_;
                void* slot = ring_.try_claim();
                if (slot == nullptr) {
                    ++dropped;
                    continue;
                }
                *static_cast<Item*>(slot) = Item{next, static_cast<float>(index % kIndexWrap)};
                ring_.publish();
                ++taken[index];
            }
            // Every sample before `next` is handed over (release, after them).
            complete_before_.store(next, std::memory_order_release);
            if (ms == 150) stalls.push_back(now - ms * 1'000'000);
        }
        complete_before_.store(std::numeric_limits<std::int64_t>::max(), std::memory_order_release);
    }
    std::uint64_t reads() const { return reads_.load(); }

    std::map<std::int64_t, std::uint32_t> taken;
    std::vector<std::int64_t> stalls;  // when each stall began
    std::uint64_t dropped = 0;

private:
    DeviceDescription dev_;
    SlotRing ring_;
    std::int64_t window_ns_ = 1, origin_ns_ = 0;
    std::atomic<std::int64_t> complete_before_{std::numeric_limits<std::int64_t>::max()};
    std::atomic<std::uint64_t> reads_{0};
};

}  // namespace

int main() {
    bool refused = false;
    try {
        Engine e(std::make_shared<Stamped>(), EngineConfig{});
    } catch (const std::invalid_argument& error) {
        std::printf("stress_stamped: refused as it should: %s\n", error.what());
        refused = true;
    }
    CHECK(refused, "a stamping source was taken as the engine's driver");

    EngineConfig config;
    config.rate_hz = 1000;
    config.window_ns = kWindowNs;
    auto primary = std::make_shared<Primary>();
    auto stamped = std::make_shared<Stamped>();
    Engine engine(primary, config, {{0, stamped, 0}});
    const auto& layout = engine.plan(0).layout;
    const std::uint32_t count_at = layout.slot(1).offset, window_at = layout.slot(2).offset;
    engine.start();
    const std::int64_t origin = -engine.realtime_offset_ns();

    std::atomic<bool> stop{false};
    std::thread hardware([&] { stamped->run(stop); });
    struct Seen {
        std::int64_t index;
        float count, window;
    };
    std::vector<Seen> seen;
    WindowResult w;
    std::uint64_t seq = 0;
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(6);
    while (std::chrono::steady_clock::now() < end) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        if (!engine.latest(0, w) || w.seq == seq) continue;
        seq = w.seq;
        if (w.present[1]) seen.push_back({(w.t_end_ns - origin) / kWindowNs - 1, w.mean[count_at], w.mean[window_at]});
    }
    stop.store(true);
    hardware.join();
    const EngineStats stats = engine.stats();
    engine.stop();

    CHECK(stamped->reads() == 0, "a stamping source was read %llu times", static_cast<unsigned long long>(stamped->reads()));
    CHECK(seen.size() >= 50, "only %zu windows with stamped samples", seen.size());
    std::size_t exact = 0, near_stall = 0, elsewhere = 0;
    for (const Seen& s : seen) {
        CHECK(s.window == static_cast<float>(s.index % kIndexWrap),
              "window %lld holds samples of another window (their mean index is %f)",
              static_cast<long long>(s.index), static_cast<double>(s.window));
        const auto it = stamped->taken.find(s.index);
        const std::uint32_t taken = it == stamped->taken.end() ? 0 : it->second;
        CHECK(s.count <= static_cast<float>(taken), "window %lld counts %f samples, %u were taken in it",
              static_cast<long long>(s.index), static_cast<double>(s.count), taken);
        if (s.count == static_cast<float>(taken)) {
            ++exact;
            continue;
        }
        bool stalled = false;
        for (std::int64_t begin : stamped->stalls)
            stalled |= begin < origin + (s.index + 1) * kWindowNs + 150'000'000 &&
                       begin + 150'000'000 > origin + s.index * kWindowNs - 100'000'000;
        ++(stalled ? near_stall : elsewhere);
    }
    CHECK(exact * 2 >= seen.size(), "only %zu of %zu windows hold every sample taken in them", exact, seen.size());
    CHECK(!stamped->stalls.empty() && stats.devices[0].late_samples > 0,
          "the stalls left no late sample (%zu stalls)", stamped->stalls.size());
    std::printf("stress_stamped: %zu windows: %zu exact, %zu short near a stall, %zu short elsewhere, %llu late "
                "samples, %llu dropped\n",
                seen.size(), exact, near_stall, elsewhere, static_cast<unsigned long long>(stats.devices[0].late_samples),
                static_cast<unsigned long long>(stamped->dropped));
    return 0;
}
