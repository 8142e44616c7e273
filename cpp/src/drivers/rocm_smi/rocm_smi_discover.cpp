// Discovery for the rocm_smi driver: rsmi devices -> physical GPUs, KFD
// topology -> units, levels and partitions, probes -> declared counters.
#include <algorithm>
#include <cctype>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <stdexcept>
#include <tuple>

#include "amd_common/device_selection.hpp"
#include "amd_common/kfd.hpp"
#include "cuagent/drivers/rocm_smi.hpp"
#include "rocm_smi_device.hpp"

namespace cuagent::rocm {

namespace {

constexpr std::uint64_t kNoPci = ~std::uint64_t{0};

struct RsmiDevice {
    std::uint32_t index = 0;
    std::uint64_t bdfid = kNoPci;  // domain << 32 | partition << 28 | bus << 8 | device << 3 | function
    std::uint32_t domain() const { return static_cast<std::uint32_t>(bdfid >> 32); }
    std::uint32_t bus_device() const { return static_cast<std::uint32_t>(bdfid >> 3) & 0x1FFFu; }
    // ROCm >= 6.3 puts the compute partition id in bits 31:28.
    std::uint32_t partition() const { return static_cast<std::uint32_t>(bdfid >> 28) & 0xFu; }
};

std::string format_pci(std::uint64_t bdfid) {
    char text[32];
    std::snprintf(text, sizeof text, "%04x:%02x:%02x.%x", static_cast<unsigned>(bdfid >> 32) & 0xFFFFu,
                  static_cast<unsigned>(bdfid >> 8) & 0xFFu, static_cast<unsigned>(bdfid >> 3) & 0x1Fu,
                  static_cast<unsigned>(bdfid) & 0x7u);
    return text;
}

// A name that is only a hex number ("0x1002"): what 5.2.3 answers for a
// device the PCI id database lacks (or without the database), not a model.
std::string model_name(std::string text) {
    const bool hex = text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X') &&
        std::all_of(text.begin() + 2, text.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
    return hex ? std::string() : text;
}

std::string call_string(Name32Fn fn, std::uint32_t device) {
    if (fn == nullptr) return {};
    char text[256] = {};
    if (fn(device, text, sizeof text) != kSuccess) return {};
    return text;
}

std::string call_name(NameFn fn, std::uint32_t device) {
    if (fn == nullptr) return {};
    char text[256] = {};
    if (fn(device, text, sizeof text) != kSuccess) return {};
    return text;
}

bool probe_u64(U64Fn fn, std::uint32_t device, std::uint64_t* out = nullptr) {
    std::uint64_t value = 0;
    if (fn == nullptr || fn(device, &value) != kSuccess) return false;
    if (out) *out = value;
    return true;
}

bool probe_memory(MemoryFn fn, std::uint32_t device, std::uint64_t* out = nullptr) {
    std::uint64_t value = 0;
    if (fn == nullptr || fn(device, kMemTypeVram, &value) != kSuccess) return false;
    if (out) *out = value;
    return true;
}

bool probe_busy(U32Fn fn, std::uint32_t device) {
    std::uint32_t value = 0;
    return fn != nullptr && fn(device, &value) == kSuccess;
}

bool probe_temp(TempFn fn, std::uint32_t device, std::uint32_t sensor) {
    std::int64_t value = 0;
    return fn != nullptr && fn(device, sensor, kTempCurrent, &value) == kSuccess;
}

// Whether the clock reads, and in which rsmi_frequencies_t layout (the
// library's release decides; nothing else tells it). The buffer starts as
// all-ones so padding a library leaves alone cannot pass for a field.
bool probe_clock(ClockFn fn, std::uint32_t device, std::uint32_t clock, FrequencyLayout* layout) {
    Frequencies f;
    std::memset(&f, 0xFF, sizeof f);
    std::uint64_t hz = 0;
    if (fn == nullptr || fn(device, clock, &f) != kSuccess) return false;
    for (const FrequencyLayout candidate : {FrequencyLayout::Current, FrequencyLayout::V5}) {
        if (current_frequency(f, candidate, &hz)) {
            *layout = candidate;
            return true;
        }
    }
    return false;
}

// Probes the gpu_metrics table of `gpu` and records which fields it carries.
void probe_table(const Library& lib, Gpu& gpu) {
    const auto& fn = lib.fn();
    if (fn.gpu_metrics == nullptr) return;
    for (const std::uint32_t device : gpu.rsmi) {
        const metrics::LayoutProbe probe = metrics::probe_public_layout(
            [&](unsigned char* buffer) { return static_cast<std::uint32_t>(fn.gpu_metrics(device, buffer)); },
            gpu.table.get());
        if (probe.status != kSuccess || probe.layout.size == 0) continue;
        gpu.has_table = true;
        gpu.table_device = device;
        gpu.layout = probe.layout;
        break;
    }
}

bool table_has(const Gpu& gpu, std::size_t offset16) { return metrics::has_u16(gpu.table.get(), offset16); }

void declare_counters(const Library& lib, Gpu& gpu) {
    const auto& fn = lib.fn();
    DeviceDescription& d = gpu.desc;
    const std::uint32_t primary = gpu.rsmi.front();
    const unsigned revision = gpu.has_table ? metrics::content_revision(gpu.table.get()) : 0;
    const bool partitioned = gpu.per_partition;
    const char* part_level = partitioned ? kPartitionLevel : kDeviceLevel;

    auto declare = [&](Counter id, const char* level = nullptr) { gpu.counters.declare(d, id, level); };
    if (gpu.has_table && metrics::has_xcd_activity(gpu.table.get(), gpu.layout, gpu.shape.xcps, gpu.shape.xccs_per_xcp))
        declare(kActive);
    bool busy = probe_busy(fn.busy_percent, primary);
    bool used = probe_memory(fn.memory_usage, primary);
    for (const std::uint32_t device : gpu.rsmi) {
        if (!partitioned) break;
        busy = busy && probe_busy(fn.busy_percent, device);
        used = used && probe_memory(fn.memory_usage, device);
    }
    if (busy) declare(kGrActive, part_level);
    if (used) declare(kMemUsed, part_level);

    if (probe_u64(fn.current_socket_power, primary)) gpu.power = PowerSource::SocketPower;
    else if (fn.power_ave != nullptr && [&] { std::uint64_t p; return fn.power_ave(primary, 0, &p) == kSuccess; }())
        gpu.power = PowerSource::PowerAverage;
    else if (gpu.has_table && table_has(gpu, revision >= 4 ? metrics::kCurrentSocketPower : metrics::kAverageSocketPower))
        gpu.power = PowerSource::Table;
    if (gpu.power != PowerSource::None) declare(kPower);

    if (probe_temp(fn.temp_metric, primary, kTempTypeJunction)) gpu.temp = TempSource::Junction;
    else if (probe_temp(fn.temp_metric, primary, kTempTypeEdge)) gpu.temp = TempSource::Edge;
    else if (gpu.has_table && table_has(gpu, metrics::kTemperatureHotspot)) gpu.temp = TempSource::Table;
    if (gpu.temp != TempSource::None) declare(kTemp);

    // Clocks: the table first (one read feeds all); rsmi_dev_gpu_clk_freq_get
    // otherwise.
    const bool table_sclk = gpu.has_table &&
        table_has(gpu, revision >= 4 ? metrics::kCurrentGfxclks : metrics::kCurrentGfxclk);
    if (table_sclk) gpu.sm_clock = ClockSource::Table;
    else if (probe_clock(fn.gpu_clk_freq, primary, kClkTypeSys, &gpu.frequency_layout)) gpu.sm_clock = ClockSource::Call;
    if (gpu.sm_clock != ClockSource::None) declare(kSmClock);
    if (gpu.has_table && table_has(gpu, metrics::kCurrentUclk)) gpu.mem_clock = ClockSource::Table;
    else if (probe_clock(fn.gpu_clk_freq, primary, kClkTypeMem, &gpu.frequency_layout)) gpu.mem_clock = ClockSource::Call;
    if (gpu.mem_clock != ClockSource::None) declare(kMemClock);

    // indep_throttle_status lies beyond a 96-byte table.
    if (gpu.has_table && revision <= 5 && gpu.layout.size > metrics::kIndepThrottleStatus &&
        metrics::u64_at(gpu.table.get(), metrics::kIndepThrottleStatus) != metrics::kNoData64)
        declare(kThrottle);
    if (gpu.has_table && metrics::has_accumulators(gpu.table.get(), gpu.layout)) {
        declare(kPowerViolation);
        declare(kThermalViolation);
    }
}

// The gpu_metrics fields the decoder writes: those whose source is the table.
amd::TableTargets table_targets(const Gpu& gpu) {
    const drivers::CounterTable& at = gpu.counters;
    amd::TableTargets t;
    if (gpu.power == PowerSource::Table) t.power = at.offset(kPower);
    if (gpu.temp == TempSource::Table) t.temp = at.offset(kTemp);
    if (gpu.sm_clock == ClockSource::Table) t.sm_clock = at.offset(kSmClock);
    if (gpu.mem_clock == ClockSource::Table) t.mem_clock = at.offset(kMemClock);
    t.throttle = at.offset(kThrottle);
    t.power_violation = at.offset(kPowerViolation);
    t.thermal_violation = at.offset(kThermalViolation);
    t.xcd_active = at.offset(kActive);
    return t;
}

}  // namespace

std::vector<Gpu> discover(const Library& lib, const RocmSmiOptions& options) {
    const auto& fn = lib.fn();
    std::uint32_t count = 0;
    if (const Status s = fn.num_monitor_devices(&count); s != kSuccess) {
        throw std::runtime_error(std::string("rocm_smi: rsmi_num_monitor_devices failed: ") + lib.status_text(s));
    }

    // Group the library's devices into physical GPUs by PCI domain/bus/device.
    std::vector<RsmiDevice> devices(count);
    std::map<std::tuple<std::uint32_t, std::uint32_t, std::uint32_t>, std::vector<RsmiDevice>> by_pci;
    std::vector<std::tuple<std::uint32_t, std::uint32_t, std::uint32_t>> order;
    for (std::uint32_t i = 0; i < count; ++i) {
        devices[i].index = i;
        std::uint64_t bdfid = kNoPci;
        // Without a PCI id a device stands alone (keyed by its index).
        const auto key = probe_u64(fn.pci_id, i, &bdfid)
            ? std::make_tuple(0u, static_cast<std::uint32_t>(bdfid >> 32), static_cast<std::uint32_t>(bdfid >> 3) & 0x1FFFu)
            : std::make_tuple(1u, i, 0u);
        devices[i].bdfid = bdfid;
        if (by_pci.find(key) == by_pci.end()) order.push_back(key);
        by_pci[key].push_back(devices[i]);
    }

    std::vector<amd::KfdNode> kfd;
    try {
        kfd = amd::read_kfd_gpu_nodes(options.kfd_root);
    } catch (const std::runtime_error& e) {
        throw std::runtime_error(std::string("rocm_smi: ") + e.what());
    }
    amd::DeviceSelection selection(options.devices);
    std::vector<Gpu> gpus;
    for (std::size_t physical = 0; physical < order.size(); ++physical) {
        std::vector<RsmiDevice> members = by_pci[order[physical]];
        std::stable_sort(members.begin(), members.end(),
                         [](const RsmiDevice& a, const RsmiDevice& b) { return a.partition() < b.partition(); });
        const RsmiDevice& primary = members.front();

        Gpu gpu;
        for (const auto& m : members) gpu.rsmi.push_back(m.index);
        DeviceDescription& d = gpu.desc;
        d.index = static_cast<std::uint32_t>(physical);
        d.vendor = "amd";
        d.backend = "rocm_smi";
        d.pci = primary.bdfid == kNoPci ? std::string() : format_pci(primary.bdfid & ~(std::uint64_t{0xF} << 28));

        const std::vector<amd::KfdNode> nodes = primary.bdfid == kNoPci
            ? std::vector<amd::KfdNode>{} : amd::nodes_of_gpu(kfd, primary.domain(), primary.bus_device());
        if (nodes.empty()) {
            throw std::runtime_error("rocm_smi: no KFD topology node for device " + std::to_string(physical) +
                                     (d.pci.empty() ? std::string(" (no PCI id)") : " (PCI " + d.pci + ")") +
                                     " under " + options.kfd_root +
                                     "/topology/nodes; is /sys/class/kfd visible (containers: mount /sys)?");
        }

        std::uint64_t unique = 0;
        if (probe_u64(fn.unique_id, primary.index, &unique) || (unique = nodes.front().unique_id) != 0) {
            char id[32];
            std::snprintf(id, sizeof id, "amd-%016" PRIx64, unique);
            d.id = id;
        } else {
            d.id = d.pci.empty() ? "amd-" + std::to_string(physical) : "amd-pci-" + d.pci;
        }
        if (!selection.picks(physical, d.id)) continue;

        d.model = model_name(call_string(fn.market_name, primary.index));
        if (d.model.empty()) d.model = model_name(call_name(fn.name, primary.index));
        if (d.model.empty()) d.model = model_name(call_string(fn.brand, primary.index));
        if (d.model.empty()) {
            char model[48];
            std::snprintf(model, sizeof model, "AMD GPU (device 0x%04x)", nodes.front().device_id);
            d.model = model;
        }
        std::int32_t numa = -1;
        if (fn.numa_affinity != nullptr && fn.numa_affinity(primary.index, &numa) == kSuccess && numa >= 0)
            d.numa = numa;

        // Partitioned per device only when the library enumerates one device
        // per KFD partition node; an older library shows the GPU once.
        gpu.per_partition = nodes.size() > 1 && members.size() == nodes.size();
        std::vector<std::uint64_t> partition_memory;
        std::uint64_t total = 0;
        probe_memory(fn.memory_total, primary.index, &total);
        const std::string compute = amd::partition_token(call_string(fn.compute_partition, primary.index));
        const std::string memory = amd::partition_token(call_string(fn.memory_partition, primary.index));
        if (gpu.per_partition) {
            for (const auto& m : members) {
                std::uint64_t part = 0;
                probe_memory(fn.memory_total, m.index, &part);
                partition_memory.push_back(part);
            }
        }
        d.memory_bytes = amd::device_memory(total, partition_memory, memory);
        gpu.shape = amd::describe_compute(d, nodes, amd::partition_profile(compute, memory), partition_memory);

        gpu.table.reset(new unsigned char[metrics::kBufferBytes]);
        probe_table(lib, gpu);
        declare_counters(lib, gpu);
        d.validate();
        gpu.counters.resolve(d);
        gpu.decoder.configure(gpu.layout, gpu.shape.xcps, gpu.shape.xccs_per_xcp, d.counts.front(), table_targets(gpu));
        gpus.push_back(std::move(gpu));
    }

    selection.require_all_matched("rocm_smi", order.size());
    return gpus;
}

}  // namespace cuagent::rocm
