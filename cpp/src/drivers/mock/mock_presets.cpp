#include "mock_presets.hpp"

#include <algorithm>
#include <stdexcept>

namespace cuagent::mock {
namespace {

// GPCs of the H100 80GB HBM3 measured with the thread-block-cluster probe
// (tests/data/h100-sxm-layout.json, written into this table because tests/ is not
// part of the package). Ordered by lowest SM id:
//  - gpc 0: the 8 SMs that took clusters up to 8 but not 10 ("group_max_cluster_8");
//  - gpc 1..7: the groups that took clusters of 16 ("gpc_groups_cluster16");
//  - gpc 8: SMs 124-131, which never ran a cluster above 2, so the probe
//    could not place them: they are their own group, not a guessed GPC.
// TPCs are the pairs (2k, 2k+1) that clusters of 2 always used.
const std::vector<std::vector<std::uint16_t>> kH100Gpcs = {
    {0, 1, 16, 17, 32, 33, 48, 49},
    {2, 3, 18, 19, 34, 35, 50, 51, 64, 65, 78, 79, 92, 93, 106, 107},
    {4, 5, 20, 21, 36, 37, 52, 53, 66, 67, 80, 81, 94, 95, 108, 109},
    {6, 7, 22, 23, 38, 39, 54, 55, 68, 69, 82, 83, 96, 97, 110, 111},
    {8, 9, 24, 25, 40, 41, 56, 57, 70, 71, 84, 85, 98, 99, 112, 113},
    {10, 11, 26, 27, 42, 43, 58, 59, 72, 73, 86, 87, 100, 101, 114, 115},
    {12, 13, 28, 29, 44, 45, 60, 61, 74, 75, 88, 89, 102, 103, 116, 117, 120, 121},
    {14, 15, 30, 31, 46, 47, 62, 63, 76, 77, 90, 91, 104, 105, 118, 119, 122, 123},
    {124, 125, 126, 127, 128, 129, 130, 131},
};

constexpr std::uint64_t kGiB = 1024ull * 1024 * 1024;

std::vector<std::uint16_t> ascending(std::uint32_t n) {
    std::vector<std::uint16_t> v(n);
    for (std::uint32_t i = 0; i < n; ++i) v[i] = static_cast<std::uint16_t>(i);
    return v;
}

// NVIDIA-style three-level part from a unit -> GPC map and TPC = unit / 2.
void fill_gpc_tpc_sm(Preset& p, const std::vector<std::uint16_t>& gpc_of_unit,
                     std::uint32_t gpcs) {
    p.unit_kind = "sm";
    p.levels = {"gpc", "tpc", "sm"};
    p.counts = {gpcs, (p.units + 1) / 2, p.units};
    std::vector<std::uint16_t> tpc(p.units);
    for (std::uint32_t u = 0; u < p.units; ++u) tpc[u] = static_cast<std::uint16_t>(u / 2);
    p.layout = {gpc_of_unit, tpc};
    p.dispatch_order = ascending(p.units);
}

Preset h100() {
    Preset p;
    p.name = "h100-sxm";
    p.model = "NVIDIA H100 80GB HBM3 (mock)";
    p.units = 132;
    std::vector<std::uint16_t> gpc(p.units);
    for (std::size_t g = 0; g < kH100Gpcs.size(); ++g)
        for (auto u : kH100Gpcs[g]) gpc[u] = static_cast<std::uint16_t>(g);
    fill_gpc_tpc_sm(p, gpc, static_cast<std::uint32_t>(kH100Gpcs.size()));
    p.memory_bytes = 85520809984ull;  // the traced H100's memory_total
    p.limits = {64, 32, 228 * 1024, 32};
    p.power = kH100Power;
    p.clusters = true;
    // MIG 3g+2g+1g+1g on whole GPCs (the seven cluster-16 GPCs are the seven
    // slices). A real 3g.40gb has 60 SMs; the mock keeps GPCs whole instead of
    // inventing which SMs the driver would add.
    p.partition_kind = "mig";
    p.partition_plan = {{"MIG 3g.40gb", {1, 2, 3}, 4.0 / 8},
                        {"MIG 2g.20gb", {4, 5}, 2.0 / 8},
                        {"MIG 1g.10gb", {6}, 1.0 / 8},
                        {"MIG 1g.10gb", {7}, 1.0 / 8}};
    return p;
}

Preset a100() {
    // A100 SXM4: 108 SMs = 54 TPCs in 7 GPCs (8,8,8,8,8,7,7 TPCs). Plausible,
    // not measured: TPC k goes round-robin to the GPCs, so SM ids interleave
    // GPCs as on the measured H100.
    Preset p;
    p.name = "a100-sxm";
    p.model = "NVIDIA A100-SXM4-80GB (mock)";
    p.units = 108;
    const std::uint32_t tpcs_per_gpc[7] = {8, 8, 8, 8, 8, 7, 7};
    std::uint32_t used[7] = {};
    std::vector<std::uint16_t> gpc(p.units);
    std::uint32_t g = 0;
    for (std::uint32_t tpc = 0; tpc < 54; ++tpc) {
        while (used[g] == tpcs_per_gpc[g]) g = (g + 1) % 7;
        gpc[2 * tpc] = gpc[2 * tpc + 1] = static_cast<std::uint16_t>(g);
        ++used[g];
        g = (g + 1) % 7;
    }
    fill_gpc_tpc_sm(p, gpc, 7);
    p.memory_bytes = 80 * kGiB;
    p.limits = {64, 32, 164 * 1024, 32};
    p.power = kA100Power;
    p.clusters = false;  // clusters arrived with Hopper
    p.partition_kind = "mig";
    p.partition_plan = {{"MIG 3g.40gb", {0, 1, 2}, 4.0 / 8},
                        {"MIG 2g.20gb", {3, 4}, 2.0 / 8},
                        {"MIG 1g.10gb", {5}, 1.0 / 8},
                        {"MIG 1g.10gb", {6}, 1.0 / 8}};
    return p;
}

Preset mi300x() {
    // MI300X: 8 XCDs x 38 CUs = 304, each XCD 4 shader engines (40 CUs on the
    // die, 2 fused off: 10+10+9+9). CU ids are contiguous per XCD, as the KFD
    // topology enumerates them; workgroups go round-robin over XCDs.
    Preset p;
    p.name = "mi300x";
    p.model = "AMD Instinct MI300X (mock)";
    p.unit_kind = "cu";
    p.units = 304;
    p.levels = {"xcd", "se", "cu"};
    p.counts = {8, 32, 304};
    const std::uint32_t se_start[4] = {0, 10, 20, 29};
    std::vector<std::uint16_t> xcd(p.units), se(p.units);
    for (std::uint32_t u = 0; u < p.units; ++u) {
        const std::uint32_t x = u / 38, local = u % 38;
        std::uint32_t s = 0;
        while (s < 3 && local >= se_start[s + 1]) ++s;
        xcd[u] = static_cast<std::uint16_t>(x);
        se[u] = static_cast<std::uint16_t>(x * 4 + s);
    }
    p.layout = {xcd, se};
    for (std::uint32_t local = 0; local < 38; ++local)
        for (std::uint32_t x = 0; x < 8; ++x)
            p.dispatch_order.push_back(static_cast<std::uint16_t>(x * 38 + local));
    p.memory_bytes = 192 * kGiB;
    p.limits = {32, 32, 64 * 1024, 64};
    p.power = kMI300XPower;
    p.clusters = false;
    // CPX: every XCD is its own compute partition.
    p.partition_kind = "xcp";
    for (std::uint32_t x = 0; x < 8; ++x) p.partition_plan.push_back({"CPX", {x}, 1.0 / 8});
    return p;
}

Preset generic(std::uint32_t units) {
    // An NVIDIA-like part with `units` SMs in GPCs of 16 (the last may be
    // smaller) and no TPC level; its power model is the H100's scaled by size.
    constexpr std::uint32_t kGroup = 16;
    if (units < 1 || units > 4096)
        throw std::invalid_argument("mock preset 'generic': units must be in 1..4096, got " +
                                    std::to_string(units));
    Preset p;
    p.name = "generic";
    p.model = "Mock GPU (" + std::to_string(units) + " SMs)";
    p.unit_kind = "sm";
    p.units = units;
    const std::uint32_t groups = (units + kGroup - 1) / kGroup;
    p.levels = {"gpc", "sm"};
    p.counts = {groups, units};
    std::vector<std::uint16_t> gpc(units);
    for (std::uint32_t u = 0; u < units; ++u) gpc[u] = static_cast<std::uint16_t>(u / kGroup);
    p.layout = {gpc};
    p.dispatch_order = ascending(units);
    p.memory_bytes = 16 * kGiB;
    p.limits = {64, 32, 228 * 1024, 32};
    PowerCalibration pc = kH100Power;
    const double scale = static_cast<double>(units) / 132.0;
    pc.idle_w *= scale;
    pc.static_fmax_w *= scale;
    pc.cap_w *= scale;
    pc.k_active_w *= scale;
    pc.k_tensor_w *= scale;
    pc.k_issue_w *= scale;
    pc.k_dram_w *= scale;
    pc.r_fast_c_per_w /= scale;
    pc.r_slow_c_per_w /= scale;
    p.power = pc;
    p.clusters = true;
    p.partition_kind = "mig";
    if (groups >= 2) {
        PartitionPlan a{"half", {}, 0.5}, b{"half", {}, 0.5};
        for (std::uint32_t g = 0; g < groups; ++g) (g < groups / 2 ? a : b).groups.push_back(g);
        p.partition_plan = {a, b};
    } else {
        p.partition_plan = {{"whole", {0}, 1.0}};
    }
    return p;
}

}  // namespace

std::vector<std::uint16_t> Preset::group_units(std::uint32_t g) const {
    std::vector<std::uint16_t> out;
    for (std::uint32_t u = 0; u < units; ++u)
        if (layout.front()[u] == g) out.push_back(static_cast<std::uint16_t>(u));
    return out;
}

std::vector<std::string> preset_names() { return {"h100-sxm", "a100-sxm", "mi300x", "generic"}; }

Preset make_preset(const std::string& name, std::uint32_t units) {
    if (name != "generic" && units != 0)
        throw std::invalid_argument("mock preset '" + name +
                                    "' has a fixed unit count; units= is only for 'generic'");
    if (name == "h100-sxm") return h100();
    if (name == "a100-sxm") return a100();
    if (name == "mi300x") return mi300x();
    if (name == "generic") {
        if (units == 0)
            throw std::invalid_argument("mock preset 'generic' needs units (1..4096)");
        return generic(units);
    }
    std::string known;
    for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw std::invalid_argument("unknown mock preset '" + name + "' (known: " + known + ")");
}

}  // namespace cuagent::mock
