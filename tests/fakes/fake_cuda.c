/*
 * A fake libcuda.so.1 for the SM-layout probe (cpp/src/drivers/nvml/sm_layout_probe.cpp)
 * on machines without an NVIDIA GPU.
 *
 * It is compiled against NVIDIA's real cuda.h (the nvidia-cuda-runtime-cu12 wheel), so it
 * reads the launch config, the launch attributes and the kernel parameters in the real
 * layout: a probe whose hand-declared structs drifted from cuda.h would launch nothing
 * sensible here. The "kernel" is not run: each launch places its thread-block clusters the
 * way an H100 does and writes each block's SM id where the probe's kernel would (out[block]):
 *   - a cluster of 2 runs on one TPC (SMs 2k, 2k+1), TPCs taken in turn;
 *   - a larger cluster runs inside one group of SMs (a GPC) that can host that size, the
 *     groups taken in turn, on SMs drawn at random (seeded) from the group;
 *   - clusters above 8 launch only after CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED,
 *     and none above 16 (CUDA_ERROR_INVALID_CLUSTER_SIZE), as on Hopper.
 *
 * $FAKE_CUDA_LAYOUT names a text file, read at each cuInit, one directive per line:
 *   units <n>                    SMs on the device (default 132)
 *   bus <pci bus id>             the device's PCI bus id (default 00000000:18:00.0)
 *   major <n>                    compute capability major (default 9)
 *   group <max cluster> <sm...>  a group of SMs hosting clusters of 3..<max cluster>
 *   fail <function> <code>       the function returns <code>
 */
#include <cuda.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API __attribute__((visibility("default")))
#define MAX_UNITS 256
#define MAX_GROUPS 32
#define MAX_FAILS 8

static struct {
    int loaded, initialised, units, major;
    char bus[64];
    int groups, group_max[MAX_GROUPS], group_size[MAX_GROUPS], group_sm[MAX_GROUPS][MAX_UNITS];
    int fails;
    char fail_name[MAX_FAILS][64];
    int fail_code[MAX_FAILS];
    int non_portable, retained;
    unsigned next_tpc, next_group, rng;
    int module, function;
} fake;

/* Reads $FAKE_CUDA_LAYOUT afresh: at the first call, and at each cuInit (one probe each). */
static void load(int again) {
    if (fake.loaded && !again) return;
    memset(&fake, 0, sizeof fake);
    fake.loaded = 1;
    fake.units = 132;
    fake.major = 9;
    fake.rng = 12345u;
    strcpy(fake.bus, "00000000:18:00.0");
    const char* path = getenv("FAKE_CUDA_LAYOUT");
    FILE* f = path ? fopen(path, "r") : NULL;
    if (!f) return;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        char* save = NULL;
        char* word = strtok_r(line, " \t\n", &save);
        if (!word || word[0] == '#') continue;
        char* arg = strtok_r(NULL, " \t\n", &save);
        if (!arg) continue;
        if (!strcmp(word, "units")) fake.units = atoi(arg);
        else if (!strcmp(word, "major")) fake.major = atoi(arg);
        else if (!strcmp(word, "bus")) snprintf(fake.bus, sizeof fake.bus, "%s", arg);
        else if (!strcmp(word, "group") && fake.groups < MAX_GROUPS) {
            int g = fake.groups++;
            fake.group_max[g] = atoi(arg);
            for (char* sm; (sm = strtok_r(NULL, " \t\n", &save)) && fake.group_size[g] < MAX_UNITS;)
                fake.group_sm[g][fake.group_size[g]++] = atoi(sm);
        } else if (!strcmp(word, "fail") && fake.fails < MAX_FAILS) {
            char* code = strtok_r(NULL, " \t\n", &save);
            snprintf(fake.fail_name[fake.fails], sizeof fake.fail_name[0], "%s", arg);
            fake.fail_code[fake.fails++] = code ? atoi(code) : (int)CUDA_ERROR_UNKNOWN;
        }
    }
    fclose(f);
}

/* The scripted error for `function`, or CUDA_SUCCESS. */
static CUresult scripted(const char* function) {
    load(0);
    for (int i = 0; i < fake.fails; ++i)
        if (!strcmp(fake.fail_name[i], function)) return (CUresult)fake.fail_code[i];
    return CUDA_SUCCESS;
}

#define ENTER(function, needs_init)                              \
    do {                                                         \
        CUresult scripted_ = scripted(function);                 \
        if (scripted_ != CUDA_SUCCESS) return scripted_;         \
        if ((needs_init) && !fake.initialised) return CUDA_ERROR_NOT_INITIALIZED; \
    } while (0)

/* Each thread's stack of current contexts, as CUDA keeps it: the probe must leave the one it
 * found (a caller's own context) current. Not in `fake`: cuInit's reload must not clear it. */
#define MAX_STACK 8
static __thread CUcontext stack[MAX_STACK];
static __thread int depth;
#define PRIMARY ((CUcontext)&fake)

#define NEEDS_CONTEXT()                                                          \
    do {                                                                         \
        if (depth == 0 || stack[depth - 1] != PRIMARY) return CUDA_ERROR_INVALID_CONTEXT; \
    } while (0)

static unsigned next_random(void) {
    fake.rng = fake.rng * 1103515245u + 12345u;
    return fake.rng >> 8;
}

API CUresult cuInit(unsigned int flags) {
    load(1);
    ENTER("cuInit", 0);
    if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
    fake.initialised = 1;
    return CUDA_SUCCESS;
}

API CUresult cuGetErrorString(CUresult error, const char** text) {
    switch (error) {
    case CUDA_SUCCESS: *text = "no error"; break;
    case CUDA_ERROR_INVALID_VALUE: *text = "invalid argument"; break;
    case CUDA_ERROR_NOT_INITIALIZED: *text = "initialization error"; break;
    case CUDA_ERROR_INVALID_DEVICE: *text = "invalid device ordinal"; break;
    case CUDA_ERROR_INVALID_CONTEXT: *text = "invalid device context"; break;
    case CUDA_ERROR_INVALID_CLUSTER_SIZE: *text = "invalid cluster size"; break;
    default: *text = NULL; return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

API CUresult cuDeviceGetByPCIBusId(CUdevice* dev, const char* bus) {
    ENTER("cuDeviceGetByPCIBusId", 1);
    if (!dev || !bus || strcasecmp(bus, fake.bus)) return CUDA_ERROR_INVALID_DEVICE;
    *dev = 0;
    return CUDA_SUCCESS;
}

API CUresult cuDeviceGetAttribute(int* value, CUdevice_attribute attribute, CUdevice dev) {
    ENTER("cuDeviceGetAttribute", 1);
    if (dev != 0) return CUDA_ERROR_INVALID_DEVICE;
    if (attribute == CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT) *value = fake.units;
    else if (attribute == CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR) *value = fake.major;
    else return CUDA_ERROR_INVALID_VALUE;
    return CUDA_SUCCESS;
}

API CUresult cuDevicePrimaryCtxRetain(CUcontext* ctx, CUdevice dev) {
    ENTER("cuDevicePrimaryCtxRetain", 1);
    if (dev != 0) return CUDA_ERROR_INVALID_DEVICE;
    ++fake.retained;
    *ctx = (CUcontext)&fake;
    return CUDA_SUCCESS;
}

API CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev) {
    ENTER("cuDevicePrimaryCtxRelease", 1);
    if (dev != 0 || fake.retained == 0) return CUDA_ERROR_INVALID_CONTEXT;
    --fake.retained;
    return CUDA_SUCCESS;
}

/* Any non-null context may be pushed (a test pushes one of its own, as a caller's); the probe's
 * calls need the primary one on top. */
API CUresult cuCtxPushCurrent_v2(CUcontext ctx) {
    ENTER("cuCtxPushCurrent", 1);
    if (!ctx || (ctx == PRIMARY && !fake.retained) || depth == MAX_STACK) return CUDA_ERROR_INVALID_CONTEXT;
    stack[depth++] = ctx;
    return CUDA_SUCCESS;
}

API CUresult cuCtxPopCurrent_v2(CUcontext* ctx) {
    ENTER("cuCtxPopCurrent", 1);
    if (depth == 0) return CUDA_ERROR_INVALID_CONTEXT;
    --depth;
    if (ctx) *ctx = stack[depth];
    return CUDA_SUCCESS;
}

API CUresult cuModuleLoadData(CUmodule* module, const void* image) {
    ENTER("cuModuleLoadData", 1);
    NEEDS_CONTEXT();
    if (!image || !strstr((const char*)image, ".entry cuagent_smid")) return CUDA_ERROR_INVALID_IMAGE;
    ++fake.module;
    *module = (CUmodule)&fake.module;
    return CUDA_SUCCESS;
}

API CUresult cuModuleUnload(CUmodule module) {
    ENTER("cuModuleUnload", 1);
    if (module != (CUmodule)&fake.module || fake.module == 0) return CUDA_ERROR_INVALID_HANDLE;
    --fake.module;
    return CUDA_SUCCESS;
}

API CUresult cuModuleGetFunction(CUfunction* function, CUmodule module, const char* name) {
    ENTER("cuModuleGetFunction", 1);
    if (module != (CUmodule)&fake.module || strcmp(name, "cuagent_smid")) return CUDA_ERROR_NOT_FOUND;
    *function = (CUfunction)&fake.function;
    return CUDA_SUCCESS;
}

API CUresult cuFuncSetAttribute(CUfunction function, CUfunction_attribute attribute, int value) {
    ENTER("cuFuncSetAttribute", 1);
    if (function != (CUfunction)&fake.function) return CUDA_ERROR_INVALID_HANDLE;
    if (attribute == CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED) fake.non_portable = value != 0;
    return CUDA_SUCCESS;
}

/* Device memory is host memory here: a CUdeviceptr is the host address. */
API CUresult cuMemAlloc_v2(CUdeviceptr* ptr, size_t bytes) {
    ENTER("cuMemAlloc", 1);
    NEEDS_CONTEXT();
    void* p = malloc(bytes);
    if (!p) return CUDA_ERROR_OUT_OF_MEMORY;
    *ptr = (CUdeviceptr)(uintptr_t)p;
    return CUDA_SUCCESS;
}

API CUresult cuMemFree_v2(CUdeviceptr ptr) {
    ENTER("cuMemFree", 1);
    free((void*)(uintptr_t)ptr);
    return CUDA_SUCCESS;
}

API CUresult cuMemsetD32_v2(CUdeviceptr ptr, unsigned int value, size_t count) {
    ENTER("cuMemsetD32", 1);
    NEEDS_CONTEXT();
    unsigned int* p = (unsigned int*)(uintptr_t)ptr;
    for (size_t i = 0; i < count; ++i) p[i] = value;
    return CUDA_SUCCESS;
}

API CUresult cuMemcpyDtoH_v2(void* dst, CUdeviceptr src, size_t bytes) {
    ENTER("cuMemcpyDtoH", 1);
    NEEDS_CONTEXT();
    memcpy(dst, (const void*)(uintptr_t)src, bytes);
    return CUDA_SUCCESS;
}

API CUresult cuCtxSynchronize(void) {
    ENTER("cuCtxSynchronize", 1);
    NEEDS_CONTEXT();
    return CUDA_SUCCESS;
}

/* Places one cluster of `size` blocks starting at block `first`. */
static int place_cluster(unsigned* out, unsigned first, unsigned size) {
    if (size == 2) {
        unsigned tpc = fake.next_tpc++ % (unsigned)(fake.units / 2);
        out[first] = 2 * tpc;
        out[first + 1] = 2 * tpc + 1;
        return 1;
    }
    for (int tries = 0; tries < fake.groups; ++tries) {
        int g = (int)(fake.next_group++ % (unsigned)fake.groups);
        if ((int)size > fake.group_max[g] || (int)size > fake.group_size[g]) continue;
        int pool[MAX_UNITS];
        memcpy(pool, fake.group_sm[g], sizeof(int) * (size_t)fake.group_size[g]);
        for (unsigned b = 0; b < size; ++b) {  /* draw without replacement */
            unsigned pick = b + next_random() % (unsigned)(fake.group_size[g] - (int)b);
            int sm = pool[pick];
            pool[pick] = pool[b];
            out[first + b] = (unsigned)sm;
        }
        return 1;
    }
    return 0;  /* no group hosts clusters this large */
}

API CUresult cuLaunchKernelEx(const CUlaunchConfig* config, CUfunction function, void** params, void** extra) {
    ENTER("cuLaunchKernelEx", 1);
    NEEDS_CONTEXT();
    if (!config || function != (CUfunction)&fake.function || !params || extra) return CUDA_ERROR_INVALID_VALUE;
    unsigned cluster = 1;
    for (unsigned i = 0; i < config->numAttrs; ++i) {
        const CUlaunchAttribute* a = &config->attrs[i];
        if (a->id != CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION) return CUDA_ERROR_INVALID_VALUE;
        if (a->value.clusterDim.y != 1 || a->value.clusterDim.z != 1) return CUDA_ERROR_INVALID_CLUSTER_SIZE;
        cluster = a->value.clusterDim.x;
    }
    if (config->gridDimY != 1 || config->gridDimZ != 1 || config->blockDimX == 0 || config->hStream)
        return CUDA_ERROR_INVALID_VALUE;
    if (cluster < 1 || config->gridDimX % cluster) return CUDA_ERROR_INVALID_CLUSTER_SIZE;
    if (cluster > 16 || (cluster > 8 && !fake.non_portable)) return CUDA_ERROR_INVALID_CLUSTER_SIZE;
    unsigned* out = (unsigned*)(uintptr_t)*(CUdeviceptr*)params[0];
    for (unsigned first = 0; first < config->gridDimX; first += cluster)
        if (!place_cluster(out, first, cluster)) return CUDA_ERROR_INVALID_CLUSTER_SIZE;
    return CUDA_SUCCESS;
}

/* For tests: retains, primary contexts left on this thread's stack, and modules still held
 * (all 0 after a clean probe). */
API int fake_cuda_leaks(void) {
    int on_stack = 0;
    for (int i = 0; i < depth; ++i) on_stack += stack[i] == PRIMARY;
    return fake.retained + on_stack + fake.module;
}

/* For tests: the context current on this thread (NULL: none). */
API CUcontext fake_cuda_current(void) { return depth ? stack[depth - 1] : NULL; }
