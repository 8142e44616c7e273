// The PM-sampling metrics the cupti source configures, one pass together on
// GH100 (tests/test_cupti_real.py checks this against the real host library).
// They are rollups across units: no public NVIDIA API gives per-SM series.
#pragma once

#include <cstddef>

namespace cuagent::cupti {

enum Metric : std::size_t {
    kSmCyclesAvg, kSmCyclesMax, kSmCyclesMin, kTensorPct, kInstPct, kGpcHz, kDramReadPct, kDramWritePct,
    kNvlRxBytes, kNvlTxBytes, kPcieReadBytes, kPcieWriteBytes, kSmIdleWarpsPct, kMetricCount,
};

inline constexpr const char* kMetricNames[kMetricCount] = {
    "TPC.TriageCompute.sm__cycles_active.avg",
    "TPC.TriageCompute.sm__cycles_active.max",
    "TPC.TriageCompute.sm__cycles_active.min",
    "TPC.TriageCompute.sm__pipe_tensor_op_hmma_cycles_active_realtime.avg.pct_of_peak_sustained_elapsed",
    "TPC.TriageCompute.sm__inst_executed_realtime.avg.pct_of_peak_sustained_elapsed",
    "gpc__cycles_elapsed.avg.per_second",
    "dram__read_throughput.avg.pct_of_peak_sustained_elapsed",
    "dram__write_throughput.avg.pct_of_peak_sustained_elapsed",
    "nvlrx__bytes.sum",
    "nvltx__bytes.sum",
    "pcie__read_bytes.sum",
    "pcie__write_bytes.sum",
    "tpc__warps_inactive_sm_idle_realtime.avg.pct_of_peak_sustained_elapsed",
};

}  // namespace cuagent::cupti
