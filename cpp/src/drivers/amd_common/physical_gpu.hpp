// One physical AMD GPU as both AMD drivers see it, whatever their library
// calls its devices: its description, whether its counters are read per
// compute partition, its partition shape, its gpu_metrics table and where each
// counter sits in its sample. Each driver's Gpu adds the library devices
// behind it and which source feeds each counter.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/counter_table.hpp"
#include "compute_topology.hpp"
#include "cuagent/topology.hpp"
#include "kfd.hpp"
#include "metrics_table.hpp"

namespace cuagent::amd {

struct PhysicalGpu {
    template <std::size_t N>
    explicit PhysicalGpu(const drivers::CounterDef (&rows)[N]) : counters(rows) {}

    DeviceDescription desc;
    // Counters that have one value per partition are read per partition
    // device: the library shows one device per KFD partition node (an older
    // one shows a partitioned GPU once, read as a whole).
    bool per_partition = false;
    XcdShape shape;            // XCPs in the table (compute partitions), XCCs in each
    MetricsTable table;        // read-to-read state: the sampler thread only
    drivers::CounterTable counters;

    // Slow path, after the id and model: per_partition from the GPU's KFD
    // `nodes` and its `devices` in the library, then its memory, units, levels
    // and partitions (describe_compute). `memory_of(p)` reads the VRAM the
    // library reports for its p-th device (0 when it cannot say); each
    // partition's is read only where per_partition.
    template <typename MemoryOf>
    void describe(const std::vector<KfdNode>& nodes, std::size_t devices, const PartitionModes& modes,
                  MemoryOf memory_of) {
        per_partition = nodes.size() > 1 && devices == nodes.size();
        std::vector<std::uint64_t> partition_memory;
        for (std::size_t p = 0; per_partition && p < devices; ++p) partition_memory.push_back(memory_of(p));
        shape = describe_compute(desc, nodes, modes, memory_of(0), partition_memory);
    }

    // Slow path, after the last counter is declared: checks the description,
    // places each counter in the sample, then tells the table's decoder where
    // its values go: `targets()`, a TableTargets, read from the placed counters.
    template <typename TargetsOf>
    void finish(TargetsOf targets) {
        desc.validate();
        counters.resolve(desc);
        table.configure(shape, desc.counts.front(), targets());
    }
};

}  // namespace cuagent::amd
