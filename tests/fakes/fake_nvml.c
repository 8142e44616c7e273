/*
 * A fake libnvidia-ml.so.1 for tests on machines without an NVIDIA GPU.
 *
 * It exports the NVML functions cuagent's nvml driver and its pynvml slow path
 * call, with the real ABI (signatures, struct layouts, enum and error values
 * as in nvml.h), and behaves like the real library in the ways the driver
 * relies on:
 *   - values refresh every 100 ms (a "tick"); readings between ticks repeat;
 *   - two GPM samples taken within the same 100 ms tick give zeros, like the
 *     hardware counters that have not advanced yet;
 *   - a lost GPU answers NVML_ERROR_GPU_IS_LOST to every device call;
 *   - list queries answer NVML_ERROR_INSUFFICIENT_SIZE with the needed count.
 *
 * The compiler checks that ABI: with -DFAKE_NVML_REAL_HEADER
 * (tests/nvml_fake.py passes it, with -I, wherever the nvidia-nvml-dev-cu12
 * wheel is installed) the fake includes NVIDIA's nvml.h, so each exported
 * function must have the header's exact signature (a conflicting definition does
 * not compile) and each struct it fills is the header's own, filled by field
 * name. Without the wheel (e.g. on the device machine) it declares the same
 * types itself, below. tests/test_nvidia_abi.py builds every variant so.
 *
 * Build variants (the test fixture passes -D flags):
 *   FAKE_NO_GPM            no nvmlGpm* symbols (a pre-Hopper driver)
 *   FAKE_NO_INIT           no nvmlInit_v2 (a broken library)
 *   FAKE_OMIT_POWER        no nvmlDeviceGetPowerUsage (a symbol missing)
 *   FAKE_OMIT_EVENT_REASONS no nvmlDeviceGetCurrentClocksEventReasons (older
 *                          driver: only the ThrottleReasons name exists)
 *
 * Scripting: at nvmlInit the fake reads the file named by $FAKE_NVML_SCRIPT
 * (or the one passed to fake_nvml_load()). One directive per line, '#' starts
 * a comment, <dev> is a device index or '*':
 *   devices <n>                         number of GPUs (1..16, default 1)
 *   set <dev> <key> <value...>          static value, keys below
 *   trace <dev> <path>                  replay a table: first line names keys,
 *                                       then one row of numbers per 100 ms tick
 *                                       (the last row repeats)
 *   fail <dev> <function> <code> [<after>]  the function returns <code> (after
 *                                       <after> successful calls)
 *   lost <dev> calls <n> | ms <t>       the GPU falls off the bus after n device
 *                                       calls or t ms after nvmlInit
 *   mig <dev> <gi> <name> <sms> <mem_mb> <start> <size> <cis>
 *                                       a GPU instance (MIG mode turns on)
 *   process <dev> <pid> <sm%> <mem%> <used_bytes>
 *   nvlink <dev> <link> <peer dev>      an active NVLink to another device
 *   topo <dev> <dev> <level>            nvmlGpuTopologyLevel_t between two GPUs
 *   gpm_untouched <metric id>           nvmlGpmMetricsGet leaves that metric's answer
 *                                       unwritten (as a library that skips one might)
 * Keys: name uuid pci numa memory_total mem_used power_w temp_c sm_clock_hz
 * mem_clock_hz throttle_mask util_gpu util_mem (0..1) sm_active sm_occupancy
 * tensor_active dram_active gr_active (0..1) pcie_tx_mib_s pcie_rx_mib_s
 * nvlink_tx_mib_s nvlink_rx_mib_s ecc_uncorrected gpm (0/1) arch, cores (CUDA
 * cores; 0: not supported), cc (compute capability, e.g. 9.0).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define API __attribute__((visibility("default")))

/* ---- NVML's types ---- */
#ifdef FAKE_NVML_REAL_HEADER
/* Keep nvmlInit, nvmlDeviceGetCount, ... unversioned: otherwise nvml.h renames
 * them to their latest versions, and the fake exports exactly the versioned
 * symbols defined below. */
#define NVML_NO_UNVERSIONED_FUNC_DEFS
#include <nvml.h>
#else
/* The slice of nvml.h (12.9) the fake uses. Its enums hold no negative value,
 * so GCC and Clang give them unsigned int: the enum parameters are that. */
typedef enum nvmlReturn_enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NOT_FOUND = 6,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_GPU_IS_LOST = 15,
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
    NVML_ERROR_UNKNOWN = 999,
} nvmlReturn_t;
typedef unsigned int nvmlTemperatureSensors_t;
typedef unsigned int nvmlClockType_t;
typedef unsigned int nvmlPcieUtilCounter_t;
typedef unsigned int nvmlMemoryErrorType_t;
typedef unsigned int nvmlEccCounterType_t;
typedef unsigned int nvmlGpuTopologyLevel_t;
typedef unsigned int nvmlEnableState_t;

typedef struct nvmlDevice_st* nvmlDevice_t;
typedef struct nvmlGpuInstance_st* nvmlGpuInstance_t;
typedef struct nvmlGpmSample_st* nvmlGpmSample_t;
typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct { unsigned version; unsigned long long total, reserved, free, used; } nvmlMemory_v2_t;
typedef struct { unsigned gpu, memory; } nvmlUtilization_t;
typedef struct {
    char busIdLegacy[16];
    unsigned domain, bus, device, pciDeviceId, pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;
typedef struct {
    unsigned multiprocessorCount, sharedCopyEngineCount, sharedDecoderCount,
        sharedEncoderCount, sharedJpegCount, sharedOfaCount, gpuInstanceSliceCount,
        computeInstanceSliceCount;
    unsigned long long memorySizeMB;
} nvmlDeviceAttributes_t;
typedef struct {
    unsigned pid;
    unsigned long long timeStamp;
    unsigned smUtil, memUtil, encUtil, decUtil;
} nvmlProcessUtilizationSample_t;
typedef struct {
    unsigned pid;
    unsigned long long usedGpuMemory;
    unsigned gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;
typedef struct { unsigned start, size; } nvmlGpuInstancePlacement_t;
typedef struct {
    nvmlDevice_t device;
    unsigned id, profileId;
    nvmlGpuInstancePlacement_t placement;
} nvmlGpuInstanceInfo_t;
typedef struct {
    unsigned metricId;
    nvmlReturn_t nvmlReturn;
    double value;
    struct { char* shortName; char* longName; char* unit; } metricInfo;
} nvmlGpmMetric_t;
typedef struct {
    unsigned version;
    unsigned numMetrics;
    nvmlGpmSample_t sample1, sample2;
    nvmlGpmMetric_t metrics[]; /* NVML_GPM_METRIC_MAX in nvml.h; numMetrics used */
} nvmlGpmMetricsGet_t;
typedef struct { unsigned version, isSupportedDevice; } nvmlGpmSupport_t;
#endif /* FAKE_NVML_REAL_HEADER */

/* The fake's own exports, for tests (ctypes). Declared here so that, built with
 * -Wmissing-prototypes, every other exported function needs nvml.h's prototype:
 * the fake exports no NVML name that the real header does not declare. */
API long fake_nvml_calls(const char* name);
API int fake_nvml_load(const char* path);

#define MAX_DEVICES 16
#define MAX_MIG 8
#define MAX_PROCS 8
#define MAX_LINKS 18
#define MAX_ROWS 4096
#define TICK_NS 100000000LL

/* ---- the values a device shows ---- */
enum key {
    K_MEM_USED, K_POWER_W, K_TEMP_C, K_SM_CLOCK, K_MEM_CLOCK, K_THROTTLE,
    K_UTIL_GPU, K_UTIL_MEM, K_SM_ACTIVE, K_SM_OCC, K_TENSOR, K_DRAM, K_GR,
    K_PCIE_TX, K_PCIE_RX, K_NVL_TX, K_NVL_RX, K_ECC, K_COUNT
};
static const char* const key_names[K_COUNT] = {
    "mem_used", "power_w", "temp_c", "sm_clock_hz", "mem_clock_hz", "throttle_mask",
    "util_gpu", "util_mem", "sm_active", "sm_occupancy", "tensor_active", "dram_active",
    "gr_active", "pcie_tx_mib_s", "pcie_rx_mib_s", "nvlink_tx_mib_s", "nvlink_rx_mib_s",
    "ecc_uncorrected",
};

struct trace {
    int rows;
    int columns;
    int column_key[K_COUNT + 8];  /* key per column, -1: ignored */
    double* data;                 /* rows x columns */
};

struct mig {
    unsigned gi;
    char profile[48];
    unsigned sms, mem_mb, start, size, cis;
};

struct process { unsigned pid, sm, mem; unsigned long long used; };

struct failure { char function[64]; int code; long after; long seen; };

/* An nvmlDevice_t points at one of these: a whole GPU or a MIG device (a
 * compute instance of one GPU instance). */
struct nvmlDevice_st {
    int index;       /* GPU index */
    int mig;         /* -1: the GPU itself; else index into mig[] */
};

struct gpu {
    char name[96], uuid[96], pci[32], arch[16];
    int numa;
    unsigned cores;      /* nvmlDeviceGetNumGpuCores; 0: NOT_SUPPORTED */
    int cc_major, cc_minor;  /* nvmlDeviceGetCudaComputeCapability */
    unsigned long long memory_total;
    double value[K_COUNT];
    struct trace trace;
    int gpm;
    long lost_after_calls;  /* <0: never */
    long long lost_after_ns;
    long calls;
    int lost;
    struct mig mig[MAX_MIG];
    int mig_count;
    struct process proc[MAX_PROCS];
    int proc_count;
    int link_peer[MAX_LINKS];  /* -1: inactive */
    int topo[MAX_DEVICES];
};

static struct gpu gpus[MAX_DEVICES];
static struct nvmlDevice_st handles[MAX_DEVICES][1 + MAX_MIG];
static int gpu_count = 1;
static int gpm_untouched = -1; /* a GPM metric id whose answer nvmlGpmMetricsGet leaves unwritten */
static int initialized = 0;
static int scripted = 0;
static long long t0_ns;
static struct failure failures[32];
static int failure_count;

/* Per-function call counters, read by tests through fake_nvml_calls().
 * Keyed by the address of the name each call site passes (its __func__ or
 * literal), in an open-addressed table: a call costs the same few
 * instructions whatever was called before it. (A linear strcmp scan made a
 * call's cost grow with the number of distinct functions called earlier, so
 * the nvml driver, which calls ~20 functions while describing a device, paid
 * ~2x the bookkeeping of bench/nvml_floor.c for the same hot-path calls.) */
#define COUNTER_SLOTS 256 /* power of two, well above the fake's functions */
struct counter { const char* name; long calls; };
static struct counter counters[COUNTER_SLOTS];

static void count_call(const char* name) {
    unsigned i = (unsigned)(((unsigned long)name >> 3) & (COUNTER_SLOTS - 1));
    while (counters[i].name && counters[i].name != name) i = (i + 1) & (COUNTER_SLOTS - 1);
    counters[i].name = name;
    ++counters[i].calls;
}

/* Sums every call site with that name (two literals of one name may differ
 * in address). */
API long fake_nvml_calls(const char* name) {
    long calls = 0;
    for (int i = 0; i < COUNTER_SLOTS; ++i)
        if (counters[i].name && strcmp(counters[i].name, name) == 0) calls += counters[i].calls;
    return calls;
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long tick_now(void) { return (long)((now_ns() - t0_ns) / TICK_NS); }

static double value_at(const struct gpu* g, int key, long tick) {
    const struct trace* t = &g->trace;
    if (t->rows > 0) {
        long row = tick < t->rows ? tick : t->rows - 1;
        for (int c = 0; c < t->columns; ++c)
            if (t->column_key[c] == key) return t->data[row * t->columns + c];
    }
    return g->value[key];
}

static double value(const struct gpu* g, int key) { return value_at(g, key, tick_now()); }

/* ---- script ---- */
static void reset(void) {
    for (int i = 0; i < MAX_DEVICES; ++i) {
        free(gpus[i].trace.data);
        struct gpu* g = &gpus[i];
        memset(g, 0, sizeof *g);
        snprintf(g->name, sizeof g->name, "NVIDIA H100 80GB HBM3");
        snprintf(g->uuid, sizeof g->uuid, "GPU-fa4e0000-0000-0000-0000-%012d", i);
        snprintf(g->pci, sizeof g->pci, "00000000:%02X:00.0", 0x18 + i * 0x10);
        snprintf(g->arch, sizeof g->arch, "hopper");
        g->numa = i < 4 ? 0 : 1;
        g->cores = 16896; /* an H100 SXM's 132 SMs of 128 FP32 cores */
        g->cc_major = 9;
        g->cc_minor = 0;
        g->memory_total = 85520809984ULL;
        g->value[K_MEM_USED] = 503316480;
        g->value[K_POWER_W] = 76.357;
        g->value[K_TEMP_C] = 51;
        g->value[K_SM_CLOCK] = 345e6;
        g->value[K_MEM_CLOCK] = 2619e6;
        g->value[K_THROTTLE] = 1;
        g->value[K_DRAM] = 1e-5;
        g->gpm = 1;
        g->lost_after_calls = -1;
        g->lost_after_ns = -1;
        for (int l = 0; l < MAX_LINKS; ++l) g->link_peer[l] = -1;
        for (int p = 0; p < MAX_DEVICES; ++p) g->topo[p] = 40; /* NODE */
        for (int h = 0; h < 1 + MAX_MIG; ++h) handles[i][h] = (struct nvmlDevice_st){i, h - 1};
    }
    gpu_count = 1;
    gpm_untouched = -1;
    failure_count = 0;
    memset(counters, 0, sizeof counters);
}

static int find_key(const char* name) {
    for (int k = 0; k < K_COUNT; ++k)
        if (strcmp(key_names[k], name) == 0) return k;
    return -1;
}

static void load_trace(struct gpu* g, const char* path) {
    FILE* f = fopen(path, "r");
    if (!f) { fprintf(stderr, "fake_nvml: cannot open trace %s\n", path); return; }
    char line[4096];
    struct trace t = {0};
    if (fgets(line, sizeof line, f)) {
        for (char* tok = strtok(line, " \t\n"); tok; tok = strtok(NULL, " \t\n"))
            if (t.columns < K_COUNT + 8) t.column_key[t.columns++] = find_key(tok);
    }
    t.data = calloc((size_t)MAX_ROWS * (size_t)t.columns, sizeof(double));
    while (t.rows < MAX_ROWS && fgets(line, sizeof line, f)) {
        int c = 0;
        for (char* tok = strtok(line, " \t\n"); tok && c < t.columns; tok = strtok(NULL, " \t\n"))
            t.data[t.rows * t.columns + c++] = strtod(tok, NULL);
        if (c == t.columns) ++t.rows;
    }
    fclose(f);
    free(g->trace.data);
    g->trace = t;
}

/* Run the statement on the device(s) named by `which` ('*' = all). */
#define FOR_DEVICES(which, ...)                                             \
    do {                                                                     \
        int lo_ = 0, hi_ = MAX_DEVICES - 1;                                  \
        if (strcmp((which), "*") != 0) lo_ = hi_ = atoi(which);              \
        for (int d_ = lo_; d_ <= hi_ && d_ < MAX_DEVICES; ++d_) {            \
            struct gpu* g = &gpus[d_];                                       \
            __VA_ARGS__;                                                     \
        }                                                                    \
    } while (0)

static void apply(char* line) {
    char* hash = strchr(line, '#');
    if (hash) *hash = 0;
    char* argv[16];
    int argc = 0;
    char* rest_after_key = NULL;
    for (char* tok = strtok(line, " \t\n"); tok && argc < 16; tok = strtok(NULL, " \t\n")) {
        argv[argc++] = tok;
    }
    if (argc == 0) return;
    if (strcmp(argv[0], "devices") == 0 && argc >= 2) {
        gpu_count = atoi(argv[1]);
        if (gpu_count < 0) gpu_count = 0;
        if (gpu_count > MAX_DEVICES) gpu_count = MAX_DEVICES;
    } else if (strcmp(argv[0], "set") == 0 && argc >= 4) {
        /* String values may contain spaces: join the remaining tokens. */
        char joined[128] = "";
        for (int i = 3; i < argc; ++i) {
            if (i > 3) strncat(joined, " ", sizeof joined - strlen(joined) - 1);
            strncat(joined, argv[i], sizeof joined - strlen(joined) - 1);
        }
        rest_after_key = joined;
        const char* key = argv[2];
        FOR_DEVICES(argv[1], {
            if (strcmp(key, "name") == 0) snprintf(g->name, sizeof g->name, "%s", rest_after_key);
            else if (strcmp(key, "uuid") == 0) snprintf(g->uuid, sizeof g->uuid, "%s", rest_after_key);
            else if (strcmp(key, "pci") == 0) snprintf(g->pci, sizeof g->pci, "%s", rest_after_key);
            else if (strcmp(key, "arch") == 0) snprintf(g->arch, sizeof g->arch, "%s", rest_after_key);
            else if (strcmp(key, "numa") == 0) g->numa = atoi(rest_after_key);
            else if (strcmp(key, "cores") == 0) g->cores = (unsigned)strtoul(rest_after_key, NULL, 10);
            else if (strcmp(key, "cc") == 0) sscanf(rest_after_key, "%d.%d", &g->cc_major, &g->cc_minor);
            else if (strcmp(key, "memory_total") == 0) g->memory_total = strtoull(rest_after_key, NULL, 10);
            else if (strcmp(key, "gpm") == 0) g->gpm = atoi(rest_after_key);
            else {
                int k = find_key(key);
                if (k >= 0) g->value[k] = strtod(rest_after_key, NULL);
                else fprintf(stderr, "fake_nvml: unknown key %s\n", key);
            }
        });
    } else if (strcmp(argv[0], "gpm_untouched") == 0 && argc >= 2) {
        gpm_untouched = atoi(argv[1]);
    } else if (strcmp(argv[0], "trace") == 0 && argc >= 3) {
        FOR_DEVICES(argv[1], load_trace(g, argv[2]));
    } else if (strcmp(argv[0], "fail") == 0 && argc >= 4 && failure_count < 32) {
        /* Device-specific failures are not needed by the tests: '*' only. */
        struct failure* f = &failures[failure_count++];
        snprintf(f->function, sizeof f->function, "%s", argv[2]);
        f->code = atoi(argv[3]);
        f->after = argc >= 5 ? atol(argv[4]) : 0;
        f->seen = 0;
    } else if (strcmp(argv[0], "lost") == 0 && argc >= 4) {
        FOR_DEVICES(argv[1], {
            if (strcmp(argv[2], "calls") == 0) g->lost_after_calls = atol(argv[3]);
            else g->lost_after_ns = atoll(argv[3]) * 1000000LL;
        });
    } else if (strcmp(argv[0], "mig") == 0 && argc >= 9) {
        FOR_DEVICES(argv[1], {
            if (g->mig_count < MAX_MIG) {
                struct mig* m = &g->mig[g->mig_count++];
                m->gi = (unsigned)atoi(argv[2]);
                snprintf(m->profile, sizeof m->profile, "%s", argv[3]);
                m->sms = (unsigned)atoi(argv[4]);
                m->mem_mb = (unsigned)atoi(argv[5]);
                m->start = (unsigned)atoi(argv[6]);
                m->size = (unsigned)atoi(argv[7]);
                m->cis = (unsigned)atoi(argv[8]);
            }
        });
    } else if (strcmp(argv[0], "process") == 0 && argc >= 6) {
        FOR_DEVICES(argv[1], {
            if (g->proc_count < MAX_PROCS)
                g->proc[g->proc_count++] = (struct process){
                    (unsigned)atoi(argv[2]), (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]),
                    strtoull(argv[5], NULL, 10)};
        });
    } else if (strcmp(argv[0], "nvlink") == 0 && argc >= 4) {
        int link = atoi(argv[2]);
        FOR_DEVICES(argv[1], { if (link >= 0 && link < MAX_LINKS) g->link_peer[link] = atoi(argv[3]); });
    } else if (strcmp(argv[0], "topo") == 0 && argc >= 4) {
        int a = atoi(argv[1]), b = atoi(argv[2]);
        if (a >= 0 && a < MAX_DEVICES && b >= 0 && b < MAX_DEVICES)
            gpus[a].topo[b] = gpus[b].topo[a] = atoi(argv[3]);
    } else {
        fprintf(stderr, "fake_nvml: bad directive %s\n", argv[0]);
    }
}

/* Re-script the fake (tests call it through ctypes). Returns 0 on success. */
API int fake_nvml_load(const char* path) {
    scripted = 1;
    reset();
    t0_ns = now_ns();
    if (!path || !*path) return 0;
    FILE* f = fopen(path, "r");
    if (!f) { fprintf(stderr, "fake_nvml: cannot open script %s\n", path); return -1; }
    char line[1024];
    while (fgets(line, sizeof line, f)) apply(line);
    fclose(f);
    return 0;
}

/* ---- common checks ---- */
static nvmlReturn_t scripted_failure(const char* fn) {
    for (int i = 0; i < failure_count; ++i) {
        struct failure* f = &failures[i];
        if (strcmp(f->function, fn) != 0) continue;
        if (f->seen++ >= f->after) return (nvmlReturn_t)f->code;
    }
    return NVML_SUCCESS;
}

/* Every device call goes through here: counts it, applies loss and failures. */
static nvmlReturn_t enter(const char* fn, const struct nvmlDevice_st* h, struct gpu** out) {
    count_call(fn);
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!h || h->index < 0 || h->index >= gpu_count) return NVML_ERROR_INVALID_ARGUMENT;
    struct gpu* g = &gpus[h->index];
    ++g->calls;
    if (!g->lost && g->lost_after_calls >= 0 && g->calls > g->lost_after_calls) g->lost = 1;
    if (!g->lost && g->lost_after_ns >= 0 && now_ns() - t0_ns >= g->lost_after_ns) g->lost = 1;
    if (g->lost) return NVML_ERROR_GPU_IS_LOST;
    nvmlReturn_t code = scripted_failure(fn);
    if (code) return code;
    *out = g;
    return NVML_SUCCESS;
}

#define ENTER(h)                                                            \
    struct gpu* g = NULL;                                                   \
    nvmlReturn_t rc_ = enter(__func__, (h), &g);                            \
    if (rc_ != NVML_SUCCESS) return rc_;

static struct mig* mig_of(const struct nvmlDevice_st* h) {
    return h->mig >= 0 ? &gpus[h->index].mig[h->mig] : NULL;
}

/* ---- library ---- */
static nvmlReturn_t do_init(void) {
    count_call("nvmlInit");
    /* The environment's script is read once per process, at the first init;
     * fake_nvml_load() replaces it (and survives later inits). */
    if (!scripted) {
        const char* path = getenv("FAKE_NVML_SCRIPT");
        if (fake_nvml_load(path) != 0) return NVML_ERROR_UNKNOWN;
    }
    ++initialized;
    return NVML_SUCCESS;
}

#ifndef FAKE_NO_INIT
API nvmlReturn_t nvmlInit_v2(void) { return do_init(); }
#endif
API nvmlReturn_t nvmlInitWithFlags(unsigned flags) { (void)flags; return do_init(); }

API nvmlReturn_t nvmlShutdown(void) {
    count_call("nvmlShutdown");
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    --initialized;
    return NVML_SUCCESS;
}

API const char* nvmlErrorString(nvmlReturn_t r) {
    switch (r) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    default: return "Unknown Error";
    }
}

API nvmlReturn_t nvmlSystemGetDriverVersion(char* version, unsigned length) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    snprintf(version, length, "580.159.04-fake");
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetCount_v2(unsigned* count) {
    count_call(__func__);
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    *count = (unsigned)gpu_count;
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned index, nvmlDevice_t* device) {
    count_call(__func__);
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (index >= (unsigned)gpu_count || !device) return NVML_ERROR_INVALID_ARGUMENT;
    *device = &handles[index][0];
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char* name, unsigned length) {
    ENTER(d);
    const struct mig* m = mig_of(d);
    int n = m ? snprintf(name, length, "%s MIG %s", g->name, m->profile)
              : snprintf(name, length, "%s", g->name);
    return n >= (int)length ? NVML_ERROR_INSUFFICIENT_SIZE : NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetNumGpuCores(nvmlDevice_t d, unsigned int* cores) {
    ENTER(d);
    if (!cores) return NVML_ERROR_INVALID_ARGUMENT;
    if (mig_of(d) || g->cores == 0) return NVML_ERROR_NOT_SUPPORTED;
    *cores = g->cores;
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t d, int* major, int* minor) {
    ENTER(d);
    if (!major || !minor) return NVML_ERROR_INVALID_ARGUMENT;
    *major = g->cc_major;
    *minor = g->cc_minor;
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char* uuid, unsigned length) {
    ENTER(d);
    const struct mig* m = mig_of(d);
    int n = m ? snprintf(uuid, length, "MIG-%s-%u", g->uuid + 4, m->gi)
              : snprintf(uuid, length, "%s", g->uuid);
    return n >= (int)length ? NVML_ERROR_INSUFFICIENT_SIZE : NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t d, nvmlPciInfo_t* pci) {
    ENTER(d);
    memset(pci, 0, sizeof *pci);
    snprintf(pci->busId, sizeof pci->busId, "%s", g->pci);
    snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "%s", g->pci + 4);
    sscanf(g->pci, "%x:%x:%x", &pci->domain, &pci->bus, &pci->device);
    pci->pciDeviceId = 0x233010de;
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetNumaNodeId(nvmlDevice_t d, unsigned* node) {
    ENTER(d);
    if (g->numa < 0) return NVML_ERROR_NOT_SUPPORTED;
    *node = (unsigned)g->numa;
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t* mem) {
    ENTER(d);
    mem->total = g->memory_total;
    mem->used = (unsigned long long)value(g, K_MEM_USED);
    mem->free = mem->total - mem->used;
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t* mem) {
    ENTER(d);
    if (mem->version != (unsigned)(sizeof(nvmlMemory_v2_t) | (2u << 24)))
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    mem->total = g->memory_total;
    mem->reserved = 0;
    mem->used = (unsigned long long)value(g, K_MEM_USED);
    mem->free = mem->total - mem->used;
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t* u) {
    ENTER(d);
    u->gpu = (unsigned)(value(g, K_UTIL_GPU) * 100.0 + 0.5);
    u->memory = (unsigned)(value(g, K_UTIL_MEM) * 100.0 + 0.5);
    return NVML_SUCCESS;
}

#ifndef FAKE_OMIT_POWER
API nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned* mw) {
    ENTER(d);
    *mw = (unsigned)(value(g, K_POWER_W) * 1000.0 + 0.5);
    return NVML_SUCCESS;
}
#endif

API nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, nvmlTemperatureSensors_t sensor, unsigned* temp) {
    ENTER(d);
    if (sensor != 0) return NVML_ERROR_INVALID_ARGUMENT;
    *temp = (unsigned)value(g, K_TEMP_C);
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t d, nvmlClockType_t type, unsigned* mhz) {
    ENTER(d);
    if (type == 1) *mhz = (unsigned)(value(g, K_SM_CLOCK) / 1e6 + 0.5);
    else if (type == 2) *mhz = (unsigned)(value(g, K_MEM_CLOCK) / 1e6 + 0.5);
    else if (type == 0) *mhz = (unsigned)(value(g, K_SM_CLOCK) / 1e6 + 0.5);
    else return NVML_ERROR_INVALID_ARGUMENT;
    return NVML_SUCCESS;
}

#ifndef FAKE_OMIT_EVENT_REASONS
API nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t d, unsigned long long* mask) {
    ENTER(d);
    *mask = (unsigned long long)value(g, K_THROTTLE);
    return NVML_SUCCESS;
}
#endif

API nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t d, unsigned long long* mask) {
    ENTER(d);
    *mask = (unsigned long long)value(g, K_THROTTLE);
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetPcieThroughput(nvmlDevice_t d, nvmlPcieUtilCounter_t counter, unsigned* kbs) {
    ENTER(d);
    double mib = value(g, counter == 0 ? K_PCIE_TX : K_PCIE_RX);
    *kbs = (unsigned)(mib * 1048576.0 / 1024.0);
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t d, nvmlMemoryErrorType_t type,
                                             nvmlEccCounterType_t counter, unsigned long long* count) {
    ENTER(d);
    (void)counter;
    *count = type == 1 ? (unsigned long long)value(g, K_ECC) : 0;
    return NVML_SUCCESS;
}

/* ---- processes ---- */
API nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t d,
                                                 nvmlProcessUtilizationSample_t* samples,
                                                 unsigned* count, unsigned long long since) {
    ENTER(d);
    (void)since;
    if (g->mig_count > 0) return NVML_ERROR_NOT_SUPPORTED;
    if (g->proc_count == 0) return NVML_ERROR_NOT_FOUND; /* no process ran in the window */
    if (!samples || *count < (unsigned)g->proc_count) {
        *count = (unsigned)g->proc_count;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    unsigned long long ts = (unsigned long long)(now_ns() / 1000);
    for (int i = 0; i < g->proc_count; ++i)
        samples[i] = (nvmlProcessUtilizationSample_t){
            .pid = g->proc[i].pid, .timeStamp = ts, .smUtil = g->proc[i].sm,
            .memUtil = g->proc[i].mem, .encUtil = 0, .decUtil = 0};
    *count = (unsigned)g->proc_count;
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned* count,
                                                         nvmlProcessInfo_t* infos) {
    ENTER(d);
    if (g->proc_count == 0) { *count = 0; return NVML_SUCCESS; }
    if (!infos || *count < (unsigned)g->proc_count) {
        *count = (unsigned)g->proc_count;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for (int i = 0; i < g->proc_count; ++i)
        infos[i] = (nvmlProcessInfo_t){.pid = g->proc[i].pid, .usedGpuMemory = g->proc[i].used,
                                       .gpuInstanceId = 0xFFFFFFFFu, .computeInstanceId = 0xFFFFFFFFu};
    *count = (unsigned)g->proc_count;
    return NVML_SUCCESS;
}

/* ---- topology and links ---- */
API nvmlReturn_t nvmlDeviceGetTopologyCommonAncestor(nvmlDevice_t a, nvmlDevice_t b,
                                                      nvmlGpuTopologyLevel_t* level) {
    ENTER(a);
    if (!b || b->index >= gpu_count) return NVML_ERROR_INVALID_ARGUMENT;
    *level = (nvmlGpuTopologyLevel_t)(a->index == b->index ? 0 : g->topo[b->index]);
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetNvLinkState(nvmlDevice_t d, unsigned link, nvmlEnableState_t* active) {
    ENTER(d);
    if (link >= MAX_LINKS) return NVML_ERROR_INVALID_ARGUMENT;
    if (strcmp(g->arch, "hopper") != 0 && g->link_peer[0] < 0) return NVML_ERROR_NOT_SUPPORTED;
    *active = (nvmlEnableState_t)(g->link_peer[link] >= 0);
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetNvLinkRemotePciInfo_v2(nvmlDevice_t d, unsigned link, nvmlPciInfo_t* pci) {
    ENTER(d);
    if (link >= MAX_LINKS || g->link_peer[link] < 0) return NVML_ERROR_NOT_SUPPORTED;
    const struct gpu* peer = &gpus[g->link_peer[link]];
    memset(pci, 0, sizeof *pci);
    snprintf(pci->busId, sizeof pci->busId, "%s", peer->pci);
    snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "%s", peer->pci + 4);
    sscanf(peer->pci, "%x:%x:%x", &pci->domain, &pci->bus, &pci->device);
    return NVML_SUCCESS;
}

/* ---- MIG ---- */
API nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned* current, unsigned* pending) {
    ENTER(d);
    if (strcmp(g->arch, "hopper") != 0 && strcmp(g->arch, "ampere") != 0)
        return NVML_ERROR_NOT_SUPPORTED;
    *current = *pending = g->mig_count > 0;
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t d, unsigned* count) {
    ENTER(d);
    *count = 7;
    return NVML_SUCCESS;
}

/* MIG device handles: one per compute instance; the fake gives each GPU
 * instance one handle, whose attributes carry the whole instance. */
API nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t d, unsigned index, nvmlDevice_t* mig) {
    ENTER(d);
    if (d->mig >= 0) return NVML_ERROR_INVALID_ARGUMENT;
    if (index >= 7) return NVML_ERROR_INVALID_ARGUMENT;
    if (index >= (unsigned)g->mig_count) return NVML_ERROR_NOT_FOUND;
    *mig = &handles[d->index][1 + index];
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceIsMigDeviceHandle(nvmlDevice_t d, unsigned* is_mig) {
    ENTER(d);
    *is_mig = d->mig >= 0;
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t d, unsigned* id) {
    ENTER(d);
    const struct mig* m = mig_of(d);
    if (!m) return NVML_ERROR_NOT_SUPPORTED;
    *id = m->gi;
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetComputeInstanceId(nvmlDevice_t d, unsigned* id) {
    ENTER(d);
    if (!mig_of(d)) return NVML_ERROR_NOT_SUPPORTED;
    *id = 0;
    return NVML_SUCCESS;
}

/* Like the real one: only MIG device handles have attributes. */
API nvmlReturn_t nvmlDeviceGetAttributes_v2(nvmlDevice_t d, nvmlDeviceAttributes_t* a) {
    ENTER(d);
    const struct mig* m = mig_of(d);
    if (!m) return NVML_ERROR_NOT_SUPPORTED;
    memset(a, 0, sizeof *a);
    a->multiprocessorCount = m->sms;
    a->gpuInstanceSliceCount = m->size;
    a->computeInstanceSliceCount = m->size;
    a->memorySizeMB = m->mem_mb;
    return NVML_SUCCESS;
}

/* An nvmlGpuInstance_t points at one of these: (gpu, mig slot). */
struct nvmlGpuInstance_st { int gpu, slot; };
static struct nvmlGpuInstance_st gi_handles[MAX_DEVICES][MAX_MIG];

API nvmlReturn_t nvmlDeviceGetGpuInstanceById(nvmlDevice_t d, unsigned id, nvmlGpuInstance_t* gi) {
    ENTER(d);
    for (int i = 0; i < g->mig_count; ++i)
        if (g->mig[i].gi == id) {
            gi_handles[d->index][i] = (struct nvmlGpuInstance_st){d->index, i};
            *gi = &gi_handles[d->index][i];
            return NVML_SUCCESS;
        }
    return NVML_ERROR_NOT_FOUND;
}

API nvmlReturn_t nvmlGpuInstanceGetInfo(nvmlGpuInstance_t gi, nvmlGpuInstanceInfo_t* info) {
    count_call(__func__);
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!gi) return NVML_ERROR_INVALID_ARGUMENT;
    struct gpu* g = &gpus[gi->gpu];
    if (g->lost) return NVML_ERROR_GPU_IS_LOST;
    const struct mig* m = &g->mig[gi->slot];
    info->device = &handles[gi->gpu][0];
    info->id = m->gi;
    info->profileId = m->size;
    info->placement = (nvmlGpuInstancePlacement_t){.start = m->start, .size = m->size};
    return NVML_SUCCESS;
}

/* ---- GPM ---- */
#ifndef FAKE_NO_GPM
/* An nvmlGpmSample_t points at one of these. */
struct nvmlGpmSample_st {
    int gpu;
    int gi;          /* -1: whole device */
    long tick;       /* 100 ms refresh period the sample was taken in */
    unsigned magic;
};
#define GPM_MAGIC 0x67706d31u

API nvmlReturn_t nvmlGpmQueryDeviceSupport(nvmlDevice_t d, nvmlGpmSupport_t* s) {
    ENTER(d);
    if (s->version != 1) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    s->isSupportedDevice = (unsigned)g->gpm;
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlGpmSampleAlloc(nvmlGpmSample_t* s) {
    count_call(__func__);
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    *s = calloc(1, sizeof **s);
    (*s)->magic = GPM_MAGIC;
    (*s)->gpu = -1;
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlGpmSampleFree(nvmlGpmSample_t s) {
    count_call(__func__);
    if (!s || s->magic != GPM_MAGIC) return NVML_ERROR_INVALID_ARGUMENT;
    s->magic = 0;
    free(s);
    return NVML_SUCCESS;
}

static nvmlReturn_t gpm_sample(const char* fn, nvmlDevice_t d, int gi, nvmlGpmSample_t s) {
    struct gpu* g = NULL;
    nvmlReturn_t rc = enter(fn, d, &g);
    if (rc) return rc;
    if (!g->gpm) return NVML_ERROR_NOT_SUPPORTED;
    if (!s || s->magic != GPM_MAGIC) return NVML_ERROR_INVALID_ARGUMENT;
    if (gi >= 0) {
        int found = 0;
        for (int i = 0; i < g->mig_count; ++i) found |= g->mig[i].gi == (unsigned)gi;
        if (!found) return NVML_ERROR_NOT_FOUND;
    }
    s->gpu = d->index;
    s->gi = gi;
    s->tick = tick_now();
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlGpmSampleGet(nvmlDevice_t d, nvmlGpmSample_t s) {
    return gpm_sample(__func__, d, -1, s);
}

API nvmlReturn_t nvmlGpmMigSampleGet(nvmlDevice_t d, unsigned gi, nvmlGpmSample_t s) {
    return gpm_sample(__func__, d, (int)gi, s);
}

/* A GPU instance sees the device's activity scaled by its share of the SMs
 * (one test load running in the first instance would look different; this
 * keeps the numbers distinct per instance without more scripting). */
static double instance_share(const struct gpu* g, int gi) {
    if (gi < 0) return 1.0;
    for (int i = 0; i < g->mig_count; ++i)
        if (g->mig[i].gi == (unsigned)gi) return 1.0 / (double)(i + 1);
    return 0.0;
}

API nvmlReturn_t nvmlGpmMetricsGet(nvmlGpmMetricsGet_t* m) {
    count_call(__func__);
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!m || m->version != 1) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    nvmlGpmSample_t a = m->sample1, b = m->sample2;
    if (!a || !b || a->magic != GPM_MAGIC || b->magic != GPM_MAGIC || a->gpu < 0 || b->gpu < 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (a->gpu != b->gpu || a->gi != b->gi) return NVML_ERROR_INVALID_ARGUMENT;
    const struct gpu* g = &gpus[a->gpu];
    if (g->lost) return NVML_ERROR_GPU_IS_LOST;
    /* Counters only advance at a refresh: samples in one period read zero. */
    int advanced = b->tick != a->tick;
    long tick = b->tick > a->tick ? b->tick : a->tick;
    double share = instance_share(g, a->gi);
    for (unsigned i = 0; i < m->numMetrics; ++i) {
        nvmlGpmMetric_t* x = &m->metrics[i];
        if ((int)x->metricId == gpm_untouched) continue; /* neither its value nor its nvmlReturn written */
        int key = -1;
        double scale = 100.0 * share; /* ratios are percent */
        switch (x->metricId) {
        case 1: key = K_GR; break;
        case 2: key = K_SM_ACTIVE; break;
        case 3: key = K_SM_OCC; break;
        case 5: key = K_TENSOR; break;
        case 10: key = K_DRAM; break;
        case 20: key = K_PCIE_TX; scale = 1.0; break;
        case 21: key = K_PCIE_RX; scale = 1.0; break;
        case 60: key = K_NVL_RX; scale = 1.0; break;
        case 61: key = K_NVL_TX; scale = 1.0; break;
        default: break;
        }
        if (key < 0) { x->nvmlReturn = NVML_ERROR_NOT_SUPPORTED; x->value = 0; continue; }
        x->nvmlReturn = NVML_SUCCESS;
        x->value = advanced ? value_at(g, key, tick) * scale : 0.0;
    }
    return NVML_SUCCESS;
}
#endif /* FAKE_NO_GPM */
