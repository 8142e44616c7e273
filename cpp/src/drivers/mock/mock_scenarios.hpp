// Workloads for the mock: which kernels arrive, when, and where they may run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cuagent/topology.hpp"
#include "mock_presets.hpp"

namespace cuagent::mock {

// What a unit shows while a kernel's warps are resident on it, in per mille
// (integers, so the per-unit sums the simulator keeps are exact).
struct KernelProfile {
    std::uint16_t tensor;     // tensor/matrix pipe busy
    std::uint16_t issue;      // issue slots used
    std::uint16_t mem_stall;  // issue slots stalled on memory
    std::uint16_t dram;       // DRAM bandwidth one block pulls, in units of one
                              // unit's fair share (device dram_active = sum / units)
};

struct KernelTemplate {
    const char* name;
    std::uint32_t threads;          // per block
    double shared_fraction;         // of one unit's shared memory per block
    double grid_min_per_unit;       // grid = uniform(min, max) x units in the domain
    double grid_max_per_unit;
    std::uint32_t cluster;          // blocks per cluster (1: no clusters)
    double block_us;                // median block duration
    double kernel_sigma;            // log-spread of one launch's typical block time
    double block_sigma;             // log-spread of blocks around that
    KernelProfile profile;
};

struct StreamPlan {
    std::string name;
    std::vector<KernelTemplate> cycle;  // launched in order, repeating
    double gap_us = 0;                  // median gap between consecutive kernels
    double burst_interval_ms = 0;       // 0: back to back; else mean idle time between
    std::uint32_t burst_min = 1;        //   bursts (exponential: Poisson arrivals) of
    std::uint32_t burst_max = 1;        //   burst_min..burst_max kernels
    std::vector<std::uint16_t> domain;  // units it may use, in dispatch order
};

struct ScenarioPlan {
    std::string name;
    std::vector<Partition> partitions;
    std::vector<StreamPlan> streams;
    std::uint64_t mem_used_bytes = 0;
};

// Throws std::invalid_argument naming a bad scenario.
ScenarioPlan make_scenario(const std::string& name, const Preset& preset);
std::vector<std::string> scenario_names();

}  // namespace cuagent::mock
