#include "mock_scenarios.hpp"

#include <algorithm>
#include <stdexcept>

namespace cuagent::mock {
namespace {

// --- Kernels ---------------------------------------------------------------
// A persistent bf16 GEMM, as cuBLAS runs on Hopper: one big-tile block per
// unit (shared memory allows no second), 9 warps, so occupancy per active SM is
// 9/64 = 0.14 (trace: sm_occupancy 0.136 at sm_active 0.93). Tensor pipe busy
// 97% of the time a block is resident (trace: tensor/sm_active = 0.896/0.922),
// DRAM 0.25 of a unit's share (trace dram_active 0.23). Blocks of one launch
// finish within ~2% of each other; with ~80 us between 3 ms launches that
// leaves sm_active ~0.93.
constexpr KernelTemplate kGemm{"gemm_bf16_persistent", 288, 0.9, 1.0, 1.0, 2,
                               3000.0, 0.05, 0.015, {970, 300, 120, 250}};
// Elementwise / norm kernel between GEMMs: one full wave of 1024-thread
// blocks (two per unit fill all 64 warp slots), memory-bound.
constexpr KernelTemplate kElementwise{"layernorm_gelu", 1024, 0.02, 2.0, 2.0, 1,
                                      60.0, 0.1, 0.1, {0, 450, 550, 440}};
// Decode-step kernels of an inference server: small grids (a fraction of the
// units), blocks of a few hundred microseconds.
constexpr KernelTemplate kDecodeGemv{"decode_gemv", 128, 0.1, 0.1, 0.6, 1,
                                     120.0, 0.3, 0.1, {400, 350, 450, 200}};
constexpr KernelTemplate kDecodeAttention{"decode_attention", 256, 0.3, 0.2, 0.8, 1,
                                          200.0, 0.3, 0.15, {600, 300, 400, 250}};
// A long-running kernel that holds every unit of its domain for seconds.
constexpr KernelTemplate kLongSolver{"long_solver", 512, 0.9, 1.0, 1.0, 1,
                                     3.0e6, 0.2, 0.002, {600, 400, 250, 300}};
// Random gathers over a working set far larger than L2: six blocks of 8 warps
// per unit (0.75 occupancy), issue slots mostly stalled on memory, DRAM
// oversubscribed. Long grid-stride blocks, eight waves per launch.
constexpr KernelTemplate kGather{"embedding_gather", 256, 0.15, 48.0, 48.0, 1,
                                 10000.0, 0.1, 0.12, {0, 120, 850, 160}};

// --- Streams ---------------------------------------------------------------
StreamPlan training(const Preset& p) {
    KernelTemplate gemm = kGemm;
    if (!p.clusters) gemm.cluster = 1;
    return {"training", {gemm, gemm, gemm, gemm, kElementwise}, 80.0, 0, 1, 1, {}};
}
StreamPlan inference() {
    // Requests arrive as a Poisson process (mean 10 ms apart), each a burst of
    // 10-40 decode kernels.
    return {"inference", {kDecodeGemv, kDecodeAttention, kDecodeGemv}, 8.0, 10.0, 10, 40, {}};
}
StreamPlan long_solver() { return {"long_solver", {kLongSolver}, 200.0, 0, 1, 1, {}}; }
StreamPlan thrashing() { return {"thrashing", {kGather}, 20.0, 0, 1, 1, {}}; }

// Memory a workload keeps allocated, as a fraction of its memory.
double memory_share(const std::string& workload) {
    if (workload == "training") return 0.85;
    if (workload == "inference") return 0.55;
    if (workload == "long_solver") return 0.45;
    if (workload == "thrashing") return 0.7;
    return 0.0;
}

std::vector<std::uint16_t> in_dispatch_order(const Preset& p, const std::vector<bool>& member) {
    std::vector<std::uint16_t> out;
    for (auto u : p.dispatch_order)
        if (member[u]) out.push_back(u);
    return out;
}

std::vector<bool> units_of_groups(const Preset& p, const std::vector<std::uint32_t>& groups) {
    std::vector<bool> member(p.units, false);
    for (std::uint32_t u = 0; u < p.units; ++u)
        for (auto g : groups)
            if (p.layout.front()[u] == g) member[u] = true;
    return member;
}

Partition whole(const Preset& p) {
    Partition w;
    w.id = "0";
    w.kind = "whole";
    w.units = p.units;
    for (std::uint32_t u = 0; u < p.units; ++u) w.unit_ids.push_back(static_cast<std::uint16_t>(u));
    w.memory_bytes = p.memory_bytes;
    return w;
}

std::uint64_t used(std::uint64_t memory, const std::string& workload) {
    return static_cast<std::uint64_t>(static_cast<double>(memory) * memory_share(workload));
}

}  // namespace

std::vector<std::string> scenario_names() {
    return {"idle", "training", "inference", "fragmented", "thrashing", "mig"};
}

ScenarioPlan make_scenario(const std::string& name, const Preset& p) {
    ScenarioPlan s;
    s.name = name;
    s.mem_used_bytes = p.power.mem_idle_bytes;
    const std::vector<bool> all(p.units, true);

    if (name == "mig") {
        // Each partition runs its own workload: training, inference, thrashing,
        // idle, repeating over the partitions.
        const char* rotation[4] = {"training", "inference", "thrashing", "idle"};
        for (std::size_t i = 0; i < p.partition_plan.size(); ++i) {
            const auto& plan = p.partition_plan[i];
            const std::vector<bool> member = units_of_groups(p, plan.groups);
            Partition part;
            part.id = std::to_string(i);
            part.kind = p.partition_kind;
            part.profile = plan.profile;
            for (std::uint32_t u = 0; u < p.units; ++u)
                if (member[u]) part.unit_ids.push_back(static_cast<std::uint16_t>(u));
            part.units = static_cast<std::uint32_t>(part.unit_ids.size());
            part.memory_bytes =
                static_cast<std::uint64_t>(static_cast<double>(p.memory_bytes) * plan.memory_fraction);
            const std::string workload = rotation[i % 4];
            StreamPlan stream;
            if (workload == "training") stream = training(p);
            else if (workload == "inference") stream = inference();
            else if (workload == "thrashing") stream = thrashing();
            if (!stream.cycle.empty()) {
                stream.name = workload + "@" + part.id;
                stream.domain = in_dispatch_order(p, member);
                s.streams.push_back(stream);
            }
            s.mem_used_bytes += used(part.memory_bytes, workload);
            s.partitions.push_back(part);
        }
        return s;
    }

    s.partitions = {whole(p)};
    StreamPlan stream;
    if (name == "idle") {
        return s;
    } else if (name == "training") {
        stream = training(p);
    } else if (name == "inference") {
        stream = inference();
    } else if (name == "thrashing") {
        stream = thrashing();
    } else if (name == "fragmented") {
        // A job pinned (SM masks / green contexts / CU masking) to the first
        // ~4/9 of the top-level groups with kernels that hold them for seconds;
        // the remaining groups have nothing to run. Always leaves at least one
        // whole group idle when there are two or more.
        stream = long_solver();
        const std::uint32_t g = p.groups();
        std::uint32_t pinned = std::max<std::uint32_t>(1, (g * 4) / 9);
        if (g >= 2) pinned = std::min(pinned, g - 1);
        std::vector<std::uint32_t> groups;
        for (std::uint32_t i = 0; i < pinned; ++i) groups.push_back(i);
        stream.domain = in_dispatch_order(p, units_of_groups(p, groups));
        s.mem_used_bytes += used(p.memory_bytes, stream.name);
        s.streams.push_back(stream);
        return s;
    } else {
        std::string known;
        for (const auto& n : scenario_names()) known += (known.empty() ? "" : ", ") + n;
        throw std::invalid_argument("unknown mock scenario '" + name + "' (known: " + known + ")");
    }
    stream.domain = in_dispatch_order(p, all);
    s.mem_used_bytes += used(p.memory_bytes, stream.name);
    s.streams.push_back(stream);
    return s;
}

}  // namespace cuagent::mock
