// What the amdsmi driver assumes of libamd_smi's ABI, listed for the test that
// compares it with AMD's ctypes description (tests/test_amdsmi_abi.py): every
// struct in amdsmi_abi.hpp, every field the driver reads, and the gpu_metrics
// offsets of amd_common/ in the layout AMD SMI 26 writes.
#include "amd_common/gpu_metrics.hpp"
#include "amdsmi_abi.hpp"
#include "cuagent/drivers/amdsmi.hpp"

namespace cuagent {

namespace {

using namespace amdsmi;
namespace m = amd::metrics;

#define STRUCT(T, NAME) out.push_back({NAME, "", 0, sizeof(T)})
#define FIELD(T, NAME, F) out.push_back({NAME, #F, offsetof(T, F), sizeof(T::F)})
#define NESTED(T, NAME, OUTER, F) \
    out.push_back({NAME, #OUTER "." #F, offsetof(T, OUTER) + offsetof(decltype(T::OUTER), F), sizeof(T::OUTER.F)})

}  // namespace

std::vector<AmdSmiAbiField> amdsmi_abi_fields() {
    std::vector<AmdSmiAbiField> out;
    STRUCT(Bdf, "amdsmi_bdf_t");
    STRUCT(Version, "amdsmi_version_t");
    FIELD(Version, "amdsmi_version_t", major);
    FIELD(Version, "amdsmi_version_t", minor);
    FIELD(Version, "amdsmi_version_t", release);
    FIELD(Version, "amdsmi_version_t", build);

    STRUCT(AsicInfo, "amdsmi_asic_info_t");
    FIELD(AsicInfo, "amdsmi_asic_info_t", market_name);
    FIELD(AsicInfo, "amdsmi_asic_info_t", device_id);
    FIELD(AsicInfo, "amdsmi_asic_info_t", num_of_compute_units);
    FIELD(AsicInfo, "amdsmi_asic_info_t", target_graphics_version);
    STRUCT(BoardInfo, "amdsmi_board_info_t");
    FIELD(BoardInfo, "amdsmi_board_info_t", product_name);

    STRUCT(KfdInfo, "amdsmi_kfd_info_t");
    FIELD(KfdInfo, "amdsmi_kfd_info_t", node_id);
    FIELD(KfdInfo, "amdsmi_kfd_info_t", current_partition_id);

    STRUCT(EngineUsage, "amdsmi_engine_usage_t");
    FIELD(EngineUsage, "amdsmi_engine_usage_t", gfx_activity);
    FIELD(EngineUsage, "amdsmi_engine_usage_t", umc_activity);
    STRUCT(PowerInfo, "amdsmi_power_info_t");
    FIELD(PowerInfo, "amdsmi_power_info_t", current_socket_power);
    FIELD(PowerInfo, "amdsmi_power_info_t", average_socket_power);
    STRUCT(ClkInfo, "amdsmi_clk_info_t");
    FIELD(ClkInfo, "amdsmi_clk_info_t", clk);
    STRUCT(ErrorCount, "amdsmi_error_count_t");
    FIELD(ErrorCount, "amdsmi_error_count_t", correctable_count);
    FIELD(ErrorCount, "amdsmi_error_count_t", uncorrectable_count);

    STRUCT(ProcInfo, "amdsmi_proc_info_t");
    FIELD(ProcInfo, "amdsmi_proc_info_t", name);
    FIELD(ProcInfo, "amdsmi_proc_info_t", pid);
    FIELD(ProcInfo, "amdsmi_proc_info_t", mem);
    NESTED(ProcInfo, "amdsmi_proc_info_t", engine_usage, gfx);
    NESTED(ProcInfo, "amdsmi_proc_info_t", memory_usage, vram_mem);
    FIELD(ProcInfo, "amdsmi_proc_info_t", cu_occupancy);

    // amdsmi_gpu_metrics_t: read through offsets (its layout is measured per
    // library, amd_common/gpu_metrics.hpp); these are the 26 layout's.
    const char* gm = "amdsmi_gpu_metrics_t";
    out.push_back({gm, "", 0, m::kLayoutV18.size});
    out.push_back({gm, "common_header.format_revision", m::kFormatRevision, 1});
    out.push_back({gm, "common_header.content_revision", m::kContentRevision, 1});
    out.push_back({gm, "temperature_edge", m::kTemperatureEdge, 2});
    out.push_back({gm, "temperature_hotspot", m::kTemperatureHotspot, 2});
    out.push_back({gm, "average_gfx_activity", m::kAverageGfxActivity, 2});
    out.push_back({gm, "average_umc_activity", m::kAverageUmcActivity, 2});
    out.push_back({gm, "average_socket_power", m::kAverageSocketPower, 2});
    out.push_back({gm, "current_gfxclk", m::kCurrentGfxclk, 2});
    out.push_back({gm, "current_uclk", m::kCurrentUclk, 2});
    out.push_back({gm, "firmware_timestamp", m::kFirmwareTimestamp, 8});
    out.push_back({gm, "indep_throttle_status", m::kIndepThrottleStatus, 8});
    out.push_back({gm, "current_socket_power", m::kCurrentSocketPower, 2});
    out.push_back({gm, "current_gfxclks", m::kCurrentGfxclks, 2 * m::kMaxXcc});
    out.push_back({gm, "accumulation_counter", m::kAccumulationCounter, 8});
    out.push_back({gm, "ppt_residency_acc", m::kPptResidencyAcc, 8});
    out.push_back({gm, "socket_thm_residency_acc", m::kSocketThmResidencyAcc, 8});
    out.push_back({gm, "num_partition", m::kNumPartition, 2});
    out.push_back({gm, "xcp_stats", m::kXcpStats, m::kMaxXcp * m::kLayoutV18.xcp_stride});
    const char* xcp = "amdsmi_gpu_xcp_metrics_t";
    out.push_back({xcp, "", 0, m::kLayoutV18.xcp_stride});
    out.push_back({xcp, "gfx_busy_inst", 0, 4 * m::kMaxXcc});
    out.push_back({xcp, "gfx_busy_acc", m::kLayoutV18.gfx_busy_acc, 8 * m::kMaxXcc});
    return out;
}

}  // namespace cuagent
