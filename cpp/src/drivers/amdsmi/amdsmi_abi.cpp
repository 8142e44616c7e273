// What the amdsmi driver assumes of libamd_smi's ABI, listed for the test that
// compares it with AMD's ctypes description (tests/test_amdsmi_abi.py): every
// struct in amdsmi_abi.hpp, every field the driver reads, and the gpu_metrics
// offsets of amd_common/ in the layout AMD SMI 26 writes.
#include <string>

#include "amd_common/gpu_metrics.hpp"
#include "amdsmi_abi.hpp"
#include "cuagent/drivers/amdsmi.hpp"

namespace cuagent {

namespace {

using namespace amdsmi;
namespace m = amd::metrics;

// The vocabulary of amdsmi_abi_functions(): each C++ type the function
// pointer types use, named as the test names AMD's ctypes types.
template <typename T> struct Kind;
template <> struct Kind<void> { static std::string name() { return "void"; } };
template <> struct Kind<void*> { static std::string name() { return "handle"; } };
template <> struct Kind<char> { static std::string name() { return "char"; } };
template <> struct Kind<const char> { static std::string name() { return "char"; } };
template <> struct Kind<std::uint32_t> { static std::string name() { return "u32"; } };
template <> struct Kind<std::uint64_t> { static std::string name() { return "u64"; } };
template <> struct Kind<std::int64_t> { static std::string name() { return "i64"; } };
template <> struct Kind<Status> { static std::string name() { return "u32"; } };
template <> struct Kind<Bdf> { static std::string name() { return "amdsmi_bdf_t"; } };
template <> struct Kind<Version> { static std::string name() { return "amdsmi_version_t"; } };
template <> struct Kind<AsicInfo> { static std::string name() { return "amdsmi_asic_info_t"; } };
template <> struct Kind<BoardInfo> { static std::string name() { return "amdsmi_board_info_t"; } };
template <> struct Kind<KfdInfo> { static std::string name() { return "amdsmi_kfd_info_t"; } };
template <> struct Kind<EngineUsage> { static std::string name() { return "amdsmi_engine_usage_t"; } };
template <> struct Kind<PowerInfo> { static std::string name() { return "amdsmi_power_info_t"; } };
template <> struct Kind<ClkInfo> { static std::string name() { return "amdsmi_clk_info_t"; } };
template <> struct Kind<ErrorCount> { static std::string name() { return "amdsmi_error_count_t"; } };
template <> struct Kind<ProcInfo> { static std::string name() { return "amdsmi_proc_info_t"; } };
template <> struct Kind<GpuMetrics> { static std::string name() { return "amdsmi_gpu_metrics_t"; } };
template <typename T> struct Kind<T*> { static std::string name() { return "ptr:" + Kind<T>::name(); } };

template <typename R, typename... A>
AmdSmiAbiFunction signature(const char* name, R (*)(A...)) {
    return {name, {Kind<R>::name(), Kind<A>::name()...}};
}

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

std::vector<std::pair<std::string, std::uint64_t>> amdsmi_abi_constants() {
    return {
        {"AMDSMI_STATUS_SUCCESS", kSuccess}, {"AMDSMI_STATUS_INVAL", kInval},
        {"AMDSMI_STATUS_NOT_SUPPORTED", kNotSupported}, {"AMDSMI_STATUS_NOT_YET_IMPLEMENTED", kNotYetImplemented},
        {"AMDSMI_STATUS_FAIL_LOAD_MODULE", kFailLoadModule}, {"AMDSMI_STATUS_FAIL_LOAD_SYMBOL", kFailLoadSymbol},
        {"AMDSMI_STATUS_DRM_ERROR", kDrmError}, {"AMDSMI_STATUS_API_FAILED", kApiFailed},
        {"AMDSMI_STATUS_TIMEOUT", kTimeout}, {"AMDSMI_STATUS_RETRY", kRetry}, {"AMDSMI_STATUS_NO_PERM", kNoPerm},
        {"AMDSMI_STATUS_INTERRUPT", kInterrupt}, {"AMDSMI_STATUS_IO", kIo},
        {"AMDSMI_STATUS_ADDRESS_FAULT", kAddressFault}, {"AMDSMI_STATUS_FILE_ERROR", kFileError},
        {"AMDSMI_STATUS_OUT_OF_RESOURCES", kOutOfResources},
        {"AMDSMI_STATUS_INTERNAL_EXCEPTION", kInternalException},
        {"AMDSMI_STATUS_INPUT_OUT_OF_BOUNDS", kInputOutOfBounds}, {"AMDSMI_STATUS_INIT_ERROR", kInitError},
        {"AMDSMI_STATUS_REFCOUNT_OVERFLOW", kRefcountOverflow},
        {"AMDSMI_STATUS_DIRECTORY_NOT_FOUND", kDirectoryNotFound}, {"AMDSMI_STATUS_BUSY", kBusy},
        {"AMDSMI_STATUS_NOT_FOUND", kNotFound}, {"AMDSMI_STATUS_NOT_INIT", kNotInit},
        {"AMDSMI_STATUS_NO_SLOT", kNoSlot}, {"AMDSMI_STATUS_DRIVER_NOT_LOADED", kDriverNotLoaded},
        {"AMDSMI_STATUS_MORE_DATA", kMoreData}, {"AMDSMI_STATUS_NO_DATA", kNoData},
        {"AMDSMI_STATUS_INSUFFICIENT_SIZE", kInsufficientSize}, {"AMDSMI_STATUS_UNEXPECTED_SIZE", kUnexpectedSize},
        {"AMDSMI_STATUS_UNEXPECTED_DATA", kUnexpectedData}, {"AMDSMI_STATUS_FILE_NOT_FOUND", kFileNotFound},
        {"AMDSMI_STATUS_ARG_PTR_NULL", kArgPtrNull}, {"AMDSMI_STATUS_AMDGPU_RESTART_ERR", kAmdgpuRestartErr},
        {"AMDSMI_STATUS_UNKNOWN_ERROR", kUnknownError},
        {"AMDSMI_INIT_AMD_GPUS", kInitAmdGpus}, {"AMDSMI_PROCESSOR_TYPE_AMD_GPU", kProcessorAmdGpu},
        {"AMDSMI_MEM_TYPE_VRAM", kMemTypeVram}, {"AMDSMI_TEMPERATURE_TYPE_EDGE", kTempEdge},
        {"AMDSMI_TEMPERATURE_TYPE_HOTSPOT", kTempHotspot}, {"AMDSMI_TEMPERATURE_TYPE_VRAM", kTempVram},
        {"AMDSMI_TEMP_CURRENT", kTempCurrent}, {"AMDSMI_CLK_TYPE_GFX", kClkGfx}, {"AMDSMI_CLK_TYPE_MEM", kClkMem},
        {"AMDSMI_MAX_STRING_LENGTH", kStringLength}, {"AMDSMI_GPU_UUID_SIZE", kUuidSize},
    };
}

std::vector<AmdSmiAbiFunction> amdsmi_abi_functions() {
    // Every function amdsmi_library.cpp looks up, through the type it is called by.
    return {
        signature("amdsmi_init", InitFn{}),
        signature("amdsmi_shut_down", ShutDownFn{}),
        signature("amdsmi_status_code_to_string", StatusStringFn{}),
        signature("amdsmi_get_lib_version", VersionFn{}),
        signature("amdsmi_get_socket_handles", SocketHandlesFn{}),
        signature("amdsmi_get_processor_handles", ProcessorHandlesFn{}),
        signature("amdsmi_get_processor_type", ProcessorTypeFn{}),
        signature("amdsmi_get_gpu_asic_info", AsicInfoFn{}),
        signature("amdsmi_get_gpu_board_info", BoardInfoFn{}),
        signature("amdsmi_get_gpu_device_bdf", BdfFn{}),
        signature("amdsmi_get_gpu_device_uuid", UuidFn{}),
        signature("amdsmi_topo_get_numa_node_number", U32Fn{}),
        signature("amdsmi_get_gpu_kfd_info", KfdInfoFn{}),
        signature("amdsmi_get_gpu_memory_total", MemoryFn{}),
        signature("amdsmi_get_gpu_memory_usage", MemoryFn{}),
        signature("amdsmi_get_gpu_activity", ActivityFn{}),
        signature("amdsmi_get_power_info", PowerInfoFn{}),
        signature("amdsmi_get_temp_metric", TempFn{}),
        signature("amdsmi_get_clock_info", ClockInfoFn{}),
        signature("amdsmi_get_gpu_total_ecc_count", EccFn{}),
        signature("amdsmi_get_gpu_metrics_info", MetricsFn{}),
        signature("amdsmi_get_gpu_compute_partition", PartitionFn{}),
        signature("amdsmi_get_gpu_memory_partition", PartitionFn{}),
        signature("amdsmi_get_gpu_process_list", ProcessListFn{}),
    };
}

}  // namespace cuagent
