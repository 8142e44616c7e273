// The slice of the CUDA driver API (cuda.h) that the SM-layout probe uses,
// declared here from cuda.h facts so that the package builds without the CUDA
// toolkit; libcuda is dlopen'd at run time (sm_layout_probe.cpp).
// tests/test_nvidia_abi.py compiles cpp/tests/abi/nvidia_abi_check.cpp, which
// compares every declaration here with NVIDIA's real cuda.h.
#pragma once

#include <cstddef>

namespace cuagent::cuda {

using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
struct CUctx_st;
struct CUmod_st;
struct CUfunc_st;
struct CUstream_st;
using CUcontext = CUctx_st*;
using CUmodule = CUmod_st*;
using CUfunction = CUfunc_st*;
using CUstream = CUstream_st*;

inline constexpr CUresult CUDA_SUCCESS = 0;
inline constexpr int CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
inline constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
inline constexpr int CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED = 14;
inline constexpr int CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION = 4;

// 8-byte aligned as in cuda.h, whose other members hold pointers (CUevent).
union alignas(8) CUlaunchAttributeValue {
    char pad[64];
    struct {
        unsigned int x, y, z;
    } clusterDim;
};
struct CUlaunchAttribute {
    int id;  // CUlaunchAttributeID
    char pad[8 - sizeof(int)];
    CUlaunchAttributeValue value;
};
struct CUlaunchConfig {
    unsigned int gridDimX, gridDimY, gridDimZ;
    unsigned int blockDimX, blockDimY, blockDimZ;
    unsigned int sharedMemBytes;
    CUstream hStream;
    CUlaunchAttribute* attrs;
    unsigned int numAttrs;
};
static_assert(sizeof(CUlaunchAttribute) == 72 && alignof(CUlaunchAttribute) == 8, "CUlaunchAttribute layout");
static_assert(sizeof(CUlaunchConfig) == 56, "CUlaunchConfig layout");

// X(name, return, parameters): every function the probe needs. cuda.h maps
// the unversioned names (cuMemAlloc, ...) to these _v2 symbols. The probe runs
// in the device's primary context, pushed on the calling thread and popped after
// (whatever was current there before is current again): those calls are the same
// in CUDA 12 and 13, whose cuda.h no longer declares cuCtxCreate_v2.
#define CUAGENT_CUDA_REQUIRED_FUNCTIONS(X)                                                      \
    X(cuInit, CUresult, (unsigned int))                                                         \
    X(cuDeviceGetByPCIBusId, CUresult, (CUdevice*, const char*))                                \
    X(cuDeviceGetAttribute, CUresult, (int*, int, CUdevice))                                    \
    X(cuDevicePrimaryCtxRetain, CUresult, (CUcontext*, CUdevice))                               \
    X(cuDevicePrimaryCtxRelease_v2, CUresult, (CUdevice))                                       \
    X(cuCtxPushCurrent_v2, CUresult, (CUcontext))                                               \
    X(cuCtxPopCurrent_v2, CUresult, (CUcontext*))                                               \
    X(cuModuleLoadData, CUresult, (CUmodule*, const void*))                                     \
    X(cuModuleUnload, CUresult, (CUmodule))                                                     \
    X(cuModuleGetFunction, CUresult, (CUfunction*, CUmodule, const char*))                      \
    X(cuFuncSetAttribute, CUresult, (CUfunction, int, int))                                     \
    X(cuMemAlloc_v2, CUresult, (CUdeviceptr*, std::size_t))                                     \
    X(cuMemFree_v2, CUresult, (CUdeviceptr))                                                    \
    X(cuMemsetD32_v2, CUresult, (CUdeviceptr, unsigned int, std::size_t))                       \
    X(cuMemcpyDtoH_v2, CUresult, (void*, CUdeviceptr, std::size_t))                             \
    X(cuLaunchKernelEx, CUresult, (const CUlaunchConfig*, CUfunction, void**, void**))          \
    X(cuCtxSynchronize, CUresult, (void))
// Only names errors; the probe runs without it.
#define CUAGENT_CUDA_OPTIONAL_FUNCTIONS(X) X(cuGetErrorString, CUresult, (CUresult, const char**))

}  // namespace cuagent::cuda
