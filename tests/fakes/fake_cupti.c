/* A fake libcupti for the PM-sampling source: the functions cuagent calls,
 * with the CUPTI 12.9 params layouts, driven by a clock instead of a GPU.
 *
 * Every call checks structSize (the 12.9 header's size) and pPriv == NULL and
 * answers CUPTI_ERROR_INVALID_PARAMETER otherwise, counting it in
 * fake_cupti_bad_structs(). Every call is logged by name (fake_cupti_log).
 * Tests steer it at run time from the same process (ctypes on this file):
 *   fake_cupti_fail("cuptiPmSamplingEnable", 35, n)  next n calls answer 35 (n < 0: until cleared, 0: clear)
 *   fake_cupti_set_stop_reason(r)     the stop reason DecodeData gives when the image is not full
 *   fake_cupti_set_overflow(1)        DecodeData reports a hardware-buffer overflow
 *   fake_cupti_set_active(avg, max, min)   fraction of cycles active per sample
 *   fake_cupti_set_phase(p)           samples start at Unix times = p (mod the interval)
 *   fake_cupti_first_start_unix(i)    Unix time of device i's first sample since Start
 *   fake_cupti_nvperf_host(buf, n)    the libnvperf_host.so it loaded (see below)
 * Samples: one per sampling interval of CLOCK_MONOTONIC since Start, with
 * GPU timestamps = monotonic + 1e12 ns (a clock the source must map back).
 * With FAKE_CUPTI_LOAD_NVPERF_HOST set, cuptiProfilerHostInitialize loads
 * libnvperf_host.so through the loader's search, as the real libcupti does.
 */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define API __attribute__((visibility("default")))
#define SIZE(t, f) (offsetof(t, f) + sizeof(((t*)0)->f))

enum { OK = 0, INVALID_PARAMETER = 1, INVALID_DEVICE = 2 };
#define GPU_OFFSET 1000000000000ull
#define DEVICES 8
#define MAGIC 0x43555054u

typedef struct { size_t structSize; void* pPriv; } Init;
typedef struct { size_t structSize; void* pPriv; size_t deviceIndex; const char* pChipName; } ChipName;
typedef struct { size_t structSize; void* pPriv; int profilerType; const char* pChipName; const uint8_t* avail; void* host; } HostInit;
typedef struct { size_t structSize; void* pPriv; void* host; } HostDeinit;
typedef struct { size_t structSize; void* pPriv; void* host; const char** names; size_t n; } AddMetrics;
typedef struct { size_t structSize; void* pPriv; void* host; size_t size; } ImageSize;
typedef struct { size_t structSize; void* pPriv; void* host; size_t size; uint8_t* image; } Image;
typedef struct { size_t structSize; void* pPriv; size_t size; uint8_t* image; size_t passes; } Passes;
typedef struct { size_t structSize; void* pPriv; void* host; const uint8_t* data; size_t size; size_t range;
                 const char** names; size_t n; double* values; } Evaluate;
typedef struct { size_t structSize; void* pPriv; size_t deviceIndex; size_t size; uint8_t* image; } Avail;
typedef struct { size_t structSize; void* pPriv; size_t deviceIndex; void* object; } Enable;
typedef struct { size_t structSize; void* pPriv; void* object; } Object;
typedef struct { size_t structSize; void* pPriv; void* object; size_t configSize; const uint8_t* config;
                 size_t hwBuffer; uint64_t interval; int trigger; int append; } SetConfig;
typedef struct { size_t structSize; void* pPriv; void* object; const char** names; size_t n; uint32_t maxSamples;
                 size_t size; } DataSize;
typedef struct { size_t structSize; void* pPriv; void* object; size_t size; uint8_t* data; } DataInit;
typedef struct { size_t structSize; void* pPriv; void* object; uint8_t* data; size_t size; int reason;
                 uint8_t overflow; } Decode;
typedef struct { size_t structSize; void* pPriv; const uint8_t* data; size_t size; size_t total; size_t populated;
                 size_t completed; } DataInfo;
typedef struct { size_t structSize; void* pPriv; void* object; const uint8_t* data; size_t size; size_t index;
                 uint64_t start; uint64_t end; } SampleInfo;

/* The counter data image: a header, then start/end per sample. */
typedef struct { uint32_t magic; uint32_t capacity; uint32_t completed; uint32_t pad; } DataHeader;

typedef struct {
    int enabled, started;
    uint64_t interval, next_start;  /* GPU ns */
    uint32_t max_samples;
} Device;

/* Kept across Disable: what a test asks after the run. */
static uint64_t first_start[DEVICES];
static int64_t unix_minus_gpu[DEVICES];
static int phase_set;
static uint64_t phase_ns;
static char nvperf_host_path[4096];

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static Device devices[DEVICES];
static int host_objects;  /* live */
static int init_count, deinit_count, bad_structs;
static char log_buf[1 << 16];
static size_t log_len;
static struct { char name[64]; int result; int count; } fails[16];
static int stop_reason = 2; /* END_OF_RECORDS */
static int overflow_flag;
static double active_avg = 0.5, active_max = 0.9, active_min = 0.1;
static const double clock_hz = 1.5e9;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
static int64_t unix_minus_monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec - (int64_t)now_ns();
}

/* Logs the call, checks the struct, applies a scripted failure. */
static int enter(const char* name, const void* params, size_t size) {
    const size_t* p = (const size_t*)params;
    int result = OK;
    pthread_mutex_lock(&mu);
    size_t n = strlen(name);
    if (log_len + n + 2 < sizeof log_buf) {
        memcpy(log_buf + log_len, name, n);
        log_len += n;
        log_buf[log_len++] = '\n';
        log_buf[log_len] = 0;
    }
    if (p == NULL || p[0] != size || ((void* const*)params)[1] != NULL) {
        ++bad_structs;
        result = INVALID_PARAMETER;
    }
    for (int i = 0; result == OK && i < 16; ++i)
        if (fails[i].count != 0 && strcmp(fails[i].name, name) == 0) {
            result = fails[i].result;
            if (fails[i].count > 0) --fails[i].count;
        }
    pthread_mutex_unlock(&mu);
    return result;
}
#define ENTER(name, type, last) \
    do { int r_ = enter(name, p, SIZE(type, last)); if (r_ != OK) return r_; } while (0)

static Device* device_of(void* object) {
    Device* d = (Device*)object;
    return (d >= devices && d < devices + DEVICES && d->enabled) ? d : NULL;
}

API int cuptiProfilerInitialize(Init* p) { ENTER("cuptiProfilerInitialize", Init, pPriv); ++init_count; return OK; }
API int cuptiProfilerDeInitialize(Init* p) { ENTER("cuptiProfilerDeInitialize", Init, pPriv); ++deinit_count; return OK; }
API int cuptiDeviceGetChipName(ChipName* p) {
    ENTER("cuptiDeviceGetChipName", ChipName, pChipName);
    if (p->deviceIndex >= DEVICES) return INVALID_DEVICE;
    p->pChipName = "GH100";
    return OK;
}
API int cuptiGetResultString(int r, const char** s) {
    switch (r) {
        case 2: *s = "CUPTI_ERROR_INVALID_DEVICE"; return OK;
        case 15: *s = "CUPTI_ERROR_NOT_INITIALIZED"; return OK;
        case 26: *s = "CUPTI_ERROR_HARDWARE_BUSY"; return OK;
        case 35: *s = "CUPTI_ERROR_INSUFFICIENT_PRIVILEGES"; return OK;
        default: *s = "CUPTI_ERROR_UNKNOWN"; return OK;
    }
}
API int cuptiProfilerHostInitialize(HostInit* p) {
    ENTER("cuptiProfilerHostInitialize", HostInit, host);
    if (p->pChipName == NULL || strcmp(p->pChipName, "GH100") != 0) return INVALID_PARAMETER;
    pthread_mutex_lock(&mu);
    if (getenv("FAKE_CUPTI_LOAD_NVPERF_HOST") && nvperf_host_path[0] == 0) {
        void* h = dlopen("libnvperf_host.so", RTLD_NOW | RTLD_LOCAL);
        Dl_info info;
        void* sym = h ? dlsym(h, "fake_nvperf_host_tag") : NULL;
        if (sym && dladdr(sym, &info) && info.dli_fname)
            snprintf(nvperf_host_path, sizeof nvperf_host_path, "%s", info.dli_fname);
        else
            snprintf(nvperf_host_path, sizeof nvperf_host_path, "%s", h ? "(not a fake libnvperf_host)" : "(none)");
    }
    ++host_objects;
    pthread_mutex_unlock(&mu);
    p->host = malloc(16);
    return OK;
}
API int cuptiProfilerHostDeinitialize(HostDeinit* p) {
    ENTER("cuptiProfilerHostDeinitialize", HostDeinit, host);
    pthread_mutex_lock(&mu);
    --host_objects;
    pthread_mutex_unlock(&mu);
    free(p->host);
    return OK;
}
API int cuptiProfilerHostConfigAddMetrics(AddMetrics* p) {
    ENTER("cuptiProfilerHostConfigAddMetrics", AddMetrics, n);
    return p->n > 0 && p->names ? OK : INVALID_PARAMETER;
}
API int cuptiProfilerHostGetConfigImageSize(ImageSize* p) { ENTER("cuptiProfilerHostGetConfigImageSize", ImageSize, size); p->size = 64; return OK; }
API int cuptiProfilerHostGetConfigImage(Image* p) {
    ENTER("cuptiProfilerHostGetConfigImage", Image, image);
    memset(p->image, 0xC0, p->size);
    return OK;
}
API int cuptiProfilerHostGetNumOfPasses(Passes* p) { ENTER("cuptiProfilerHostGetNumOfPasses", Passes, passes); p->passes = 1; return OK; }
API int cuptiPmSamplingGetCounterAvailability(Avail* p) {
    ENTER("cuptiPmSamplingGetCounterAvailability", Avail, image);
    if (p->deviceIndex >= DEVICES) return INVALID_DEVICE;
    if (p->image == NULL) p->size = 32; else memset(p->image, 1, p->size);
    return OK;
}
API int cuptiPmSamplingEnable(Enable* p) {
    ENTER("cuptiPmSamplingEnable", Enable, object);
    if (p->deviceIndex >= DEVICES || devices[p->deviceIndex].enabled) return INVALID_DEVICE;
    devices[p->deviceIndex].enabled = 1;
    p->object = &devices[p->deviceIndex];
    return OK;
}
API int cuptiPmSamplingDisable(Object* p) {
    ENTER("cuptiPmSamplingDisable", Object, object);
    Device* d = device_of(p->object);
    if (!d) return INVALID_PARAMETER;
    memset(d, 0, sizeof *d);
    return OK;
}
API int cuptiPmSamplingSetConfig(SetConfig* p) {
    ENTER("cuptiPmSamplingSetConfig", SetConfig, append);
    Device* d = device_of(p->object);
    if (!d || p->interval == 0 || p->config == NULL || p->config[0] != 0xC0 || p->trigger != 1) return INVALID_PARAMETER;
    d->interval = p->interval;
    return OK;
}
API int cuptiPmSamplingGetCounterDataSize(DataSize* p) {
    ENTER("cuptiPmSamplingGetCounterDataSize", DataSize, size);
    Device* d = device_of(p->object);
    if (!d || p->maxSamples == 0) return INVALID_PARAMETER;
    d->max_samples = p->maxSamples;
    p->size = sizeof(DataHeader) + (size_t)p->maxSamples * 16;
    return OK;
}
API int cuptiPmSamplingCounterDataImageInitialize(DataInit* p) {
    ENTER("cuptiPmSamplingCounterDataImageInitialize", DataInit, data);
    Device* d = device_of(p->object);
    if (!d || p->size < sizeof(DataHeader)) return INVALID_PARAMETER;
    DataHeader* h = (DataHeader*)p->data;
    h->magic = MAGIC;
    h->capacity = (uint32_t)((p->size - sizeof(DataHeader)) / 16);
    h->completed = 0;
    return OK;
}
API int cuptiPmSamplingStart(Object* p) {
    ENTER("cuptiPmSamplingStart", Object, object);
    Device* d = device_of(p->object);
    if (!d || d->interval == 0) return INVALID_PARAMETER;
    d->started = 1;
    const uint64_t now = now_ns();
    const int64_t to_unix = unix_minus_monotonic();
    d->next_start = now + GPU_OFFSET;
    if (phase_set) {
        /* The first start at a Unix time = phase (mod interval), after now. */
        const uint64_t unix_now = (uint64_t)((int64_t)now + to_unix);
        uint64_t start = unix_now - unix_now % d->interval + phase_ns % d->interval;
        if (start <= unix_now) start += d->interval;
        d->next_start = (uint64_t)((int64_t)start - to_unix) + GPU_OFFSET;
    }
    const size_t i = (size_t)(d - devices);
    first_start[i] = d->next_start;
    unix_minus_gpu[i] = to_unix - (int64_t)GPU_OFFSET;
    return OK;
}
API int cuptiPmSamplingStop(Object* p) {
    ENTER("cuptiPmSamplingStop", Object, object);
    Device* d = device_of(p->object);
    if (!d || !d->started) return INVALID_PARAMETER;
    d->started = 0;
    return OK;
}
API int cuptiPmSamplingDecodeData(Decode* p) {
    ENTER("cuptiPmSamplingDecodeData", Decode, overflow);
    Device* d = device_of(p->object);
    DataHeader* h = (DataHeader*)p->data;
    if (!d || h == NULL || h->magic != MAGIC) return INVALID_PARAMETER;
    uint64_t* slots = (uint64_t*)(h + 1);
    const uint64_t gpu_now = now_ns() + GPU_OFFSET;
    while (d->next_start + d->interval <= gpu_now && h->completed < h->capacity) {
        slots[2 * h->completed] = d->next_start;
        slots[2 * h->completed + 1] = d->next_start + d->interval;
        d->next_start += d->interval;
        ++h->completed;
    }
    p->reason = h->completed == h->capacity ? 1 : stop_reason;
    p->overflow = (uint8_t)overflow_flag;
    return OK;
}
API int cuptiPmSamplingGetCounterDataInfo(DataInfo* p) {
    ENTER("cuptiPmSamplingGetCounterDataInfo", DataInfo, completed);
    const DataHeader* h = (const DataHeader*)p->data;
    if (h == NULL || h->magic != MAGIC) return INVALID_PARAMETER;
    p->total = h->capacity;
    p->populated = p->completed = h->completed;
    return OK;
}
API int cuptiPmSamplingCounterDataGetSampleInfo(SampleInfo* p) {
    ENTER("cuptiPmSamplingCounterDataGetSampleInfo", SampleInfo, end);
    const DataHeader* h = (const DataHeader*)p->data;
    if (h == NULL || h->magic != MAGIC || p->index >= h->completed) return INVALID_PARAMETER;
    const uint64_t* slots = (const uint64_t*)(h + 1);
    p->start = slots[2 * p->index];
    p->end = slots[2 * p->index + 1];
    return OK;
}
API int cuptiProfilerHostEvaluateToGpuValues(Evaluate* p) {
    ENTER("cuptiProfilerHostEvaluateToGpuValues", Evaluate, values);
    const DataHeader* h = (const DataHeader*)p->data;
    if (h == NULL || h->magic != MAGIC || p->range >= h->completed || p->host == NULL) return INVALID_PARAMETER;
    const uint64_t* slots = (const uint64_t*)(h + 1);
    const double seconds = (double)(slots[2 * p->range + 1] - slots[2 * p->range]) * 1e-9;
    const double cycles = clock_hz * seconds;
    /* The kind of each metric, by name, once per names array: the fake's own
     * cost per sample stays small next to what it stands in for. */
    static __thread const char* const* kinds_of;
    static __thread size_t kinds_n;
    static __thread char kinds[64];
    if (p->n > sizeof kinds) return INVALID_PARAMETER;
    if (kinds_of != p->names || kinds_n != p->n) {
        for (size_t i = 0; i < p->n; ++i) {
            const char* m = p->names[i];
            kinds[i] = strstr(m, "sm__cycles_active.avg") ? 'a' : strstr(m, "sm__cycles_active.max") ? 'x'
                     : strstr(m, "sm__cycles_active.min") ? 'n' : strstr(m, "per_second") ? 'h'
                     : strstr(m, "pct_of_peak") ? 'p' : strstr(m, "bytes.sum") ? 'b' : 0;
            if (!kinds[i]) return INVALID_PARAMETER;
        }
        kinds_of = p->names;
        kinds_n = p->n;
    }
    for (size_t i = 0; i < p->n; ++i) {
        double v = 0;
        switch (kinds[i]) {
            case 'a': v = active_avg * cycles; break;
            case 'x': v = active_max * cycles; break;
            case 'n': v = active_min * cycles; break;
            case 'h': v = clock_hz; break;
            case 'p': v = 25.0; break;
            default: v = 1e9 * seconds; break;  /* bytes.sum: 1 GB/s */
        }
        p->values[i] = v;
    }
    return OK;
}

/* ---- control, for the tests ---- */
API void fake_cupti_fail(const char* name, int result, int count) {
    pthread_mutex_lock(&mu);
    int slot = -1;
    for (int i = 0; i < 16; ++i)
        if (strcmp(fails[i].name, name) == 0 || (slot < 0 && fails[i].name[0] == 0)) {
            slot = i;
            if (strcmp(fails[i].name, name) == 0) break;
        }
    if (slot >= 0) {
        snprintf(fails[slot].name, sizeof fails[slot].name, "%s", name);
        fails[slot].result = result;
        fails[slot].count = count;
    }
    pthread_mutex_unlock(&mu);
}
API void fake_cupti_set_stop_reason(int r) { stop_reason = r; }
API void fake_cupti_set_overflow(int o) { overflow_flag = o; }
API void fake_cupti_set_active(double avg, double max, double min) { active_avg = avg; active_max = max; active_min = min; }
API void fake_cupti_set_phase(uint64_t p) { phase_ns = p; phase_set = 1; }
API int64_t fake_cupti_first_start_unix(int i) {
    return i >= 0 && i < DEVICES && first_start[i] ? (int64_t)first_start[i] + unix_minus_gpu[i] : -1;
}
API size_t fake_cupti_nvperf_host(char* out, size_t size) {
    pthread_mutex_lock(&mu);
    size_t n = strlen(nvperf_host_path);
    if (out && size) snprintf(out, size, "%s", nvperf_host_path);
    pthread_mutex_unlock(&mu);
    return n;
}
/* Copies the call log (one name a line) into out; returns its full length. */
API size_t fake_cupti_log(char* out, size_t size) {
    pthread_mutex_lock(&mu);
    size_t n = log_len;
    if (out && size) {
        size_t m = n < size - 1 ? n : size - 1;
        memcpy(out, log_buf, m);
        out[m] = 0;
    }
    pthread_mutex_unlock(&mu);
    return n;
}
API void fake_cupti_clear_log(void) { pthread_mutex_lock(&mu); log_len = 0; log_buf[0] = 0; pthread_mutex_unlock(&mu); }
API int fake_cupti_bad_structs(void) { return bad_structs; }
API int fake_cupti_init_count(void) { return init_count; }
API int fake_cupti_deinit_count(void) { return deinit_count; }
API int fake_cupti_host_objects(void) { return host_objects; }
API int fake_cupti_enabled(void) { int n = 0; for (int i = 0; i < DEVICES; ++i) n += devices[i].enabled; return n; }
