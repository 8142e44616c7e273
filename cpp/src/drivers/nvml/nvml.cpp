// The nvml driver: describes each NVIDIA device once (slow path, may
// allocate) and reads its counters on the sampler thread (hot path: fixed
// preallocated state, no allocation, no lock, no exception).
#include "cuagent/drivers/nvml.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <stdexcept>

#include "common/counter_table.hpp"
#include "cuagent/drivers/sm_layout.hpp"
#include "nvml_library.hpp"
#include "nvml_probe_cache.hpp"

namespace cuagent {
namespace {

using namespace nvml;

constexpr std::int64_t kRefreshNs = 100'000'000;  // NVML/GPM refresh period (measured, H100)
constexpr double kMiB = 1048576.0;
constexpr int kGpmRing = 3;  // samples kept per GPM stream (see GpmStream)

// Every counter this backend can serve. GPM counters come first: they are the
// ones schedulers care most about, and a device publishes them first.
enum Counter : std::uint32_t {
    kSmActive, kSmOccupancy, kTensorActive, kDramActive, kGrActive, kPcieTx, kPcieRx, kNvlinkTx, kNvlinkRx,
    kMemUsed, kPower, kTemp, kSmClock, kMemClock, kThrottle, kGpuUtil, kMemUtil, kEccUncorrected,
};
constexpr drivers::CounterDef kCounters[] = {
    // GPM: device level, or partition level under MIG for those measured per GPU instance.
    {kSmActive, "sm_active", kDeviceLevel, "ratio", "fraction of SMs busy (GPM SM_UTIL)"},
    {kSmOccupancy, "sm_occupancy", kDeviceLevel, "ratio", "resident warps / max warps (GPM SM_OCCUPANCY)"},
    {kTensorActive, "tensor_active", kDeviceLevel, "ratio", "tensor pipes active (GPM ANY_TENSOR_UTIL)"},
    {kDramActive, "dram_active", kDeviceLevel, "ratio", "DRAM bandwidth used / peak (GPM DRAM_BW_UTIL)"},
    {kGrActive, "gr_active", kDeviceLevel, "ratio", "graphics/compute engine active (GPM GRAPHICS_UTIL)"},
    {kPcieTx, "pcie_tx", kDeviceLevel, "B/s", "PCIe bytes sent by the GPU per second (GPM)"},
    {kPcieRx, "pcie_rx", kDeviceLevel, "B/s", "PCIe bytes received per second (GPM)"},
    {kNvlinkTx, "nvlink_tx", kDeviceLevel, "B/s", "NVLink bytes written per second, all links (GPM)"},
    {kNvlinkRx, "nvlink_rx", kDeviceLevel, "B/s", "NVLink bytes read per second, all links (GPM)"},
    // NVML device queries.
    {kMemUsed, "mem_used", kDeviceLevel, "bytes", "device memory in use (nvmlDeviceGetMemoryInfo)"},
    {kPower, "power", kDeviceLevel, "W", "board power draw (nvmlDeviceGetPowerUsage)"},
    {kTemp, "temp", kDeviceLevel, "C", "GPU die temperature"},
    {kSmClock, "sm_clock", kDeviceLevel, "Hz", "current SM clock"},
    {kMemClock, "mem_clock", kDeviceLevel, "Hz", "current memory clock"},
    {kThrottle, "throttle", kDeviceLevel, "mask",
     "clock event (throttle) reasons, nvmlClocksEventReasons bits, OR over the window", Aggregation::BitOr},
    {kGpuUtil, "gpu_util", kDeviceLevel, "ratio",
     "fraction of the last period with a kernel running (nvmlDeviceGetUtilizationRates)"},
    {kMemUtil, "mem_util", kDeviceLevel, "ratio",
     "fraction of the last period with device memory being read or written"},
    {kEccUncorrected, "ecc_uncorrected", kDeviceLevel, "count", "uncorrected ECC errors since the driver loaded",
     Aggregation::Last},
};
static_assert(drivers::rows_in_order(kCounters), "kCounters rows must follow the Counter enum");

// The GPM metric behind each GPM counter, and the factor to the counter's unit.
struct GpmSource {
    std::uint32_t counter;
    unsigned metric;
    double scale;
    bool per_instance;  // measured per GPU instance under MIG
};
constexpr GpmSource kGpmSources[] = {
    {kSmActive, kGpmSmUtil, 0.01, true},
    {kSmOccupancy, kGpmSmOccupancy, 0.01, true},
    {kTensorActive, kGpmAnyTensorUtil, 0.01, true},
    {kDramActive, kGpmDramBwUtil, 0.01, true},
    {kGrActive, kGpmGraphicsUtil, 0.01, true},
    {kPcieTx, kGpmPcieTxPerSec, kMiB, false},
    {kPcieRx, kGpmPcieRxPerSec, kMiB, false},
    {kNvlinkTx, kGpmNvlinkTotalTxPerSec, kMiB, false},
    {kNvlinkRx, kGpmNvlinkTotalRxPerSec, kMiB, false},
};
constexpr std::size_t kMaxGpmMetrics = sizeof kGpmSources / sizeof kGpmSources[0];

// Errors that mean the GPU itself is gone (fell off the bus, needs a reset).
bool gpu_gone(Return r) {
    return r == kErrorGpuIsLost || r == kErrorGpuNotFound || r == kErrorResetRequired ||
           r == kErrorDriverNotLoaded;
}

// One NVML query on the hot path, with its own support state: repeated
// NOT_SUPPORTED turns it off for good, any other error only blanks one read.
struct Query {
    bool on = false;
    std::uint32_t unsupported = 0;
};

// What one read saw, across all its queries.
struct Outcome {
    std::uint32_t ok = 0, unknown = 0, failed = 0;
    Return lost = kSuccess;
    const char* function = nullptr;  // first failing function, for the detail text
    Return first_error = kSuccess;
};

// A GPM stream: the whole device, or one GPU instance under MIG. Metrics need
// two samples at least one refresh apart (closer ones read zero), so a ring of
// samples lets a read that comes a little early compare against the one before.
struct GpmStream {
    bool mig = false;
    unsigned gpu_instance = 0;
    GpmSample samples[kGpmRing] = {};
    std::int64_t taken_ns[kGpmRing] = {};
    int valid = 0;  // samples taken so far (capped at kGpmRing)
    int next = 0;
    Query query;
    // Metrics asked of this stream and where each value goes.
    std::uint32_t metrics = 0;
    unsigned metric_id[kMaxGpmMetrics] = {};
    std::uint32_t counter[kMaxGpmMetrics] = {};  // Counter id
    std::uint32_t slot[kMaxGpmMetrics] = {};     // float index in the sample (resolved in describe)
    double scale[kMaxGpmMetrics] = {};
};

// describe()'s refusal of a GPU whose SM count nothing gives: the driver leaves it out.
struct UnknownSmCount : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct NvmlDevice {
    Device handle = nullptr;
    DeviceDescription description;
    drivers::CounterTable counters{kCounters};
    Query memory, power, temp, sm_clock, mem_clock, throttle, util, ecc;
    bool memory_v2 = false;
    bool event_reasons = false;  // ClocksEventReasons (else the older ThrottleReasons name)
    std::vector<GpmStream> gpm;
};

// "NVIDIA H100 80GB HBM3 MIG 1c.3g.40gb" -> "MIG 3g.40gb" (the GPU instance profile).
std::string mig_profile_from_name(const std::string& name) {
    const auto at = name.find("MIG ");
    if (at == std::string::npos) return "";
    std::string profile = name.substr(at + 4);
    const auto dot = profile.find('.');
    // A compute-instance name prefixes the GPU-instance profile with "<n>c.".
    if (dot != std::string::npos && dot > 1 && profile[dot - 1] == 'c' &&
        profile.find('.', dot + 1) != std::string::npos)
        profile = profile.substr(dot + 1);
    return "MIG " + profile;
}

std::int32_t numa_from_sysfs(const std::string& bus_id) {
    // NVML: "00000000:18:00.0" (8-digit domain); sysfs: "0000:18:00.0", lowercase.
    std::string id = bus_id.size() > 12 ? bus_id.substr(bus_id.size() - 12) : bus_id;
    std::transform(id.begin(), id.end(), id.begin(), [](unsigned char c) { return std::tolower(c); });
    std::ifstream f("/sys/bus/pci/devices/" + id + "/numa_node");
    int node = -1;
    if (f >> node && node >= 0) return node;
    return -1;
}

const char* topology_path(int level) {
    switch (level) {  // nvidia-smi topo's names
    case kTopologyInternal: return "X";
    case kTopologySingle: return "PIX";
    case kTopologyMultiple: return "PXB";
    case kTopologyHostbridge: return "PHB";
    case kTopologyNode: return "NODE";
    case kTopologySystem: return "SYS";
    default: return "";
    }
}

class NvmlDriver final : public Driver {
public:
    NvmlDriver(const NvmlOptions& options, std::vector<std::string>* notes)
        : options_(options), nvml_(options.library) {
        auto note = [&](const std::string& line) {
            if (notes) notes->push_back(line);
        };
        unsigned count = 0;
        Return r = nvml_.nvmlDeviceGetCount_v2(&count);
        if (r != kSuccess) throw std::runtime_error("nvml: " + nvml_.describe("nvmlDeviceGetCount_v2", r));
        std::vector<std::uint32_t> indices = options.devices;
        if (indices.empty())
            for (unsigned i = 0; i < count; ++i) indices.push_back(i);
        for (auto index : indices)
            if (index >= count)
                throw std::invalid_argument("nvml: device index " + std::to_string(index) + " does not exist (" +
                                            std::to_string(count) + " NVIDIA devices)");
        request_.reset(new GpmMetricsGet());
        for (auto index : indices) {
            try {
                devices_.push_back(describe(index, note));
            } catch (const UnknownSmCount& e) {
                // Its topo would be invalid (units >= 1, PROTOCOL.md §3.1) and clients would
                // reject the whole node's: the others are served, this one is said.
                note(std::string("WARNING ") + e.what());
            }
        }
        describe_links(count, note);
        for (auto& d : devices_) d.description.validate();
    }

    ~NvmlDriver() override {
        for (auto& d : devices_)
            for (auto& s : d.gpm)
                for (auto& sample : s.samples)
                    if (sample && nvml_.nvmlGpmSampleFree) nvml_.nvmlGpmSampleFree(sample);
    }

    std::string name() const override { return "nvml"; }
    std::size_t device_count() const override { return devices_.size(); }
    const DeviceDescription& device(std::size_t index) const override { return devices_.at(index).description; }
    std::int64_t min_read_interval_ns(std::size_t) const override { return kRefreshNs; }

    ReadStatus read(std::size_t index, std::int64_t now_ns, float* values, char* detail,
                    std::size_t detail_size) noexcept override;

private:
    NvmlDevice describe(std::uint32_t index, const std::function<void(const std::string&)>& note);
    std::uint32_t whole_gpu_sms(Device handle, const DeviceDescription& desc,
                                const std::function<void(const std::string&)>& note, std::string& why) const;
    void describe_links(unsigned count, const std::function<void(const std::string&)>& note);
    void add_gpm(NvmlDevice& d, bool mig, const std::function<void(const std::string&)>& note);
    bool check(Return r, Query& q, Outcome& o, const char* function) noexcept;
    void read_gpm(GpmStream& s, Device handle, std::int64_t now_ns, float* values, Outcome& o) noexcept;

    NvmlOptions options_;
    Library nvml_;
    std::vector<NvmlDevice> devices_;
    std::unique_ptr<GpmMetricsGet> request_;  // one request buffer, reused (sampler thread only)
    const GpmStream* request_stream_ = nullptr;  // the stream whose metric ids request_ holds
};

// Support of one query at describe time: absent symbol or NOT_SUPPORTED -> off.
bool supported(Return r) { return r != kErrorNotSupported && r != kErrorFunctionNotFound; }

std::uint32_t NvmlDriver::whole_gpu_sms(Device handle, const DeviceDescription& desc,
                                        const std::function<void(const std::string&)>& note, std::string& why) const {
    unsigned cores = 0;
    int major = 0, minor = 0;
    const Return rc = nvml_.nvmlDeviceGetNumGpuCores ? nvml_.nvmlDeviceGetNumGpuCores(handle, &cores)
                                                     : kErrorFunctionNotFound;
    const Return rv = nvml_.nvmlDeviceGetCudaComputeCapability
                          ? nvml_.nvmlDeviceGetCudaComputeCapability(handle, &major, &minor)
                          : kErrorFunctionNotFound;
    std::uint32_t from_cores = 0;
    if (rc != kSuccess) {
        why = nvml_.describe("nvmlDeviceGetNumGpuCores", rc);
    } else if (rv != kSuccess) {
        why = nvml_.describe("nvmlDeviceGetCudaComputeCapability", rv);
    } else if ((from_cores = nvidia_sm_count_from_cores(cores, major, minor)) == 0) {
        why = std::to_string(cores) + " cores at compute capability " + std::to_string(major) + "." +
              std::to_string(minor) + " make no known number of SMs";
    }
    const std::uint32_t from_table = nvidia_sm_count_for_model(desc.model);
    if (from_cores != 0) {
        if (from_table != 0 && from_table != from_cores)
            note("nvml: " + desc.id + ": " + std::to_string(from_cores) + " SMs from NVML's core count, where the "
                 "model table says " + std::to_string(from_table) + " for '" + desc.model + "': the device's own count is used");
        return from_cores;
    }
    if (from_table == 0) {
        why += "; '" + desc.model + "' is not in the model table";
    }
    return from_table;
}

NvmlDevice NvmlDriver::describe(std::uint32_t index, const std::function<void(const std::string&)>& note) {
    NvmlDevice d;
    Return r = nvml_.nvmlDeviceGetHandleByIndex_v2(index, &d.handle);
    if (r != kSuccess)
        throw std::runtime_error("nvml: device " + std::to_string(index) + ": " +
                                 nvml_.describe("nvmlDeviceGetHandleByIndex_v2", r));
    DeviceDescription& desc = d.description;
    desc.index = index;
    desc.vendor = "nvidia";
    desc.backend = "nvml";
    desc.unit_kind = "sm";
    char text[kDeviceNameBufferSize] = {};
    if (nvml_.nvmlDeviceGetName && nvml_.nvmlDeviceGetName(d.handle, text, sizeof text) == kSuccess)
        desc.model = text;
    char uuid[kDeviceUuidBufferSize] = {};
    r = nvml_.nvmlDeviceGetUUID ? nvml_.nvmlDeviceGetUUID(d.handle, uuid, sizeof uuid) : kErrorFunctionNotFound;
    if (r != kSuccess)
        throw std::runtime_error("nvml: device " + std::to_string(index) +
                                 " has no UUID (needed as its stable id): " +
                                 nvml_.describe("nvmlDeviceGetUUID", r));
    desc.id = uuid;
    PciInfo pci{};
    if (nvml_.nvmlDeviceGetPciInfo_v3 && nvml_.nvmlDeviceGetPciInfo_v3(d.handle, &pci) == kSuccess)
        desc.pci = pci.busId;
    unsigned numa = 0;
    if (nvml_.nvmlDeviceGetNumaNodeId && nvml_.nvmlDeviceGetNumaNodeId(d.handle, &numa) == kSuccess)
        desc.numa = static_cast<std::int32_t>(numa);
    else if (!desc.pci.empty())
        desc.numa = numa_from_sysfs(desc.pci);

    // Memory: the versioned call also reports reserved memory correctly; the
    // original one is the fallback for older drivers.
    MemoryV2 mem2{};
    mem2.version = kMemoryV2Version;
    Memory mem{};
    if (nvml_.nvmlDeviceGetMemoryInfo_v2 && nvml_.nvmlDeviceGetMemoryInfo_v2(d.handle, &mem2) == kSuccess) {
        d.memory_v2 = true;
        d.memory.on = true;
        desc.memory_bytes = mem2.total;
    } else if (nvml_.nvmlDeviceGetMemoryInfo && nvml_.nvmlDeviceGetMemoryInfo(d.handle, &mem) == kSuccess) {
        d.memory.on = true;
        desc.memory_bytes = mem.total;
    }

    // MIG: one partition per GPU instance. MIG device handles are per compute
    // instance; their attributes give the instance's SMs and its GPU
    // instance's memory.
    bool mig = false;
    unsigned current = 0, pending = 0;
    if (nvml_.nvmlDeviceGetMigMode && nvml_.nvmlDeviceGetMigMode(d.handle, &current, &pending) == kSuccess &&
        current == kDeviceMigEnable) {
        mig = true;
        unsigned max_mig = 0;
        if (nvml_.nvmlDeviceGetMaxMigDeviceCount) nvml_.nvmlDeviceGetMaxMigDeviceCount(d.handle, &max_mig);
        std::map<unsigned, Partition> by_instance;
        for (unsigned i = 0; i < max_mig && nvml_.nvmlDeviceGetMigDeviceHandleByIndex; ++i) {
            Device mh = nullptr;
            if (nvml_.nvmlDeviceGetMigDeviceHandleByIndex(d.handle, i, &mh) != kSuccess) continue;
            unsigned gi = 0;
            if (!nvml_.nvmlDeviceGetGpuInstanceId || nvml_.nvmlDeviceGetGpuInstanceId(mh, &gi) != kSuccess)
                continue;
            Partition& p = by_instance[gi];
            p.id = std::to_string(gi);
            p.kind = "mig";
            DeviceAttributes attrs{};
            if (nvml_.nvmlDeviceGetAttributes_v2 && nvml_.nvmlDeviceGetAttributes_v2(mh, &attrs) == kSuccess) {
                p.units += attrs.multiprocessorCount;
                p.memory_bytes = std::max<std::uint64_t>(p.memory_bytes, attrs.memorySizeMB * 1048576ull);
            }
            char mig_name[kDeviceNameBufferSize] = {};
            if (p.profile.empty() && nvml_.nvmlDeviceGetName &&
                nvml_.nvmlDeviceGetName(mh, mig_name, sizeof mig_name) == kSuccess)
                p.profile = mig_profile_from_name(mig_name);
        }
        for (auto& [gi, p] : by_instance) desc.partitions.push_back(std::move(p));
        if (desc.partitions.empty()) note("nvml: " + desc.id + ": MIG is on but no GPU instance exists");
    }
    // SM count: NVML gives it only for MIG handles, so a whole GPU's comes
    // from the probe (CUDA's own count), NVML's core count or the model table.
    std::string sm_count_why;
    desc.units = whole_gpu_sms(d.handle, desc, note, sm_count_why);
    if (options_.probe_layout) {
        SmLayout layout;
        std::string why;
        if (mig) {
            note("nvml: " + desc.id + ": SM layout probe skipped: MIG is on (clusters cannot span instances)");
        } else if (probe_layout_cached(desc.id, desc.pci, options_, layout, why)) {
            desc.units = layout.units;
            desc.counts = {layout.gpcs, layout.tpcs, layout.units};
            desc.layout = {layout.gpc, layout.tpc};
            desc.layout_source = "probe";
            for (const auto& n : layout.notes) note("nvml: " + desc.id + ": SM layout: " + n);
        } else {
            note("nvml: " + desc.id + ": SM layout probe skipped: " + why);
        }
    }
    if (desc.units == 0 && mig)
        for (const auto& p : desc.partitions) desc.units += p.units;
    if (desc.units == 0)
        throw UnknownSmCount("nvml: " + desc.id + " (" + desc.model + ", device " + std::to_string(index) +
                             "): not published: its SM count is unknown (" + sm_count_why +
                             "); --nvml-sm-layout probe measures it with CUDA");
    if (desc.layout.empty()) {
        // Without the probe nothing says how SMs group into TPCs and GPCs (not
        // even how many GPCs are enabled on this part): publish the SM level
        // alone rather than coarser levels of invented or unknown size.
        desc.levels = {"sm"};
        desc.counts = {desc.units};
    } else {
        desc.levels = {"gpc", "tpc", "sm"};
    }
    if (desc.partitions.empty()) {
        Partition whole;
        whole.id = "0";
        whole.kind = "whole";
        whole.units = desc.units;
        whole.memory_bytes = desc.memory_bytes;
        desc.partitions.push_back(whole);
    }

    // GPM first: the counters schedulers care most about.
    if (options_.gpm) add_gpm(d, mig, note);

    auto declare = [&](Counter id) { d.counters.declare(desc, id); };
    if (d.memory.on) declare(kMemUsed);
    unsigned u = 0;
    unsigned long long ull = 0;
    if (nvml_.nvmlDeviceGetPowerUsage && supported(nvml_.nvmlDeviceGetPowerUsage(d.handle, &u))) {
        d.power.on = true;
        declare(kPower);
    }
    if (nvml_.nvmlDeviceGetTemperature && supported(nvml_.nvmlDeviceGetTemperature(d.handle, kTemperatureGpu, &u))) {
        d.temp.on = true;
        declare(kTemp);
    }
    if (nvml_.nvmlDeviceGetClockInfo && supported(nvml_.nvmlDeviceGetClockInfo(d.handle, kClockSm, &u))) {
        d.sm_clock.on = true;
        declare(kSmClock);
    }
    if (nvml_.nvmlDeviceGetClockInfo && supported(nvml_.nvmlDeviceGetClockInfo(d.handle, kClockMem, &u))) {
        d.mem_clock.on = true;
        declare(kMemClock);
    }
    if (nvml_.nvmlDeviceGetCurrentClocksEventReasons &&
        supported(nvml_.nvmlDeviceGetCurrentClocksEventReasons(d.handle, &ull))) {
        d.throttle.on = d.event_reasons = true;
    } else if (nvml_.nvmlDeviceGetCurrentClocksThrottleReasons &&
               supported(nvml_.nvmlDeviceGetCurrentClocksThrottleReasons(d.handle, &ull))) {
        d.throttle.on = true;
    }
    if (d.throttle.on) declare(kThrottle);
    Utilization util{};
    if (nvml_.nvmlDeviceGetUtilizationRates && supported(nvml_.nvmlDeviceGetUtilizationRates(d.handle, &util))) {
        d.util.on = true;
        declare(kGpuUtil);
        declare(kMemUtil);
    }
    if (nvml_.nvmlDeviceGetTotalEccErrors &&
        supported(nvml_.nvmlDeviceGetTotalEccErrors(d.handle, kMemoryErrorUncorrected, kVolatileEcc, &ull))) {
        d.ecc.on = true;
        declare(kEccUncorrected);
    }

    // Where every counter's values go, once; a per-instance GPM stream writes
    // its partition's element of each partition-level counter.
    d.counters.resolve(desc);
    for (auto& s : d.gpm) {
        std::uint32_t element = 0;
        for (std::size_t p = 0; s.mig && p < desc.partitions.size(); ++p)
            if (desc.partitions[p].id == std::to_string(s.gpu_instance)) element = static_cast<std::uint32_t>(p);
        for (std::uint32_t m = 0; m < s.metrics; ++m) s.slot[m] = d.counters.offset(s.counter[m]) + element;
    }
    return d;
}

void NvmlDriver::add_gpm(NvmlDevice& d, bool mig, const std::function<void(const std::string&)>& note) {
    DeviceDescription& desc = d.description;
    if (!nvml_.nvmlGpmQueryDeviceSupport || !nvml_.nvmlGpmSampleAlloc || !nvml_.nvmlGpmSampleFree ||
        !nvml_.nvmlGpmSampleGet || !nvml_.nvmlGpmMetricsGet) {
        note("nvml: " + desc.id + ": GPM counters absent: " + nvml_.path() + " has no GPM functions (driver < 520)");
        return;
    }
    GpmSupport support{};
    support.version = kGpmSupportVersion;
    if (nvml_.nvmlGpmQueryDeviceSupport(d.handle, &support) != kSuccess || !support.isSupportedDevice) {
        note("nvml: " + desc.id + ": GPM counters absent: not supported on this GPU (Hopper and later)");
        return;
    }
    if (mig && !nvml_.nvmlGpmMigSampleGet) {
        note("nvml: " + desc.id + ": per-instance GPM counters absent: no nvmlGpmMigSampleGet");
    }
    auto new_stream = [&](bool per_instance, unsigned gi) -> GpmStream* {
        GpmStream s;
        s.mig = per_instance;
        s.gpu_instance = gi;
        for (auto& sample : s.samples)
            if (nvml_.nvmlGpmSampleAlloc(&sample) != kSuccess) {
                note("nvml: " + desc.id + ": GPM counters absent: nvmlGpmSampleAlloc failed");
                for (auto& x : s.samples)
                    if (x) nvml_.nvmlGpmSampleFree(x);
                return nullptr;
            }
        s.query.on = true;
        d.gpm.push_back(s);
        return &d.gpm.back();
    };
    // Device stream: everything without MIG; only the link counters with MIG.
    GpmStream* device_stream = new_stream(false, 0);
    if (!device_stream) return;
    const std::size_t device_stream_index = d.gpm.size() - 1;
    std::vector<std::size_t> instance_streams;
    if (mig && nvml_.nvmlGpmMigSampleGet)
        for (const auto& p : desc.partitions) {
            if (!new_stream(true, static_cast<unsigned>(std::stoul(p.id)))) break;
            instance_streams.push_back(d.gpm.size() - 1);
        }
    for (const auto& m : kGpmSources) {
        const bool at_partition = mig && m.per_instance;
        if (at_partition && instance_streams.empty()) continue;
        d.counters.declare(desc, m.counter, at_partition ? kPartitionLevel : kDeviceLevel);
        auto attach = [&](GpmStream& s) {
            s.metric_id[s.metrics] = m.metric;
            s.scale[s.metrics] = m.scale;
            s.counter[s.metrics] = m.counter;  // its float index is resolved in describe()
            ++s.metrics;
        };
        if (at_partition)
            for (auto si : instance_streams) attach(d.gpm[si]);
        else
            attach(d.gpm[device_stream_index]);
    }
    if (d.gpm[device_stream_index].metrics == 0) {
        for (auto& x : d.gpm[device_stream_index].samples) nvml_.nvmlGpmSampleFree(x);
        d.gpm.erase(d.gpm.begin() + static_cast<std::ptrdiff_t>(device_stream_index));
    }
}

void NvmlDriver::describe_links(unsigned count, const std::function<void(const std::string&)>& note) {
    if (devices_.size() < 2) return;
    // Every NVML device's PCI id, to name NVLink peers (which may include
    // devices this driver does not serve).
    std::map<std::string, std::string> uuid_by_pci;
    for (unsigned i = 0; i < count; ++i) {
        Device h = nullptr;
        PciInfo pci{};
        char uuid[kDeviceUuidBufferSize] = {};
        if (nvml_.nvmlDeviceGetHandleByIndex_v2(i, &h) == kSuccess && nvml_.nvmlDeviceGetPciInfo_v3 &&
            nvml_.nvmlDeviceGetPciInfo_v3(h, &pci) == kSuccess && nvml_.nvmlDeviceGetUUID &&
            nvml_.nvmlDeviceGetUUID(h, uuid, sizeof uuid) == kSuccess)
            uuid_by_pci[pci.busId] = uuid;
    }
    for (auto& d : devices_) {
        std::map<std::string, std::uint32_t> nvlinks;  // peer uuid -> active links
        if (nvml_.nvmlDeviceGetNvLinkState && nvml_.nvmlDeviceGetNvLinkRemotePciInfo_v2) {
            for (unsigned link = 0; link < 64; ++link) {
                int active = 0;
                const Return r = nvml_.nvmlDeviceGetNvLinkState(d.handle, link, &active);
                if (r == kErrorInvalidArgument || r == kErrorNotSupported) break;  // past the last link
                if (r != kSuccess || !active) continue;
                PciInfo remote{};
                if (nvml_.nvmlDeviceGetNvLinkRemotePciInfo_v2(d.handle, link, &remote) != kSuccess) continue;
                auto it = uuid_by_pci.find(remote.busId);
                if (it != uuid_by_pci.end()) ++nvlinks[it->second];  // else an NVSwitch: no GPU peer
            }
        }
        for (auto& other : devices_) {
            if (&other == &d) continue;
            Link l;
            l.peer = other.description.id;
            int level = -1;
            if (nvml_.nvmlDeviceGetTopologyCommonAncestor &&
                nvml_.nvmlDeviceGetTopologyCommonAncestor(d.handle, other.handle, &level) == kSuccess)
                l.path = topology_path(level);
            auto nv = nvlinks.find(l.peer);
            if (nv != nvlinks.end()) {
                l.type = "nvlink";
                l.count = nv->second;
            } else {
                l.type = "pcie";
            }
            if (l.path.empty() && l.type == "pcie") continue;  // nothing known about this pair
            d.description.links.push_back(l);
        }
    }
    (void)note;
}

bool NvmlDriver::check(Return r, Query& q, Outcome& o, const char* function) noexcept {
    if (r == kSuccess) {
        q.unsupported = 0;
        ++o.ok;
        return true;
    }
    if (gpu_gone(r)) {
        if (o.lost == kSuccess) o.lost = r;
    } else if (r == kErrorUnknown) {
        ++o.unknown;
    } else {
        ++o.failed;
        if (r == kErrorNotSupported && ++q.unsupported >= options_.unsupported_limit) q.on = false;
    }
    if (o.function == nullptr) {
        o.function = function;
        o.first_error = r;
    }
    return false;
}

void NvmlDriver::read_gpm(GpmStream& s, Device handle, std::int64_t now_ns, float* values, Outcome& o) noexcept {
    const int i = s.next;
    const Return r = s.mig ? nvml_.nvmlGpmMigSampleGet(handle, s.gpu_instance, s.samples[i])
                           : nvml_.nvmlGpmSampleGet(handle, s.samples[i]);
    if (!check(r, s.query, o, s.mig ? "nvmlGpmMigSampleGet" : "nvmlGpmSampleGet")) return;
    s.taken_ns[i] = now_ns;
    // Ring index arithmetic without `%` (an integer division per step on the hot path).
    s.next = i + 1 == kGpmRing ? 0 : i + 1;
    const int earlier = s.valid;
    if (s.valid < kGpmRing) ++s.valid;
    // Newest earlier sample at least one refresh old: closer pairs read zero.
    int base = -1;
    for (int k = 1, j = i; k < kGpmRing && k <= earlier; ++k) {
        j = j == 0 ? kGpmRing - 1 : j - 1;
        if (now_ns - s.taken_ns[j] >= kRefreshNs) {
            base = j;
            break;
        }
    }
    if (base < 0) return;  // first read(s): no interval yet
    GpmMetricsGet& m = *request_;
    const std::uint32_t n = s.metrics;
    GpmMetric* const out = m.metrics;
    m.version = kGpmMetricsGetVersion;
    m.numMetrics = n;
    m.sample1 = s.samples[base];
    m.sample2 = s.samples[i];
    // The ids are rewritten only when another stream used the shared request
    // last; the per-metric answers are reset every time so that an entry the
    // library leaves untouched reads as absent: neither the previous read's
    // value nor a 0 (for sm_active, "idle") that nothing measured.
    if (request_stream_ != &s) {
        for (std::uint32_t k = 0; k < n; ++k) out[k].metricId = s.metric_id[k];
        request_stream_ = &s;
    }
    for (std::uint32_t k = 0; k < n; ++k) {
        out[k].nvmlReturn = kErrorUnknown;
        out[k].value = std::numeric_limits<double>::quiet_NaN();
    }
    Query q;
    q.on = true;
    if (!check(nvml_.nvmlGpmMetricsGet(&m), q, o, "nvmlGpmMetricsGet")) return;
    for (std::uint32_t k = 0; k < n; ++k) {
        const double v = out[k].value;
        // isfinite as one compare: false for NaN and both infinities.
        if (out[k].nvmlReturn == kSuccess && std::fabs(v) <= std::numeric_limits<double>::max())
            values[s.slot[k]] = static_cast<float>(v * s.scale[k]);
    }
}

ReadStatus NvmlDriver::read(std::size_t index, std::int64_t now_ns, float* values, char* detail,
                            std::size_t detail_size) noexcept {
    NvmlDevice& d = devices_[index];
    Outcome o;
    const Device h = d.handle;
    unsigned u = 0;
    unsigned long long ull = 0;
    // Each query stops the read as soon as the GPU is known to be gone: a lost
    // GPU can take milliseconds per call to answer.
#define CUAGENT_STOP_IF_LOST \
    if (o.lost != kSuccess) goto done;

    for (auto& s : d.gpm) {
        if (s.query.on) read_gpm(s, h, now_ns, values, o);
        CUAGENT_STOP_IF_LOST
    }
    if (d.memory.on) {
        if (d.memory_v2) {
            MemoryV2 mem{};
            mem.version = kMemoryV2Version;
            if (check(nvml_.nvmlDeviceGetMemoryInfo_v2(h, &mem), d.memory, o, "nvmlDeviceGetMemoryInfo_v2"))
                values[d.counters.offset(kMemUsed)] = static_cast<float>(mem.used);
        } else {
            Memory mem{};
            if (check(nvml_.nvmlDeviceGetMemoryInfo(h, &mem), d.memory, o, "nvmlDeviceGetMemoryInfo"))
                values[d.counters.offset(kMemUsed)] = static_cast<float>(mem.used);
        }
        CUAGENT_STOP_IF_LOST
    }
    if (d.power.on) {
        if (check(nvml_.nvmlDeviceGetPowerUsage(h, &u), d.power, o, "nvmlDeviceGetPowerUsage"))
            values[d.counters.offset(kPower)] = static_cast<float>(u) * 1e-3f;  // mW -> W
        CUAGENT_STOP_IF_LOST
    }
    if (d.temp.on) {
        if (check(nvml_.nvmlDeviceGetTemperature(h, kTemperatureGpu, &u), d.temp, o, "nvmlDeviceGetTemperature"))
            values[d.counters.offset(kTemp)] = static_cast<float>(u);
        CUAGENT_STOP_IF_LOST
    }
    if (d.sm_clock.on) {
        if (check(nvml_.nvmlDeviceGetClockInfo(h, kClockSm, &u), d.sm_clock, o, "nvmlDeviceGetClockInfo"))
            values[d.counters.offset(kSmClock)] = static_cast<float>(u) * 1e6f;  // MHz -> Hz
        CUAGENT_STOP_IF_LOST
    }
    if (d.mem_clock.on) {
        if (check(nvml_.nvmlDeviceGetClockInfo(h, kClockMem, &u), d.mem_clock, o, "nvmlDeviceGetClockInfo"))
            values[d.counters.offset(kMemClock)] = static_cast<float>(u) * 1e6f;
        CUAGENT_STOP_IF_LOST
    }
    if (d.throttle.on) {
        const Return r = d.event_reasons ? nvml_.nvmlDeviceGetCurrentClocksEventReasons(h, &ull)
                                         : nvml_.nvmlDeviceGetCurrentClocksThrottleReasons(h, &ull);
        // The reason bits in use sit far below 2^24, where a float is exact.
        if (check(r, d.throttle, o, "nvmlDeviceGetCurrentClocksEventReasons"))
            values[d.counters.offset(kThrottle)] = static_cast<float>(ull);
        CUAGENT_STOP_IF_LOST
    }
    if (d.util.on) {
        Utilization util{};
        if (check(nvml_.nvmlDeviceGetUtilizationRates(h, &util), d.util, o, "nvmlDeviceGetUtilizationRates")) {
            values[d.counters.offset(kGpuUtil)] = static_cast<float>(util.gpu) * 0.01f;
            values[d.counters.offset(kMemUtil)] = static_cast<float>(util.memory) * 0.01f;
        }
        CUAGENT_STOP_IF_LOST
    }
    if (d.ecc.on) {
        if (check(nvml_.nvmlDeviceGetTotalEccErrors(h, kMemoryErrorUncorrected, kVolatileEcc, &ull), d.ecc, o,
                  "nvmlDeviceGetTotalEccErrors"))
            values[d.counters.offset(kEccUncorrected)] = static_cast<float>(ull);
        CUAGENT_STOP_IF_LOST
    }
#undef CUAGENT_STOP_IF_LOST
done:
    ReadStatus status = ReadStatus::Ok;
    // A GPU that fell off the bus answers GPU_IS_LOST, or UNKNOWN to everything.
    if (o.lost != kSuccess || (o.ok == 0 && o.unknown > 0 && o.failed == 0))
        status = ReadStatus::Lost;
    else if (o.ok == 0 && (o.unknown + o.failed) > 0)
        status = ReadStatus::Error;
    if (status != ReadStatus::Ok && detail != nullptr && detail_size > 0) {
        const Return r = o.lost != kSuccess ? o.lost : o.first_error;
        const char* text = nvml_.nvmlErrorString ? nvml_.nvmlErrorString(r) : nullptr;
        std::snprintf(detail, detail_size, "%s: %s (%d)", o.function ? o.function : "nvml",
                      text ? text : "error", r);
    }
    return status;
}

}  // namespace

std::unique_ptr<Driver> make_nvml_driver(const NvmlOptions& options, std::vector<std::string>* notes) {
    return std::make_unique<NvmlDriver>(options, notes);
}

}  // namespace cuagent
