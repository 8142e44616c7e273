// Discovery for the amdsmi driver: sockets -> processor handles -> physical
// GPUs (one per PCI device; its compute partitions are its processors), KFD
// topology -> units, levels and partitions (amd_common/), probes -> declared
// counters.
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <tuple>

#include "amd_common/device_selection.hpp"
#include "amd_common/kfd.hpp"
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
};

std::string format_pci(const Bdf& b) {
    char text[32];
    std::snprintf(text, sizeof text, "%04x:%02x:%02x.%x", b.domain() & 0xFFFFu, b.bus(), b.device(), b.function());
    return text;
}

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

bool table_has(const Gpu& gpu, std::size_t offset16) { return metrics::has_u16(gpu.table.get(), offset16); }

void probe_table(const Library& lib, Gpu& gpu) {
    const MetricsFn fetch = lib.fn().gpu_metrics;
    if (fetch == nullptr) return;
    for (const Handle h : gpu.processors) {
        const metrics::LayoutProbe probe = metrics::probe_public_layout(
            [&](unsigned char* buffer) {
                return static_cast<std::uint32_t>(fetch(h, reinterpret_cast<GpuMetrics*>(buffer)));
            }, gpu.table.get());
        if (probe.status != kSuccess || probe.layout.size == 0) continue;
        gpu.has_table = true;
        gpu.table_processor = h;
        gpu.layout = probe.layout;
        break;
    }
}

void declare_counters(const Library& lib, Gpu& gpu) {
    const Functions& fn = lib.fn();
    DeviceDescription& d = gpu.desc;
    const Handle primary = gpu.processors.front();
    const unsigned char* t = gpu.table.get();
    const unsigned revision = gpu.has_table ? metrics::content_revision(t) : 0;
    const char* part_level = gpu.per_partition ? kPartitionLevel : kDeviceLevel;
    auto declare = [&](Counter id, const char* level = nullptr) { gpu.counters.declare(d, id, level); };

    if (gpu.has_table && metrics::has_xcd_activity(t, gpu.layout, gpu.shape.xcps, gpu.shape.xccs_per_xcp))
        declare(kActive);

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
    } else if (gpu.has_table && (table_has(gpu, metrics::kAverageGfxActivity) ||
                                 table_has(gpu, metrics::kAverageUmcActivity))) {
        gpu.activity = Source::Table;
        if (table_has(gpu, metrics::kAverageGfxActivity)) declare(kGrActive);
        if (table_has(gpu, metrics::kAverageUmcActivity)) declare(kDramActive);
    }

    bool used = probe_memory(fn.memory_usage, primary);
    for (std::size_t p = 1; used && gpu.per_partition && p < gpu.processors.size(); ++p)
        used = probe_memory(fn.memory_usage, gpu.processors[p]);
    if (used) declare(kMemUsed, part_level);

    if (gpu.has_table && table_has(gpu, revision >= 4 ? metrics::kCurrentSocketPower : metrics::kAverageSocketPower))
        gpu.power = Source::Table;
    else if (probe_power(lib, primary))
        gpu.power = Source::Call;
    if (gpu.power != Source::None) declare(kPower);

    if (gpu.has_table && table_has(gpu, metrics::kTemperatureHotspot)) {
        gpu.temp = Source::Table;
    } else if (probe_temp(fn.temp_metric, primary, kTempHotspot)) {
        gpu.temp = Source::Call;
    } else if (probe_temp(fn.temp_metric, primary, kTempEdge)) {
        gpu.temp = Source::Call;
        gpu.temp_sensor = kTempEdge;
    }
    if (gpu.temp != Source::None) declare(kTemp);

    if (gpu.has_table && table_has(gpu, revision >= 4 ? metrics::kCurrentGfxclks : metrics::kCurrentGfxclk))
        gpu.sm_clock = Source::Table;
    else if (probe_clock(lib, primary, kClkGfx))
        gpu.sm_clock = Source::Call;
    if (gpu.sm_clock != Source::None) declare(kSmClock);
    if (gpu.has_table && table_has(gpu, metrics::kCurrentUclk))
        gpu.mem_clock = Source::Table;
    else if (probe_clock(lib, primary, kClkMem))
        gpu.mem_clock = Source::Call;
    if (gpu.mem_clock != Source::None) declare(kMemClock);

    if (gpu.has_table && revision <= 5 && gpu.layout.size > metrics::kIndepThrottleStatus &&
        metrics::u64_at(t, metrics::kIndepThrottleStatus) != metrics::kNoData64)
        declare(kThrottle);
    if (gpu.has_table && metrics::has_accumulators(t, gpu.layout)) {
        declare(kPowerViolation);
        declare(kThermalViolation);
    }

    Out<ErrorCount> ecc{};
    if (lib.structs_known() && fn.total_ecc != nullptr && fn.total_ecc(primary, &ecc.value) == kSuccess) {
        declare(kEccCorrected);
        declare(kEccUncorrected);
    }
}

// The gpu_metrics fields the decoder writes: those whose source is the table.
amd::TableTargets table_targets(const Gpu& gpu) {
    const drivers::CounterTable& at = gpu.counters;
    amd::TableTargets t;
    if (gpu.activity == Source::Table) {
        t.gr_active = at.offset(kGrActive);
        t.dram_active = at.offset(kDramActive);
    }
    if (gpu.power == Source::Table) t.power = at.offset(kPower);
    if (gpu.temp == Source::Table) t.temp = at.offset(kTemp);
    if (gpu.sm_clock == Source::Table) t.sm_clock = at.offset(kSmClock);
    if (gpu.mem_clock == Source::Table) t.mem_clock = at.offset(kMemClock);
    t.throttle = at.offset(kThrottle);
    t.power_violation = at.offset(kPowerViolation);
    t.thermal_violation = at.offset(kThermalViolation);
    t.xcd_active = at.offset(kActive);
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
    char model[48];
    std::snprintf(model, sizeof model, "AMD GPU (device 0x%04x)", node.device_id);
    return model;
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

    // Group the processors into physical GPUs by PCI domain/bus/device, in
    // the library's order; one without a BDF stands alone.
    std::map<std::tuple<std::uint32_t, std::uint32_t, std::uint32_t>, std::vector<Processor>> by_pci;
    std::vector<std::tuple<std::uint32_t, std::uint32_t, std::uint32_t>> order;
    for (std::size_t i = 0; i < processors.size(); ++i) {
        const Processor& p = processors[i];
        const auto key = p.has_bdf ? std::make_tuple(0u, p.bdf.domain(), p.bdf.bus() << 5 | p.bdf.device())
                                   : std::make_tuple(1u, static_cast<std::uint32_t>(i), 0u);
        if (by_pci.find(key) == by_pci.end()) order.push_back(key);
        by_pci[key].push_back(p);
    }

    std::vector<amd::KfdNode> kfd;
    try {
        kfd = amd::read_kfd_gpu_nodes(options.kfd_root);
    } catch (const std::runtime_error& e) {
        throw std::runtime_error(std::string("amdsmi: ") + e.what());
    }
    amd::DeviceSelection selection(options.devices);
    std::vector<Gpu> gpus;
    for (std::size_t physical = 0; physical < order.size(); ++physical) {
        std::vector<Processor> members = by_pci[order[physical]];
        std::stable_sort(members.begin(), members.end(),
                         [](const Processor& a, const Processor& b) { return a.partition < b.partition; });
        const Processor& primary = members.front();

        Gpu gpu;
        for (const auto& m : members) gpu.processors.push_back(m.handle);
        DeviceDescription& d = gpu.desc;
        d.index = static_cast<std::uint32_t>(physical);
        d.vendor = "amd";
        d.backend = "amdsmi";
        d.pci = primary.has_bdf ? format_pci(primary.bdf) : std::string();

        const std::vector<amd::KfdNode> nodes = primary.has_bdf
            ? amd::nodes_of_gpu(kfd, primary.bdf.domain(), primary.bdf.bus() << 5 | primary.bdf.device())
            : std::vector<amd::KfdNode>{};
        if (nodes.empty()) {
            throw std::runtime_error("amdsmi: no KFD topology node for device " + std::to_string(physical) +
                                     (d.pci.empty() ? std::string(" (no PCI address)") : " (PCI " + d.pci + ")") +
                                     " under " + options.kfd_root +
                                     "/topology/nodes; is /sys/class/kfd visible (containers: mount /sys)?");
        }

        // The id the rocm_smi backend gives the same GPU (KFD's unique_id is
        // what rsmi_dev_unique_id_get reads): switching backends keeps topics.
        const std::string uuid = device_uuid(lib, primary.handle);
        if (nodes.front().unique_id != 0) {
            char id[32];
            std::snprintf(id, sizeof id, "amd-%016" PRIx64, nodes.front().unique_id);
            d.id = id;
        } else if (!uuid.empty()) {
            d.id = "amd-" + uuid;
        } else {
            d.id = d.pci.empty() ? "amd-" + std::to_string(physical) : "amd-pci-" + d.pci;
        }
        if (!selection.picks(physical, d.id)) continue;

        d.model = model_name(lib, primary.handle, nodes.front());
        std::uint32_t numa = 0;
        if (lib.fn().numa_node != nullptr && lib.fn().numa_node(primary.handle, &numa) == kSuccess &&
            numa != kAllOnes32 && numa < 0x7FFFFFFFu)
            d.numa = static_cast<std::int32_t>(numa);

        // Partitioned per processor only when the library shows one processor
        // per KFD partition node; otherwise the GPU is read as a whole.
        gpu.per_partition = nodes.size() > 1 && members.size() == nodes.size();
        const std::string compute = amd::partition_token(call_string(lib.fn().compute_partition, primary.handle));
        const std::string memory = amd::partition_token(call_string(lib.fn().memory_partition, primary.handle));
        std::uint64_t total = 0;
        probe_memory(lib.fn().memory_total, primary.handle, &total);
        std::vector<std::uint64_t> partition_memory;
        if (gpu.per_partition) {
            for (const Handle h : gpu.processors) {
                std::uint64_t part = 0;
                probe_memory(lib.fn().memory_total, h, &part);
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

    selection.require_all_matched("amdsmi", order.size());
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
