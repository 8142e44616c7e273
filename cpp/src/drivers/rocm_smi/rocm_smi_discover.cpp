// Discovery for the rocm_smi driver: rsmi devices -> physical GPUs, KFD
// topology -> units, levels and partitions, probes -> declared counters.
#include <algorithm>
#include <cctype>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "amd_common/device_identity.hpp"
#include "amd_common/gpu_walk.hpp"
#include "amd_common/pci.hpp"
#include "cuagent/drivers/rocm_smi.hpp"
#include "rocm_smi_device.hpp"

namespace cuagent::rocm {

namespace {

constexpr std::uint64_t kNoPci = ~std::uint64_t{0};

struct RsmiDevice {
    std::uint32_t index = 0;
    std::uint64_t bdfid = kNoPci;  // domain << 32 | partition << 28 | bus << 8 | device << 3 | function
    std::optional<amd::PciLocation> location() const {
        if (bdfid == kNoPci) return std::nullopt;
        return amd::PciLocation{static_cast<std::uint32_t>(bdfid >> 32), static_cast<std::uint32_t>(bdfid >> 3) & 0x1FFFu};
    }
    // ROCm >= 6.3 puts the compute partition id in bits 31:28.
    std::uint32_t partition() const { return static_cast<std::uint32_t>(bdfid >> 28) & 0xFu; }
    // The GPU's address: the partition bits are not part of it.
    std::string pci() const {
        if (bdfid == kNoPci) return {};
        const auto field = [&](unsigned shift, std::uint64_t mask) { return static_cast<std::uint32_t>((bdfid >> shift) & mask); };
        return amd::format_pci(field(32, 0xFFFF), field(8, 0xFF), field(3, 0x1F), field(0, 0x7));
    }
};

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

// The first of the GPU's rsmi devices that answers the gpu_metrics table
// answers it from now on.
void probe_table(const Library& lib, Gpu& gpu) {
    const MetricsFn fetch = lib.fn().gpu_metrics;
    if (fetch == nullptr) return;
    const std::size_t source = gpu.table.probe(gpu.rsmi, fetch);
    if (source != amd::MetricsTable::kNoSource) gpu.table_device = gpu.rsmi[source];
}

void declare_counters(const Library& lib, Gpu& gpu) {
    const auto& fn = lib.fn();
    DeviceDescription& d = gpu.desc;
    const amd::MetricsTable& table = gpu.table;
    const std::uint32_t primary = gpu.rsmi.front();
    const bool partitioned = gpu.per_partition;
    const char* part_level = partitioned ? kPartitionLevel : kDeviceLevel;

    auto declare = [&](std::uint32_t id, const char* level = nullptr) { gpu.counters.declare(d, id, level); };
    if (table.has_xcd_activity(gpu.shape)) declare(kActive);
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
    else if (table.has_power())
        gpu.power = PowerSource::Table;
    if (gpu.power != PowerSource::None) declare(kPower);

    if (probe_temp(fn.temp_metric, primary, kTempTypeJunction)) gpu.temp = TempSource::Junction;
    else if (probe_temp(fn.temp_metric, primary, kTempTypeEdge)) gpu.temp = TempSource::Edge;
    else if (table.has_hotspot_temperature()) gpu.temp = TempSource::Table;
    if (gpu.temp != TempSource::None) declare(kTemp);

    // Clocks: the table first (one read feeds all); rsmi_dev_gpu_clk_freq_get
    // otherwise.
    if (table.has_graphics_clock()) gpu.sm_clock = ClockSource::Table;
    else if (probe_clock(fn.gpu_clk_freq, primary, kClkTypeSys, &gpu.frequency_layout)) gpu.sm_clock = ClockSource::Call;
    if (gpu.sm_clock != ClockSource::None) declare(kSmClock);
    if (table.has_memory_clock()) gpu.mem_clock = ClockSource::Table;
    else if (probe_clock(fn.gpu_clk_freq, primary, kClkTypeMem, &gpu.frequency_layout)) gpu.mem_clock = ClockSource::Call;
    if (gpu.mem_clock != ClockSource::None) declare(kMemClock);

    amd::counters::declare_limit_counters(gpu.counters, d, table);
}

// The gpu_metrics fields the decoder writes: those whose source is the table.
amd::TableTargets table_targets(const Gpu& gpu) {
    amd::counters::FromTable from;
    from.power = gpu.power == PowerSource::Table;
    from.temp = gpu.temp == TempSource::Table;
    from.sm_clock = gpu.sm_clock == ClockSource::Table;
    from.mem_clock = gpu.mem_clock == ClockSource::Table;
    return amd::counters::table_targets(gpu.counters, from);
}

}  // namespace

std::vector<Gpu> discover(const Library& lib, const RocmSmiOptions& options) {
    const auto& fn = lib.fn();
    std::uint32_t count = 0;
    if (const Status s = fn.num_monitor_devices(&count); s != kSuccess) {
        throw std::runtime_error(std::string("rocm_smi: rsmi_num_monitor_devices failed: ") + lib.status_text(s));
    }

    std::vector<RsmiDevice> devices(count);
    for (std::uint32_t i = 0; i < count; ++i) {
        devices[i].index = i;
        probe_u64(fn.pci_id, i, &devices[i].bdfid);  // without it the device stands alone
    }
    const std::vector<std::vector<RsmiDevice>> physical_gpus = amd::group_by_pci(
        devices, [](const RsmiDevice& d) { return d.location(); }, [](const RsmiDevice& d) { return d.partition(); });

    amd::GpuWalk walk("rocm_smi", options);
    std::vector<Gpu> gpus;
    for (std::size_t physical = 0; physical < physical_gpus.size(); ++physical) {
        const std::vector<RsmiDevice>& members = physical_gpus[physical];
        const RsmiDevice& primary = members.front();

        Gpu gpu;
        for (const auto& m : members) gpu.rsmi.push_back(m.index);
        DeviceDescription& d = gpu.desc;
        const std::vector<amd::KfdNode> nodes = walk.start(d, physical, primary.location(), primary.pci(), "no PCI id");

        std::uint64_t unique = 0;
        std::optional<std::uint64_t> known;
        if (probe_u64(fn.unique_id, primary.index, &unique)) known = unique;
        else if (nodes.front().unique_id != 0) known = nodes.front().unique_id;
        d.id = amd::device_id(known, "", physical, d.pci);
        if (!walk.picks(physical, d.id)) continue;

        d.model = model_name(call_string(fn.market_name, primary.index));
        if (d.model.empty()) d.model = model_name(call_name(fn.name, primary.index));
        if (d.model.empty()) d.model = model_name(call_string(fn.brand, primary.index));
        if (d.model.empty()) d.model = amd::generic_model(nodes.front().device_id);
        std::int32_t numa = -1;
        if (fn.numa_affinity != nullptr && fn.numa_affinity(primary.index, &numa) == kSuccess && numa >= 0)
            d.numa = numa;

        const amd::PartitionModes modes{amd::partition_token(call_string(fn.compute_partition, primary.index)),
                                        amd::partition_token(call_string(fn.memory_partition, primary.index))};
        gpu.describe(nodes, members.size(), modes, [&](std::size_t p) {
            std::uint64_t bytes = 0;
            probe_memory(fn.memory_total, members[p].index, &bytes);
            return bytes;
        });

        probe_table(lib, gpu);
        declare_counters(lib, gpu);
        gpu.finish([&] { return table_targets(gpu); });
        gpus.push_back(std::move(gpu));
    }

    walk.finish(physical_gpus.size());
    return gpus;
}

}  // namespace cuagent::rocm
