// The rocm_smi driver's hand-written view of the ROCm SMI C ABI against the real
// rocm_smi.h of Debian's librocm-smi-dev 5.2.3, checked when compiled: every
// function the driver looks up (arity, return and parameter types), every struct
// it declares (size, and offset and size of each field) and every enum value and
// gpu_metrics offset it uses. Never linked, never run: tests/test_rocm_smi_abi.py
// compiles it with
//   c++ -std=c++17 -fsyntax-only -iquote cpp/src/drivers cpp/tests/abi/rocm_smi_abi_check.cpp
// (-iquote: our headers must not stand in for <rocm_smi/rocm_smi.h>), and a
// mismatch is a static_assert naming what differs.
//
// What the driver uses and 5.2.3 lacks (ROCm 6.x additions) cannot be checked
// here: ROCM_SMI_ABSENT_FROM_5_2_3 lists it, and the test compiles a probe of
// each entry against the header to show the list is exactly what the header
// lacks, so it cannot rot in either direction.
#include <rocm_smi/rocm_smi.h>

#include <cstddef>
#include <cstdint>
#include <tuple>
#include <type_traits>
#include <utility>

#include "amd_common/gpu_metrics.hpp"
#include "rocm_smi/rocm_smi_abi.hpp"
#include "rocm_smi/rocm_smi_library.hpp"

// Every Status must be listed below (as checked or as absent): the switch in
// listed() enforces it.
#pragma GCC diagnostic error "-Wswitch"

namespace rocm = cuagent::rocm;
namespace m = cuagent::amd::metrics;

// The header this file is written for: ROCm 5.x's rsmi_frequencies_t (32
// entries, no has_deep_sleep) and 96-byte rsmi_gpu_metrics_t. A newer header
// fails here rather than in confusing ways below.
static_assert(RSMI_MAX_NUM_FREQUENCIES == 32 && sizeof(rsmi_gpu_metrics_t) == 96,
              "this check is written for ROCm SMI 5.2.3's rocm_smi.h (Debian's librocm-smi-dev)");

// ---- what 5.2.3's header lacks -----------------------------------------------------
// FUNCTION(member of rocm::Functions, symbol)
// STATUS(our rocm::Status, the header's name)
// FIELD(our offset or struct member, the header's struct, its field)
// One entry a line: the test reads this list. The gpu_metrics fields of 1.2+
// tables are checked against AMD SMI's description instead (tests/test_amdsmi_abi.py,
// the same public table at the same offsets).
#define ROCM_SMI_ABSENT_FROM_5_2_3(FUNCTION, STATUS, FIELD)                            \
    FUNCTION(market_name, rsmi_dev_market_name_get)                                    \
    FUNCTION(current_socket_power, rsmi_dev_current_socket_power_get)                  \
    FUNCTION(compute_partition, rsmi_dev_compute_partition_get)                        \
    FUNCTION(memory_partition, rsmi_dev_memory_partition_get)                          \
    STATUS(kSettingUnavailable, RSMI_STATUS_SETTING_UNAVAILABLE)                       \
    STATUS(kAmdgpuRestartErr, RSMI_STATUS_AMDGPU_RESTART_ERR)                          \
    STATUS(kDrmError, RSMI_STATUS_DRM_ERROR)                                           \
    STATUS(kFailLoadModule, RSMI_STATUS_FAIL_LOAD_MODULE)                              \
    STATUS(kFailLoadSymbol, RSMI_STATUS_FAIL_LOAD_SYMBOL)                              \
    FIELD(rocm::Frequencies::has_deep_sleep, rsmi_frequencies_t, has_deep_sleep)       \
    FIELD(m::kFirmwareTimestamp, rsmi_gpu_metrics_t, firmware_timestamp)               \
    FIELD(m::kIndepThrottleStatus, rsmi_gpu_metrics_t, indep_throttle_status)          \
    FIELD(m::kCurrentSocketPower, rsmi_gpu_metrics_t, current_socket_power)            \
    FIELD(m::kCurrentGfxclks, rsmi_gpu_metrics_t, current_gfxclks)                     \
    FIELD(m::kAccumulationCounter, rsmi_gpu_metrics_t, accumulation_counter)           \
    FIELD(m::kPptResidencyAcc, rsmi_gpu_metrics_t, ppt_residency_acc)                  \
    FIELD(m::kSocketThmResidencyAcc, rsmi_gpu_metrics_t, socket_thm_residency_acc)     \
    FIELD(m::kNumPartition, rsmi_gpu_metrics_t, num_partition)                         \
    FIELD(m::kXcpStats, rsmi_gpu_metrics_t, xcp_stats)

#define IGNORE(...)

// A trait of its own rather than abi_match.hpp's (the NVIDIA checks, whose
// enums are declared int): the driver passes rsmi enums as uint32_t, some of
// its buffers stand for the header's structs, and a failure names the
// parameter.
namespace abi {

template <typename T>
constexpr bool integral_or_enum = std::is_integral_v<T> || std::is_enum_v<T>;

// Buffers we pass where the header has a struct pointer: explicit, each with
// the reason it holds what the library writes.
template <typename Ours, typename Theirs> struct Holds : std::false_type {};
// The clock call writes a 5.x rsmi_frequencies_t into a Frequencies, which
// holds either release's layout; FrequenciesV5 is the one checked below.
template <> struct Holds<rocm::Frequencies, rsmi_frequencies_t>
    : std::bool_constant<sizeof(rocm::Frequencies) >= sizeof(rsmi_frequencies_t)> {};
// gpu_metrics is written into MetricsTable's buffer of kBufferBytes, passed as void*.
template <> struct Holds<void, rsmi_gpu_metrics_t> : std::bool_constant<m::kBufferBytes >= sizeof(rsmi_gpu_metrics_t)> {};

// One of our parameter (or return) types stands for the header's: the same
// type; an enum against an enum or integer of the same size (the driver
// passes rsmi enums as uint32_t); or pointers, equally const, to such types or
// to a buffer that Holds the header's struct. Two plain integers must be the
// same type: a signedness difference changes the value read.
template <typename Ours, typename Theirs>
constexpr bool corresponds() {
    if constexpr (std::is_same_v<Ours, Theirs>) {
        return true;
    } else if constexpr (std::is_pointer_v<Ours> && std::is_pointer_v<Theirs>) {
        using O = std::remove_pointer_t<Ours>;
        using T = std::remove_pointer_t<Theirs>;
        if constexpr (std::is_const_v<O> != std::is_const_v<T>) return false;
        else return Holds<std::remove_cv_t<O>, std::remove_cv_t<T>>::value ||
                    corresponds<std::remove_cv_t<O>, std::remove_cv_t<T>>();
    } else if constexpr (integral_or_enum<Ours> && integral_or_enum<Theirs> &&
                         (std::is_enum_v<Ours> || std::is_enum_v<Theirs>)) {
        return sizeof(Ours) == sizeof(Theirs);
    } else {
        return false;
    }
}

// A failed check names the function (Name), the parameter index and both
// types in the compiler's "required from" lines.
template <typename Name, std::size_t Index, typename Ours, typename Theirs>
struct Parameter {
    static_assert(corresponds<Ours, Theirs>(),
                  "parameter Index of function Name: our type (Ours) does not stand for rocm_smi.h's (Theirs)");
    static constexpr bool ok = corresponds<Ours, Theirs>();
};

template <typename Name, typename Ours, typename Theirs, std::size_t... I>
constexpr bool parameters(std::index_sequence<I...>) {
    return (Parameter<Name, I, std::tuple_element_t<I, Ours>, std::tuple_element_t<I, Theirs>>::ok && ... && true);
}

template <typename Name, typename Ours, typename Theirs> struct Signature;
template <typename Name, typename R1, typename... A1, typename R2, typename... A2>
struct Signature<Name, R1 (*)(A1...), R2 (*)(A2...)> {
    static_assert(sizeof...(A1) == sizeof...(A2), "function Name: a different number of parameters than rocm_smi.h");
    static_assert(corresponds<R1, R2>(), "function Name: our return type (R1) does not stand for rocm_smi.h's (R2)");
    static constexpr bool ok = [] {
        if constexpr (sizeof...(A1) != sizeof...(A2)) return false;
        else return corresponds<R1, R2>() &&
                    parameters<Name, std::tuple<A1...>, std::tuple<A2...>>(std::index_sequence_for<A1...>{});
    }();
};

}  // namespace abi

// ---- functions -----------------------------------------------------------------------
// Each member of rocm::Functions against the header's declaration of the
// symbol Library looks it up by (tests/test_rocm_smi_abi.py checks that
// rocm_smi_library.cpp pairs them so). One entry a line: the test reads them.
#define CHECKED_FUNCTIONS(X)                                       \
    X(init, rsmi_init)                                             \
    X(shut_down, rsmi_shut_down)                                   \
    X(status_string, rsmi_status_string)                           \
    X(num_monitor_devices, rsmi_num_monitor_devices)               \
    X(name, rsmi_dev_name_get)                                     \
    X(brand, rsmi_dev_brand_get)                                   \
    X(unique_id, rsmi_dev_unique_id_get)                           \
    X(pci_id, rsmi_dev_pci_id_get)                                 \
    X(memory_total, rsmi_dev_memory_total_get)                     \
    X(memory_usage, rsmi_dev_memory_usage_get)                     \
    X(power_ave, rsmi_dev_power_ave_get)                           \
    X(temp_metric, rsmi_dev_temp_metric_get)                       \
    X(gpu_clk_freq, rsmi_dev_gpu_clk_freq_get)                     \
    X(busy_percent, rsmi_dev_busy_percent_get)                     \
    X(gpu_metrics, rsmi_dev_gpu_metrics_info_get)

namespace fn {
#define CHECK_FUNCTION(member, symbol)                                                                   \
    struct symbol;                                                                                       \
    static_assert(abi::Signature<symbol, decltype(rocm::Functions::member), decltype(&::symbol)>::ok, \
                  #symbol ": Functions::" #member " does not match rocm_smi.h");
CHECKED_FUNCTIONS(CHECK_FUNCTION)
}  // namespace fn

// rsmi_topo_numa_affinity_get: 5.2.3 declares `uint32_t *numa_node`, later
// releases `int32_t *` (the sysfs numa_node, -1 for none). We read int32_t: the
// same four bytes either way, and 5.2.3's -1 stored as 0xFFFFFFFF reads as -1.
// This one signedness difference is expected, and asserted as such.
#define SIGNEDNESS_CHECKED_FUNCTIONS(X)                            \
    X(numa_affinity, rsmi_topo_numa_affinity_get)
static_assert(std::is_same_v<decltype(&::rsmi_topo_numa_affinity_get), rsmi_status_t (*)(uint32_t, uint32_t*)>,
              "rsmi_topo_numa_affinity_get: 5.2.3 declares (uint32_t, uint32_t*)");
static_assert(std::is_same_v<decltype(rocm::Functions::numa_affinity), rocm::Status (*)(std::uint32_t, std::int32_t*)>,
              "rsmi_topo_numa_affinity_get: we read the node as int32_t (newer headers' type), -1 for none");

// Every member of Functions is listed exactly once, checked or absent: they are
// all function pointers, each listed name must be a member, and the count must
// be the struct's.
#define COUNT_ONE(...) +1
#define NAMES_A_MEMBER(member, symbol) \
    static_assert(sizeof(rocm::Functions::member) == sizeof(void*), #member " is a function pointer");
CHECKED_FUNCTIONS(NAMES_A_MEMBER)
SIGNEDNESS_CHECKED_FUNCTIONS(NAMES_A_MEMBER)
ROCM_SMI_ABSENT_FROM_5_2_3(NAMES_A_MEMBER, IGNORE, IGNORE)
static_assert(sizeof(rocm::Functions) == (0 CHECKED_FUNCTIONS(COUNT_ONE) SIGNEDNESS_CHECKED_FUNCTIONS(COUNT_ONE)
                                              ROCM_SMI_ABSENT_FROM_5_2_3(COUNT_ONE, IGNORE, IGNORE)) * sizeof(void*),
              "a member of rocm::Functions is neither checked nor listed absent here");

// ---- status codes ----------------------------------------------------------------------
#define CHECKED_STATUSES(X)                                                                             \
    X(kSuccess, RSMI_STATUS_SUCCESS) X(kInvalidArgs, RSMI_STATUS_INVALID_ARGS)                          \
    X(kNotSupported, RSMI_STATUS_NOT_SUPPORTED) X(kFileError, RSMI_STATUS_FILE_ERROR)                    \
    X(kPermission, RSMI_STATUS_PERMISSION) X(kOutOfResources, RSMI_STATUS_OUT_OF_RESOURCES)              \
    X(kInternalException, RSMI_STATUS_INTERNAL_EXCEPTION) X(kInputOutOfBounds, RSMI_STATUS_INPUT_OUT_OF_BOUNDS) \
    X(kInitError, RSMI_STATUS_INIT_ERROR) X(kNotYetImplemented, RSMI_STATUS_NOT_YET_IMPLEMENTED)         \
    X(kNotFound, RSMI_STATUS_NOT_FOUND) X(kInsufficientSize, RSMI_STATUS_INSUFFICIENT_SIZE)              \
    X(kInterrupt, RSMI_STATUS_INTERRUPT) X(kUnexpectedSize, RSMI_STATUS_UNEXPECTED_SIZE)                 \
    X(kNoData, RSMI_STATUS_NO_DATA) X(kUnexpectedData, RSMI_STATUS_UNEXPECTED_DATA)                      \
    X(kBusy, RSMI_STATUS_BUSY) X(kRefcountOverflow, RSMI_STATUS_REFCOUNT_OVERFLOW)                       \
    X(kUnknownError, RSMI_STATUS_UNKNOWN_ERROR)
#define CHECK_STATUS(ours, theirs)                                                        \
    static_assert(static_cast<std::uint64_t>(rocm::ours) == static_cast<std::uint64_t>(theirs), \
                  "rocm::" #ours " is not " #theirs " of rocm_smi.h");
CHECKED_STATUSES(CHECK_STATUS)
static_assert(sizeof(rocm::Status) == sizeof(rsmi_status_t), "rsmi_status_t is 32 bits");

#define CASE(ours, ...) case rocm::ours:
constexpr bool listed(rocm::Status s) {
    switch (s) {  // -Wswitch (an error here): a Status missing from both lists
        CHECKED_STATUSES(CASE)
        ROCM_SMI_ABSENT_FROM_5_2_3(IGNORE, CASE, IGNORE)
        return true;
    }
    return false;
}
static_assert(listed(rocm::kSuccess));

// ---- enum values passed to calls -------------------------------------------------------
static_assert(rocm::kClkTypeSys == RSMI_CLK_TYPE_SYS, "kClkTypeSys is not RSMI_CLK_TYPE_SYS");
static_assert(rocm::kClkTypeMem == RSMI_CLK_TYPE_MEM, "kClkTypeMem is not RSMI_CLK_TYPE_MEM");
static_assert(rocm::kMemTypeVram == RSMI_MEM_TYPE_VRAM, "kMemTypeVram is not RSMI_MEM_TYPE_VRAM");
static_assert(rocm::kTempTypeEdge == RSMI_TEMP_TYPE_EDGE, "kTempTypeEdge is not RSMI_TEMP_TYPE_EDGE");
static_assert(rocm::kTempTypeJunction == RSMI_TEMP_TYPE_JUNCTION, "kTempTypeJunction is not RSMI_TEMP_TYPE_JUNCTION");
static_assert(rocm::kTempCurrent == RSMI_TEMP_CURRENT, "kTempCurrent is not RSMI_TEMP_CURRENT");

// ---- structs -----------------------------------------------------------------------------
#define CHECK_FIELD(Ours, Theirs, ours, theirs)                                                         \
    static_assert(offsetof(Ours, ours) == offsetof(Theirs, theirs) && sizeof(Ours::ours) == sizeof(Theirs::theirs), \
                  #Ours "::" #ours " is not at the offset, or not the size, of " #Theirs "::" #theirs);

// rsmi_frequencies_t of 5.2.3 is our FrequenciesV5.
static_assert(sizeof(rocm::FrequenciesV5) == sizeof(rsmi_frequencies_t), "FrequenciesV5 is not rsmi_frequencies_t's size");
CHECK_FIELD(rocm::FrequenciesV5, rsmi_frequencies_t, num_supported, num_supported)
CHECK_FIELD(rocm::FrequenciesV5, rsmi_frequencies_t, current, current)
CHECK_FIELD(rocm::FrequenciesV5, rsmi_frequencies_t, frequency, frequency)

// rsmi_gpu_metrics_t, which the driver reads through offsets (amd_common/):
// 5.2.3's 96-byte table is kLayoutV13, which knows content revisions up to 3.
#define CHECK_METRIC(offset, bytes, theirs)                                                             \
    static_assert(m::offset == offsetof(rsmi_gpu_metrics_t, theirs) && (bytes) == sizeof(std::declval<rsmi_gpu_metrics_t&>().theirs), \
                  "metrics::" #offset " is not the offset, or " #bytes " not the size, of rsmi_gpu_metrics_t::" #theirs);
CHECK_METRIC(kStructureSize, 2, common_header.structure_size)
CHECK_METRIC(kFormatRevision, 1, common_header.format_revision)
CHECK_METRIC(kContentRevision, 1, common_header.content_revision)
CHECK_METRIC(kTemperatureEdge, 2, temperature_edge)
CHECK_METRIC(kTemperatureHotspot, 2, temperature_hotspot)
CHECK_METRIC(kAverageGfxActivity, 2, average_gfx_activity)
CHECK_METRIC(kAverageUmcActivity, 2, average_umc_activity)
CHECK_METRIC(kAverageSocketPower, 2, average_socket_power)
CHECK_METRIC(kSystemClockCounter, 8, system_clock_counter)
CHECK_METRIC(kCurrentGfxclk, 2, current_gfxclk)
CHECK_METRIC(kCurrentUclk, 2, current_uclk)
static_assert(m::kLayoutV13.size == sizeof(rsmi_gpu_metrics_t) &&
                  m::kLayoutV13.max_revision == RSMI_GPU_METRICS_API_CONTENT_VER_3 && m::kLayoutV13.xcp_stride == 0,
              "kLayoutV13 is not 5.2.3's public gpu_metrics table (96 bytes, content revisions up to 3)");
