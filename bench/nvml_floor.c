/* The floor for bench/nvml_read.py: the NVML calls one nvml-driver read makes,
 * timed back to back from C with nothing around them. Usage:
 *   nvml_floor <libnvidia-ml path> <reads>   -> prints ns per read */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef int ret_t;
typedef void* dev_t_;
typedef void* sample_t;
typedef struct { unsigned version; unsigned long long total, reserved, free, used; } mem2_t;
typedef struct { unsigned gpu, memory; } util_t;
typedef struct { unsigned id; ret_t r; double value; char* names[3]; } metric_t;
typedef struct { unsigned version, num; sample_t s1, s2; metric_t m[1024]; } metrics_t;

#define SYM(name, ...)                                                   \
    ret_t (*name)(__VA_ARGS__) = (ret_t(*)(__VA_ARGS__))dlsym(lib, #name); \
    if (!name) { fprintf(stderr, "no %s\n", #name); return 1; }

static long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char** argv) {
    if (argc < 3) return 2;
    void* lib = dlopen(argv[1], RTLD_NOW);
    if (!lib) { fprintf(stderr, "%s\n", dlerror()); return 1; }
    long reads = atol(argv[2]);
    SYM(nvmlInit_v2, void);
    SYM(nvmlDeviceGetHandleByIndex_v2, unsigned, dev_t_*);
    SYM(nvmlGpmSampleAlloc, sample_t*);
    SYM(nvmlGpmSampleGet, dev_t_, sample_t);
    SYM(nvmlGpmMetricsGet, metrics_t*);
    SYM(nvmlDeviceGetMemoryInfo_v2, dev_t_, mem2_t*);
    SYM(nvmlDeviceGetPowerUsage, dev_t_, unsigned*);
    SYM(nvmlDeviceGetTemperature, dev_t_, int, unsigned*);
    SYM(nvmlDeviceGetClockInfo, dev_t_, int, unsigned*);
    SYM(nvmlDeviceGetCurrentClocksEventReasons, dev_t_, unsigned long long*);
    SYM(nvmlDeviceGetUtilizationRates, dev_t_, util_t*);
    SYM(nvmlDeviceGetTotalEccErrors, dev_t_, int, int, unsigned long long*);
    if (nvmlInit_v2()) return 1;
    dev_t_ d;
    nvmlDeviceGetHandleByIndex_v2(0, &d);
    sample_t s[2];
    nvmlGpmSampleAlloc(&s[0]);
    nvmlGpmSampleAlloc(&s[1]);
    nvmlGpmSampleGet(d, s[0]);
    static metrics_t m;
    static const unsigned ids[9] = {2, 3, 5, 10, 1, 20, 21, 61, 60};
    unsigned u;
    unsigned long long ull;
    mem2_t mem;
    util_t util;
    volatile double sink = 0;
    long long t0 = now();
    for (long i = 0; i < reads; ++i) {
        sample_t cur = s[(i + 1) & 1], prev = s[i & 1];
        nvmlGpmSampleGet(d, cur);
        m.version = 1;
        m.num = 9;
        m.s1 = prev;
        m.s2 = cur;
        for (int k = 0; k < 9; ++k) m.m[k].id = ids[k];
        nvmlGpmMetricsGet(&m);
        mem.version = (unsigned)sizeof(mem2_t) | (2u << 24);
        nvmlDeviceGetMemoryInfo_v2(d, &mem);
        nvmlDeviceGetPowerUsage(d, &u);
        nvmlDeviceGetTemperature(d, 0, &u);
        nvmlDeviceGetClockInfo(d, 1, &u);
        nvmlDeviceGetClockInfo(d, 2, &u);
        nvmlDeviceGetCurrentClocksEventReasons(d, &ull);
        nvmlDeviceGetUtilizationRates(d, &util);
        nvmlDeviceGetTotalEccErrors(d, 1, 0, &ull);
        sink += m.m[0].value + (double)mem.used + u;
    }
    long long t1 = now();
    printf("%.1f\n", (double)(t1 - t0) / (double)reads);
    return 0;
}
