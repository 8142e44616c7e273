// libamd_smi loaded at run time (common/dynamic_library.hpp), once per
// process: AMD SMI's amdsmi_init is not reference counted, so a second user
// calling amdsmi_shut_down would pull the library out from under the first.
// The driver and the process lister share one Library through acquire(); the
// last one to let go shuts it down. Every function is looked up on its own, so
// that a release lacking one call loses only what that call feeds.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "amdsmi_abi.hpp"
#include "common/dynamic_library.hpp"

namespace cuagent::amdsmi {

struct Functions {
    InitFn init = nullptr;
    ShutDownFn shut_down = nullptr;
    StatusStringFn status_string = nullptr;
    VersionFn lib_version = nullptr;
    SocketHandlesFn socket_handles = nullptr;
    ProcessorHandlesFn processor_handles = nullptr;
    ProcessorTypeFn processor_type = nullptr;
    AsicInfoFn asic_info = nullptr;
    BoardInfoFn board_info = nullptr;
    BdfFn bdf = nullptr;
    UuidFn uuid = nullptr;
    U32Fn numa_node = nullptr;
    KfdInfoFn kfd_info = nullptr;
    MemoryFn memory_total = nullptr;
    MemoryFn memory_usage = nullptr;
    ActivityFn activity = nullptr;
    PowerInfoFn power_info = nullptr;
    TempFn temp_metric = nullptr;
    ClockInfoFn clock_info = nullptr;
    EccFn total_ecc = nullptr;
    MetricsFn gpu_metrics = nullptr;
    PartitionFn compute_partition = nullptr;
    PartitionFn memory_partition = nullptr;
    ProcessListFn process_list = nullptr;
};

class Library {
public:
    // The process's libamd_smi for `path` (a file or a bare name; empty:
    // libamd_smi.so, then the versioned names, then /opt/rocm/lib), loaded and
    // initialised (AMDSMI_INIT_AMD_GPUS) by its first user. Throws
    // std::runtime_error (one line) naming every place tried when none loads,
    // or when amdsmi_init fails.
    static std::shared_ptr<Library> acquire(const std::string& path);
    ~Library();
    Library(const Library&) = delete;
    Library& operator=(const Library&) = delete;

    const Functions& fn() const { return fn_; }
    const std::string& path() const { return library_->path(); }
    // Names of the looked-up functions the library does not export.
    const std::vector<std::string>& missing() const { return library_->missing(); }
    // The library's text for a status ("AMDSMI_STATUS_..."); no allocation.
    const char* status_text(Status status) const noexcept;

    // amdsmi_get_lib_version, "26.0.2"; empty when the library cannot say.
    const std::string& version() const { return version_; }
    // The library's struct layouts are the ones amdsmi_abi.hpp describes (its
    // major version is kAbiMajor): calls that take a struct may be made.
    bool structs_known() const { return structs_known_; }

private:
    explicit Library(std::unique_ptr<drivers::DynamicLibrary> library);
    void initialise();

    std::unique_ptr<drivers::DynamicLibrary> library_;
    bool initialized_ = false;
    bool structs_known_ = false;
    std::string version_;
    Functions fn_;
};

// Candidate names, unversioned first (ABI-checked by the package manager's
// symlink), then the sonames ROCm 6..10 ship, then /opt/rocm/lib.
std::vector<std::string> default_library_names();

}  // namespace cuagent::amdsmi
