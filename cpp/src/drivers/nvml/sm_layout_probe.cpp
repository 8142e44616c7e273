// The SM layout probe: launches thread-block clusters of 2..16 blocks through
// the CUDA driver API (libcuda dlopen'd, PTX JIT-compiled at run time) and
// records which SM each block ran on. See sm_layout.hpp for the reasoning.
//
// The CUDA driver API declarations it uses are in cuda_api.hpp.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/dynamic_library.hpp"
#include "cuagent/drivers/sm_layout.hpp"
#include "cuda_api.hpp"

namespace cuagent {
namespace {

using namespace cuda;

// One block per cluster slot: thread 0 writes its SM id (%smid) to
// out[blockIdx.x], then spins `spin` clock cycles so the block stays resident
// and later clusters spread over the other SMs. Blocks of a cluster are
// consecutive in x, so cluster k is blocks [k*size, (k+1)*size).
constexpr const char* kProbePtx = R"(
.version 7.8
.target sm_90
.address_size 64

.visible .entry cuagent_smid(
    .param .u64 out,
    .param .u64 spin
)
{
    .reg .pred %p<3>;
    .reg .b32 %r<4>;
    .reg .b64 %rd<9>;

    mov.u32 %r1, %tid.x;
    setp.ne.u32 %p1, %r1, 0;
    @%p1 bra DONE;
    ld.param.u64 %rd1, [out];
    ld.param.u64 %rd2, [spin];
    cvta.to.global.u64 %rd3, %rd1;
    mov.u32 %r2, %ctaid.x;
    mov.u32 %r3, %smid;
    mul.wide.u32 %rd4, %r2, 4;
    add.s64 %rd5, %rd3, %rd4;
    st.global.u32 [%rd5], %r3;
    mov.u64 %rd6, %clock64;
SPIN:
    mov.u64 %rd7, %clock64;
    sub.s64 %rd8, %rd7, %rd6;
    setp.lt.s64 %p2, %rd8, %rd2;
    @%p2 bra SPIN;
DONE:
    ret;
}
)";

struct Cuda {
    drivers::DynamicLibrary library;
#define CUAGENT_CUDA_MEMBER(name, ret, params) ret(*name) params = nullptr;
    CUAGENT_CUDA_REQUIRED_FUNCTIONS(CUAGENT_CUDA_MEMBER)
    CUAGENT_CUDA_OPTIONAL_FUNCTIONS(CUAGENT_CUDA_MEMBER)
#undef CUAGENT_CUDA_MEMBER

    std::string error(const char* call, CUresult r) const {
        const char* text = nullptr;
        if (cuGetErrorString) cuGetErrorString(r, &text);
        return std::string(call) + ": " + (text ? text : "CUDA error") + " (" + std::to_string(r) + ")";
    }
};

// Everything that needs the context, so that the caller releases it on every path.
bool run_probe(Cuda& cuda, CUdevice dev, const SmProbeOptions& options, SmLayout& layout,
               std::string& why) {
    int sms = 0;
    cuda.cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev);
    if (sms <= 0) {
        why = "cannot read the SM count";
        return false;
    }
    CUmodule module = nullptr;
    CUresult r = cuda.cuModuleLoadData(&module, kProbePtx);
    if (r != CUDA_SUCCESS) {
        why = cuda.error("cuModuleLoadData (probe PTX)", r);
        return false;
    }
    CUfunction fn = nullptr;
    CUdeviceptr out = 0;
    bool ok = false;
    std::vector<ClusterObservation> observations;
    // Enough clusters to cover every SM several times over at the largest size.
    const std::uint32_t blocks = static_cast<std::uint32_t>(sms) * 8u;
    std::vector<std::uint32_t> smid(blocks);
    do {
        if ((r = cuda.cuModuleGetFunction(&fn, module, "cuagent_smid")) != CUDA_SUCCESS) {
            why = cuda.error("cuModuleGetFunction", r);
            break;
        }
        // Clusters above 8 blocks are "non-portable" and must be allowed explicitly.
        cuda.cuFuncSetAttribute(fn, CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED, 1);
        if ((r = cuda.cuMemAlloc_v2(&out, blocks * sizeof(std::uint32_t))) != CUDA_SUCCESS) {
            why = cuda.error("cuMemAlloc", r);
            break;
        }
        ok = true;
        for (std::uint32_t size = 2; size <= options.max_cluster_size && ok; ++size) {
            const std::uint32_t grid = blocks / size * size;  // whole clusters only
            for (std::uint32_t launch = 0; launch < options.launches_per_size; ++launch) {
                cuda.cuMemsetD32_v2(out, 0xFFFFFFFFu, blocks);
                CUlaunchAttribute attr{};
                attr.id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
                attr.value.clusterDim.x = size;
                attr.value.clusterDim.y = 1;
                attr.value.clusterDim.z = 1;
                CUlaunchConfig config{};
                config.gridDimX = grid;
                config.gridDimY = config.gridDimZ = 1;
                config.blockDimX = 32;
                config.blockDimY = config.blockDimZ = 1;
                config.attrs = &attr;
                config.numAttrs = 1;
                unsigned long long spin = options.spin_cycles;
                void* params[] = {&out, &spin};
                r = cuda.cuLaunchKernelEx(&config, fn, params, nullptr);
                if (r != CUDA_SUCCESS) {
                    // A size the hardware cannot co-schedule (e.g. > 8 without the
                    // non-portable opt-in) ends the sweep; smaller sizes still count.
                    if (size <= 2) {
                        why = cuda.error("cuLaunchKernelEx", r);
                        ok = false;
                    }
                    layout.notes.push_back("clusters of " + std::to_string(size) +
                                           " could not launch: " + cuda.error("cuLaunchKernelEx", r));
                    size = options.max_cluster_size;  // stop the sweep
                    break;
                }
                if ((r = cuda.cuCtxSynchronize()) != CUDA_SUCCESS ||
                    (r = cuda.cuMemcpyDtoH_v2(smid.data(), out, grid * sizeof(std::uint32_t))) !=
                        CUDA_SUCCESS) {
                    why = cuda.error("probe kernel", r);
                    ok = false;
                    break;
                }
                for (std::uint32_t c = 0; c < grid / size; ++c) {
                    ClusterObservation o;
                    o.cluster_size = size;
                    for (std::uint32_t b = c * size; b < (c + 1) * size; ++b)
                        if (smid[b] < static_cast<std::uint32_t>(sms))
                            o.sms.push_back(static_cast<std::uint16_t>(smid[b]));
                    if (o.sms.size() == size) observations.push_back(std::move(o));
                }
            }
        }
    } while (false);
    if (out) cuda.cuMemFree_v2(out);
    cuda.cuModuleUnload(module);
    if (!ok) return false;
    std::vector<std::string> launch_notes = std::move(layout.notes);
    layout = group_sms(static_cast<std::uint32_t>(sms), observations);
    layout.notes.insert(layout.notes.begin(), launch_notes.begin(), launch_notes.end());
    return true;
}

}  // namespace

bool probe_sm_layout(const std::string& pci_bus_id, const SmProbeOptions& options, SmLayout& layout,
                     std::string& why) {
    Cuda cuda;
    if (!cuda.library.try_open({options.cuda_library}, "the CUDA driver library", why)) return false;
    drivers::DynamicLibrary& lib = cuda.library;
#define CUAGENT_CUDA_LOOKUP(name, ret, params) lib.lookup(#name, cuda.name);
    CUAGENT_CUDA_REQUIRED_FUNCTIONS(CUAGENT_CUDA_LOOKUP)
    // All of the above are needed; cuGetErrorString (below) only names errors.
    if (!lib.missing().empty()) {
        why = options.cuda_library + " lacks " + lib.lacking() + " (driver too old for cluster launches?)";
        return false;
    }
    CUAGENT_CUDA_OPTIONAL_FUNCTIONS(CUAGENT_CUDA_LOOKUP)
#undef CUAGENT_CUDA_LOOKUP

    CUresult r = cuda.cuInit(0);
    if (r != CUDA_SUCCESS) {
        why = cuda.error("cuInit", r);
        return false;
    }
    CUdevice dev = 0;
    if ((r = cuda.cuDeviceGetByPCIBusId(&dev, pci_bus_id.c_str())) != CUDA_SUCCESS) {
        why = cuda.error(("cuDeviceGetByPCIBusId(" + pci_bus_id + ")").c_str(), r);
        return false;
    }
    int major = 0;
    cuda.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
    if (major < 9) {
        why = "compute capability " + std::to_string(major) + ".x has no thread-block clusters (needs 9.0+)";
        return false;
    }
    CUcontext ctx = nullptr;
    if ((r = cuda.cuDevicePrimaryCtxRetain(&ctx, dev)) != CUDA_SUCCESS) {
        why = cuda.error("cuDevicePrimaryCtxRetain", r);
        return false;
    }
    // Pushed, not set: a context the calling thread had current is current again after.
    bool ok = false;
    if ((r = cuda.cuCtxPushCurrent_v2(ctx)) != CUDA_SUCCESS) {
        why = cuda.error("cuCtxPushCurrent", r);
    } else {
        ok = run_probe(cuda, dev, options, layout, why);
        CUcontext popped = nullptr;
        cuda.cuCtxPopCurrent_v2(&popped);
    }
    cuda.cuDevicePrimaryCtxRelease_v2(dev);
    return ok;
}

}  // namespace cuagent
