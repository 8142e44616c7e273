// The mock driver: devices built from a preset and a scenario, each a
// DeviceSim read at (time since its first read), plus injected faults.
#include "cuagent/drivers/mock.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <thread>

#include "common/counter_table.hpp"
#include "mock_presets.hpp"
#include "mock_rng.hpp"
#include "mock_scenarios.hpp"
#include "mock_sim.hpp"

namespace cuagent {
namespace {

using mock::DeviceSim;

constexpr std::size_t kMaxDevices = 64;

std::string fmt(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

void check_faults(const MockFaults& f, std::size_t index) {
    const std::string where = "mock device " + std::to_string(index) + ": ";
    auto bad = [&](const std::string& what, double v) {
        throw std::invalid_argument(where + what + " (got " + fmt(v) + ")");
    };
    if (!std::isfinite(f.lost_at_s)) bad("lost_at_s must be a finite number of seconds", f.lost_at_s);
    if (!std::isfinite(f.back_at_s)) bad("back_at_s must be a finite number of seconds", f.back_at_s);
    if (f.back_at_s >= 0 && f.lost_at_s < 0) bad("back_at_s needs lost_at_s >= 0", f.back_at_s);
    if (f.back_at_s >= 0 && f.back_at_s <= f.lost_at_s)
        bad("back_at_s must be after lost_at_s=" + fmt(f.lost_at_s), f.back_at_s);
    if (!(f.read_error_rate >= 0.0 && f.read_error_rate <= 1.0))
        bad("read_error_rate must be in [0, 1]", f.read_error_rate);
    if (!(f.slow_read_every_s >= 0.0 && std::isfinite(f.slow_read_every_s)))
        bad("slow_read_every_s must be >= 0", f.slow_read_every_s);
    if (!(f.slow_read_ms >= 0.0 && f.slow_read_ms <= 60000.0))
        bad("slow_read_ms must be in [0, 60000]", f.slow_read_ms);
    if (f.slow_read_every_s > 0 && f.slow_read_ms == 0)
        bad("slow_read_every_s is set but slow_read_ms is 0", f.slow_read_every_s);
    if (f.slow_read_ms > 0 && f.slow_read_every_s == 0)
        bad("slow_read_ms is set but slow_read_every_s is 0", f.slow_read_ms);
}

std::int64_t seconds_to_ns(double s) { return s < 0 ? -1 : std::llround(s * 1e9); }

// Every counter a mock device serves. Unit-level counters come from the
// blocks resident on each unit; the three that schedulers read per partition
// and device (PROTOCOL.md §3.2) are rolled up, issue and mem_stall are not.
enum Counter : std::uint32_t {
    kActive, kOccupancy, kIssue, kTensor, kMemStall,
    kPower, kTemp, kSmClock, kMemClock, kMemUsed, kDramActive, kThrottle,
};
constexpr drivers::CounterDef kCounters[] = {
    {kActive, "active", nullptr, "ratio",
     "1 when at least one warp is resident, per sample (mock: from the blocks resident on the {unit})",
     Aggregation::Mean, "sm_active"},
    {kOccupancy, "occupancy", nullptr, "ratio",
     "resident warps / maximum warps (mock: from the blocks resident on the {unit})", Aggregation::Mean,
     "sm_occupancy"},
    {kIssue, "issue", nullptr, "ratio", "issue-slot utilisation (mock: from the blocks resident on the {unit})"},
    {kTensor, "tensor", nullptr, "ratio",
     "tensor/matrix pipe active (mock: from the blocks resident on the {unit})", Aggregation::Mean,
     "tensor_active"},
    {kMemStall, "mem_stall", nullptr, "ratio",
     "fraction of issue slots stalled on memory (mock: from the blocks resident on the {unit})"},
    {kPower, "power", kDeviceLevel, "W", "board power, 1 s average as NVML reports it (mock)"},
    {kTemp, "temp", kDeviceLevel, "C", "GPU temperature (mock: two-pole thermal lag)"},
    {kSmClock, "sm_clock", kDeviceLevel, "Hz", "SM clock (mock: power-capped governor)"},
    {kMemClock, "mem_clock", kDeviceLevel, "Hz", "memory clock (mock)"},
    {kMemUsed, "mem_used", kDeviceLevel, "bytes", "device memory in use (mock)", Aggregation::Last},
    {kDramActive, "dram_active", kDeviceLevel, "ratio", "DRAM bandwidth in use (mock)"},
    {kThrottle, "throttle", kDeviceLevel, "mask",
     "clock throttle reasons, NVML clocks_event_reasons bits: 0x1 idle, 0x4 power cap (mock)",
     Aggregation::BitOr},
};
static_assert(drivers::rows_in_order(kCounters), "kCounters rows must follow the Counter enum");

DeviceDescription describe(const mock::Preset& p, const mock::ScenarioPlan& plan, std::size_t index,
                           drivers::CounterTable& counters) {
    DeviceDescription d;
    d.id = "mock-" + std::to_string(index);
    d.index = static_cast<std::uint32_t>(index);
    d.vendor = "mock";
    d.model = p.model;
    d.backend = "mock";
    d.unit_kind = p.unit_kind;
    d.units = p.units;
    d.levels = p.levels;
    d.counts = p.counts;
    d.layout = p.layout;
    d.layout_source = "mock";
    d.partitions = plan.partitions;
    d.memory_bytes = p.memory_bytes;
    // A mock device serves every counter, in table order.
    for (const auto& row : kCounters) counters.declare(d, row.id);
    d.validate();
    counters.resolve(d);
    return d;
}

class MockDriver final : public Driver {
public:
    MockDriver(const std::vector<MockDeviceSpec>& specs, std::uint64_t seed) {
        if (specs.empty()) throw std::invalid_argument("make_mock_driver: no devices given");
        if (specs.size() > kMaxDevices)
            throw std::invalid_argument("make_mock_driver: at most " + std::to_string(kMaxDevices) +
                                        " devices (got " + std::to_string(specs.size()) + ")");
        devices_.reserve(specs.size());
        for (std::size_t i = 0; i < specs.size(); ++i) {
            const MockDeviceSpec& spec = specs[i];
            check_faults(spec.faults, i);
            const mock::Preset preset = mock::make_preset(spec.preset, spec.units);
            const mock::ScenarioPlan plan = mock::make_scenario(spec.scenario, preset);
            Device d;
            d.description = describe(preset, plan, i, d.counters);
            // One independent random stream per device, and another for its faults.
            const std::uint64_t device_seed = mock::mix64(seed ^ mock::mix64(0x6d6f636b + i));
            d.sim = std::make_unique<DeviceSim>(preset, plan, device_seed);
            d.fault_seed = mock::mix64(device_seed ^ 0xfa017ull);
            d.lost_at_ns = seconds_to_ns(spec.faults.lost_at_s);
            d.back_at_ns = seconds_to_ns(spec.faults.back_at_s);
            d.read_error_rate = spec.faults.read_error_rate;
            d.slow_every_ns = spec.faults.slow_read_every_s > 0
                                  ? std::llround(spec.faults.slow_read_every_s * 1e9)
                                  : 0;
            d.next_slow_ns = d.slow_every_ns;
            d.slow_ns = std::llround(spec.faults.slow_read_ms * 1e6);

            devices_.push_back(std::move(d));
        }
    }

    std::string name() const override { return "mock"; }
    std::size_t device_count() const override { return devices_.size(); }
    const DeviceDescription& device(std::size_t index) const override {
        return devices_.at(index).description;
    }
    // The simulation is bounded computation; only an injected stall blocks.
    bool read_may_block(std::size_t index) const override { return devices_.at(index).slow_every_ns > 0; }

    ReadStatus read(std::size_t index, std::int64_t now_ns, float* values, char* detail,
                    std::size_t detail_size) noexcept override {
        Device& d = devices_[index];
        if (!d.started) {
            d.started = true;
            d.t0 = now_ns;
        }
        const std::int64_t t = now_ns > d.t0 ? now_ns - d.t0 : 0;

        if (d.lost_at_ns >= 0 && t >= d.lost_at_ns && (d.back_at_ns < 0 || t < d.back_at_ns)) {
            note(detail, detail_size, "mock: device fell off the bus (injected fault at %lld ms)",
                 d.lost_at_ns / 1'000'000);
            return ReadStatus::Lost;
        }
        if (d.slow_every_ns > 0 && t >= d.next_slow_ns) {
            // The point of this fault: whichever thread reads this device is held up.
            d.next_slow_ns += ((t - d.next_slow_ns) / d.slow_every_ns + 1) * d.slow_every_ns;
            std::this_thread::sleep_for(std::chrono::nanoseconds(d.slow_ns));
        }
        if (d.read_error_rate > 0 &&
            mock::unit_interval(mock::mix64(d.fault_seed ^ static_cast<std::uint64_t>(t))) <
                d.read_error_rate) {
            note(detail, detail_size, "mock: injected read error at %lld ms", t / 1'000'000);
            return ReadStatus::Error;
        }

        DeviceSim& sim = *d.sim;
        if (d.back_at_ns >= 0 && t >= d.back_at_ns && !d.reset_done) {
            // Back from the bus: a reset device, restarted at back_at whenever
            // it is first read again (nothing is simulated while it is gone).
            sim.restart_at(DeviceSim::kWarmupNs + d.back_at_ns);
            d.reset_done = true;
        }
        sim.advance_to(DeviceSim::kWarmupNs + t);
        const drivers::CounterTable& at = d.counters;
        sim.write_units(values + at.offset(kActive), values + at.offset(kOccupancy), values + at.offset(kIssue),
                        values + at.offset(kTensor), values + at.offset(kMemStall));
        const mock::PowerModel& power = sim.power();
        values[at.offset(kPower)] = static_cast<float>(power.reported_power_w());
        values[at.offset(kTemp)] = static_cast<float>(power.temp_c());
        values[at.offset(kSmClock)] = static_cast<float>(power.sm_clock_hz());
        values[at.offset(kMemClock)] = static_cast<float>(sim.calibration().mem_clock_hz);
        values[at.offset(kMemUsed)] = static_cast<float>(sim.mem_used_bytes());
        values[at.offset(kDramActive)] = sim.dram_active();
        values[at.offset(kThrottle)] = static_cast<float>(power.throttle_mask());
        return ReadStatus::Ok;
    }

private:
    struct Device {
        DeviceDescription description;
        std::unique_ptr<DeviceSim> sim;
        bool started = false;
        std::int64_t t0 = 0;
        std::uint64_t fault_seed = 0;
        std::int64_t lost_at_ns = -1, back_at_ns = -1;
        bool reset_done = false;
        double read_error_rate = 0;
        std::int64_t slow_every_ns = 0, next_slow_ns = 0, slow_ns = 0;
        drivers::CounterTable counters{kCounters};
    };

    static void note(char* detail, std::size_t size, const char* format, long long value) {
        // Integer formatting only: snprintf does not allocate for it.
        if (detail != nullptr && size > 0) std::snprintf(detail, size, format, value);
    }

    std::vector<Device> devices_;
};

}  // namespace

std::unique_ptr<Driver> make_mock_driver(const std::vector<MockDeviceSpec>& devices,
                                         std::uint64_t seed) {
    return std::make_unique<MockDriver>(devices, seed);
}

std::vector<std::string> mock_presets() { return mock::preset_names(); }
std::vector<std::string> mock_scenarios() { return mock::scenario_names(); }

}  // namespace cuagent
