// The AMD SMI backend: libamd_smi (loaded with dlopen), the library current
// ROCm ships in place of ROCm SMI, for device counters and the per-XCD activity
// of the gpu_metrics table; the KFD sysfs tree for the compute topology
// (XCD -> shader engine -> CU) and compute partitions, as the rocm_smi backend
// reads it. Built against amdsmi.h facts and AMD's ctypes description of the
// ABI; tested against fakes only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cuagent/driver.hpp"
#include "cuagent/drivers/amd_options.hpp"

namespace cuagent {

// The library is libamd_smi.so (then its versioned names, then
// /opt/rocm/lib) unless `library` names one.
struct AmdSmiOptions : AmdDriverOptions {
    // ECC counts are re-read at most this often (each read walks the RAS
    // blocks' sysfs files); samples in between carry the last count.
    std::int64_t ecc_interval_ns = 1'000'000'000;
};

// Throws std::runtime_error with one clear message when the library is
// missing or fails to initialise, or a device has no KFD topology node;
// std::invalid_argument for an unknown device in `devices`. `notes` (if
// given) receives lines worth logging once (library version, what a library
// of an unverified ABI leaves out).
std::unique_ptr<Driver> make_amdsmi_driver(const AmdSmiOptions& options, std::vector<std::string>* notes = nullptr);

// One process on a device, summed over the device's compute partitions.
struct AmdSmiProcess {
    std::uint32_t pid = 0;
    std::string name;            // as the library reports it (may be empty)
    std::uint64_t vram_bytes = 0;
    std::uint64_t gfx_ns = 0;    // GFX engine time since the process opened the device
};

// What the agent asks between windows, outside the sampling path: the
// processes on each device and its partition modes. Shares the driver's
// library instance (one amdsmi_init per process).
class AmdSmiSlowQueries {
public:
    virtual ~AmdSmiSlowQueries() = default;
    // Physical indices of the devices it answers for (DeviceDescription::index).
    virtual std::vector<std::uint32_t> devices() const = 0;
    // Compute partitions (processor handles) of device `index`: 1 in SPX.
    virtual std::uint32_t partitions(std::uint32_t index) const = 0;
    // The processes on device `index`; false (and `error` set) when the
    // library cannot list them (unsupported, the device is gone, or its
    // struct layout is unverified).
    virtual bool processes(std::uint32_t index, std::vector<AmdSmiProcess>& out, std::string& error) = 0;
    // (compute, memory) partition modes of device `index`, e.g. ("CPX", "NPS4");
    // empty strings where the library does not say.
    virtual std::pair<std::string, std::string> partition_modes(std::uint32_t index) = 0;
};

std::unique_ptr<AmdSmiSlowQueries> make_amdsmi_slow_queries(const AmdSmiOptions& options);

// One assumption the driver makes about libamd_smi's ABI: a struct it passes
// (field empty: the struct's size) or one field of it (a nested field as
// "outer.inner"), at `offset`, `size` bytes. tests/test_amdsmi_abi.py checks
// every one against AMD's own ctypes description of the ABI.
struct AmdSmiAbiField {
    std::string type;   // amdsmi.h typedef name, e.g. "amdsmi_proc_info_t"
    std::string field;
    std::size_t offset = 0;
    std::size_t size = 0;
};
std::vector<AmdSmiAbiField> amdsmi_abi_fields();

// The enum values it passes or tests for, by amdsmi.h name.
std::vector<std::pair<std::string, std::uint64_t>> amdsmi_abi_constants();

// Each function it looks up, with its return and argument types in one
// vocabulary ("u32", "u64", "i64", "char", "handle", "ptr:<type>",
// "ptr:amdsmi_asic_info_t"...), derived from the function pointer types the
// driver calls through, for the same test.
struct AmdSmiAbiFunction {
    std::string name;
    std::vector<std::string> types;  // return type first
};
std::vector<AmdSmiAbiFunction> amdsmi_abi_functions();

}  // namespace cuagent
