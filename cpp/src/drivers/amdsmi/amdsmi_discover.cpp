// Discovery for the amdsmi driver: sockets -> processor handles -> physical
// GPUs (one per PCI device; its compute partitions are its processors), KFD
// topology -> units, levels and partitions (amd_common/), probes -> declared
// counters.
#include <optional>
#include <stdexcept>

#include "amd_common/device_identity.hpp"
#include "amd_common/gpu_walk.hpp"
#include "amd_common/pci.hpp"
#include "amdsmi_device.hpp"
#include "cuagent/drivers/amdsmi.hpp"

namespace cuagent::amdsmi {

namespace {

constexpr std::uint32_t kAllOnes32 = 0xFFFFFFFFu;

struct Processor {
    Handle handle = nullptr;
    Bdf bdf{~std::uint64_t{0}};
    bool has_bdf = false;
    std::uint32_t partition = 0;  // its compute partition id: orders the GPU's processors

    std::optional<amd::PciLocation> location() const {
        if (!has_bdf) return std::nullopt;
        return amd::PciLocation{bdf.domain(), bdf.bus() << 5 | bdf.device()};
    }
    std::string pci() const {
        return has_bdf ? amd::format_pci(bdf.domain(), bdf.bus(), bdf.device(), bdf.function()) : std::string();
    }
};

std::string call_string(PartitionFn fn, Handle h) {
    if (fn == nullptr) return {};
    char text[kStringLength] = {};
    if (fn(h, text, sizeof text) != kSuccess) return {};
    text[sizeof text - 1] = '\0';
    return text;
}

bool probe_memory(MemoryFn fn, Handle h, std::uint64_t* out = nullptr) {
    std::uint64_t value = 0;
    if (fn == nullptr || fn(h, kMemTypeVram, &value) != kSuccess) return false;
    if (out) *out = value;
    return true;
}

bool probe_activity(const Library& lib, Handle h, EngineUsage* out) {
    Out<EngineUsage> u{};
    if (!lib.structs_known() || lib.fn().activity == nullptr || lib.fn().activity(h, &u.value) != kSuccess) return false;
    *out = u.value;
    return true;
}

bool probe_temp(TempFn fn, Handle h, std::uint32_t sensor) {
    std::int64_t value = 0;
    return fn != nullptr && fn(h, sensor, kTempCurrent, &value) == kSuccess;
}

bool probe_clock(const Library& lib, Handle h, std::uint32_t clock) {
    Out<ClkInfo> c{};
    return lib.structs_known() && lib.fn().clock_info != nullptr && lib.fn().clock_info(h, clock, &c.value) == kSuccess &&
           c.value.clk != kAllOnes32 && c.value.clk != 0;
}

bool probe_power(const Library& lib, Handle h) {
    Out<PowerInfo> p{};
    return lib.structs_known() && lib.fn().power_info != nullptr && lib.fn().power_info(h, &p.value) == kSuccess &&
           (p.value.current_socket_power != kAllOnes32 || p.value.average_socket_power != kAllOnes32);
}

// Every AMD GPU processor, socket by socket, in the library's order.
std::vector<Processor> gpu_processors(const Library& lib) {
    const Functions& fn = lib.fn();
    std::uint32_t sockets = 0;
    if (const Status s = fn.socket_handles(&sockets, nullptr); s != kSuccess)
        throw std::runtime_error(std::string("amdsmi: amdsmi_get_socket_handles failed: ") + lib.status_text(s));
    std::vector<Handle> socket(sockets);
    if (sockets > 0) {
        if (const Status s = fn.socket_handles(&sockets, socket.data()); s != kSuccess)
            throw std::runtime_error(std::string("amdsmi: amdsmi_get_socket_handles failed: ") + lib.status_text(s));
        socket.resize(sockets);
    }
    std::vector<Processor> out;
    for (const Handle sh : socket) {
        std::uint32_t count = 0;
        if (const Status s = fn.processor_handles(sh, &count, nullptr); s != kSuccess)
            throw std::runtime_error(std::string("amdsmi: amdsmi_get_processor_handles failed: ") + lib.status_text(s));
        std::vector<Handle> handles(count);
        if (count > 0) {
            if (const Status s = fn.processor_handles(sh, &count, handles.data()); s != kSuccess)
                throw std::runtime_error(std::string("amdsmi: amdsmi_get_processor_handles failed: ") +
                                         lib.status_text(s));
            handles.resize(count);
        }
        for (const Handle h : handles) {
            std::uint32_t type = kProcessorAmdGpu;
            if (fn.processor_type != nullptr && fn.processor_type(h, &type) == kSuccess && type != kProcessorAmdGpu)
                continue;  // a CPU or another vendor's GPU (not initialised by AMDSMI_INIT_AMD_GPUS anyway)
            Processor p;
            p.handle = h;
            p.has_bdf = fn.bdf != nullptr && fn.bdf(h, &p.bdf) == kSuccess;
            // Compute partition id: from KFD info (7.0+), else the PCI function
            // (kernels before 2024 put the partition there), else enumeration order.
            Out<KfdInfo> kfd{};
            if (lib.structs_known() && fn.kfd_info != nullptr && fn.kfd_info(h, &kfd.value) == kSuccess &&
                kfd.value.current_partition_id != kAllOnes32)
                p.partition = kfd.value.current_partition_id;
            else if (p.has_bdf)
                p.partition = p.bdf.function();
            else
                p.partition = static_cast<std::uint32_t>(out.size());
            out.push_back(p);
        }
    }
    return out;
}

// The first of the GPU's processors that answers the gpu_metrics table
// answers it from now on.
void probe_table(const Library& lib, Gpu& gpu) {
    const MetricsFn fetch = lib.fn().gpu_metrics;
    if (fetch == nullptr) return;
    const std::size_t source = gpu.table.probe(
        gpu.processors, [&](Handle h, unsigned char* buffer) { return fetch(h, reinterpret_cast<GpuMetrics*>(buffer)); });
    if (source != amd::MetricsTable::kNoSource) gpu.table_processor = gpu.processors[source];
}

void declare_counters(const Library& lib, Gpu& gpu) {
    const Functions& fn = lib.fn();
    DeviceDescription& d = gpu.desc;
    const amd::MetricsTable& table = gpu.table;
    const Handle primary = gpu.processors.front();
    const char* part_level = gpu.per_partition ? kPartitionLevel : kDeviceLevel;
    auto declare = [&](std::uint32_t id, const char* level = nullptr) { gpu.counters.declare(d, id, level); };

    if (table.has_xcd_activity(gpu.shape)) declare(kActive);

    // Engine activity: the call per partition processor, else the table's device averages.
    EngineUsage usage{};
    bool by_call = probe_activity(lib, primary, &usage);
    bool gfx = by_call && usage.gfx_activity <= 100, umc = by_call && usage.umc_activity <= 100;
    for (std::size_t p = 1; by_call && gpu.per_partition && p < gpu.processors.size(); ++p) {
        EngineUsage other{};
        by_call = probe_activity(lib, gpu.processors[p], &other);
        gfx = gfx && other.gfx_activity <= 100;
        umc = umc && other.umc_activity <= 100;
    }
    if (by_call && (gfx || umc)) {
        gpu.activity = Source::Call;
        if (gfx) declare(kGrActive, part_level);
        if (umc) declare(kDramActive, part_level);
    } else if (table.has_gfx_activity() || table.has_umc_activity()) {
        gpu.activity = Source::Table;
        if (table.has_gfx_activity()) declare(kGrActive);
        if (table.has_umc_activity()) declare(kDramActive);
    }

    bool used = probe_memory(fn.memory_usage, primary);
    for (std::size_t p = 1; used && gpu.per_partition && p < gpu.processors.size(); ++p)
        used = probe_memory(fn.memory_usage, gpu.processors[p]);
    if (used) declare(kMemUsed, part_level);

    if (table.has_power())
        gpu.power = Source::Table;
    else if (probe_power(lib, primary))
        gpu.power = Source::Call;
    if (gpu.power != Source::None) declare(kPower);

    if (table.has_hotspot_temperature()) {
        gpu.temp = Source::Table;
    } else if (probe_temp(fn.temp_metric, primary, kTempHotspot)) {
        gpu.temp = Source::Call;
    } else if (probe_temp(fn.temp_metric, primary, kTempEdge)) {
        gpu.temp = Source::Call;
        gpu.temp_sensor = kTempEdge;
    }
    if (gpu.temp != Source::None) declare(kTemp);

    if (table.has_graphics_clock())
        gpu.sm_clock = Source::Table;
    else if (probe_clock(lib, primary, kClkGfx))
        gpu.sm_clock = Source::Call;
    if (gpu.sm_clock != Source::None) declare(kSmClock);
    if (table.has_memory_clock())
        gpu.mem_clock = Source::Table;
    else if (probe_clock(lib, primary, kClkMem))
        gpu.mem_clock = Source::Call;
    if (gpu.mem_clock != Source::None) declare(kMemClock);

    amd::counters::declare_limit_counters(gpu.counters, d, table);

    Out<ErrorCount> ecc{};
    if (lib.structs_known() && fn.total_ecc != nullptr && fn.total_ecc(primary, &ecc.value) == kSuccess) {
        declare(kEccCorrected);
        declare(kEccUncorrected);
    }
}

// The gpu_metrics fields the decoder writes: those whose source is the table.
amd::TableTargets table_targets(const Gpu& gpu) {
    amd::counters::FromTable from;
    from.gr_active = gpu.activity == Source::Table;
    from.power = gpu.power == Source::Table;
    from.temp = gpu.temp == Source::Table;
    from.sm_clock = gpu.sm_clock == Source::Table;
    from.mem_clock = gpu.mem_clock == Source::Table;
    amd::TableTargets t = amd::counters::table_targets(gpu.counters, from);
    if (gpu.activity == Source::Table) t.dram_active = gpu.counters.offset(kDramActive);  // AMD SMI's own counter
    return t;
}

std::string model_name(const Library& lib, Handle h, const amd::KfdNode& node) {
    const Functions& fn = lib.fn();
    if (lib.structs_known()) {
        Out<AsicInfo> asic{};
        if (fn.asic_info != nullptr && fn.asic_info(h, &asic.value) == kSuccess) {
            asic.value.market_name[kStringLength - 1] = '\0';
            if (asic.value.market_name[0] != '\0') return asic.value.market_name;
        }
        Out<BoardInfo> board{};
        if (fn.board_info != nullptr && fn.board_info(h, &board.value) == kSuccess) {
            board.value.product_name[kStringLength - 1] = '\0';
            if (board.value.product_name[0] != '\0') return board.value.product_name;
        }
    }
    return amd::generic_model(node.device_id);
}

std::string device_uuid(const Library& lib, Handle h) {
    if (lib.fn().uuid == nullptr) return {};
    char text[kUuidSize + 1] = {};
    std::uint32_t length = kUuidSize;
    if (lib.fn().uuid(h, &length, text) != kSuccess) return {};
    text[kUuidSize] = '\0';
    return text;
}

}  // namespace

std::vector<Gpu> discover(const Library& lib, const AmdSmiOptions& options, std::vector<std::string>* notes) {
    const std::vector<Processor> processors = gpu_processors(lib);

    const std::vector<std::vector<Processor>> physical_gpus = amd::group_by_pci(
        processors, [](const Processor& p) { return p.location(); }, [](const Processor& p) { return p.partition; });

    amd::GpuWalk walk("amdsmi", options);
    std::vector<Gpu> gpus;
    for (std::size_t physical = 0; physical < physical_gpus.size(); ++physical) {
        const std::vector<Processor>& members = physical_gpus[physical];
        const Processor& primary = members.front();

        Gpu gpu;
        for (const auto& m : members) gpu.processors.push_back(m.handle);
        DeviceDescription& d = gpu.desc;
        const std::vector<amd::KfdNode> nodes = walk.start(d, physical, primary.location(), primary.pci(), "no PCI address");

        // The id the rocm_smi backend gives the same GPU (KFD's unique_id is
        // what rsmi_dev_unique_id_get reads): switching backends keeps topics.
        const std::uint64_t unique = nodes.front().unique_id;
        d.id = amd::device_id(unique != 0 ? std::optional<std::uint64_t>(unique) : std::nullopt,
                              device_uuid(lib, primary.handle), physical, d.pci);
        if (!walk.picks(physical, d.id)) continue;

        d.model = model_name(lib, primary.handle, nodes.front());
        std::uint32_t numa = 0;
        if (lib.fn().numa_node != nullptr && lib.fn().numa_node(primary.handle, &numa) == kSuccess &&
            numa != kAllOnes32 && numa < 0x7FFFFFFFu)
            d.numa = static_cast<std::int32_t>(numa);

        const amd::PartitionModes modes{amd::partition_token(call_string(lib.fn().compute_partition, primary.handle)),
                                        amd::partition_token(call_string(lib.fn().memory_partition, primary.handle))};
        gpu.describe(nodes, members.size(), modes, [&](std::size_t p) {
            std::uint64_t bytes = 0;
            probe_memory(lib.fn().memory_total, members[p].handle, &bytes);
            return bytes;
        });

        probe_table(lib, gpu);
        declare_counters(lib, gpu);
        gpu.finish([&] { return table_targets(gpu); });
        gpus.push_back(std::move(gpu));
    }

    walk.finish(physical_gpus.size());
    if (notes != nullptr) {
        notes->push_back("amdsmi: " + lib.path() + " (AMD SMI " + (lib.version().empty() ? "of unknown version" :
                         lib.version()) + "), " + std::to_string(gpus.size()) + " GPU(s)");
        if (!lib.structs_known()) {
            notes->push_back("amdsmi: AMD SMI " + (lib.version().empty() ? std::string("of unknown version") :
                             lib.version()) + " is not major version " + std::to_string(kAbiMajor) +
                             ", whose struct layouts cuagent checks; calls that fill a struct are left out "
                             "(per-partition activity, ECC, processes, partition order, model name), "
                             "the gpu_metrics table and the scalar calls still serve");
        }
    }
    return gpus;
}

}  // namespace cuagent::amdsmi
