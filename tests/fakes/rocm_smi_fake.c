/*
 * A fake librocm_smi64.so for the rocm_smi driver's tests and benchmark.
 *
 * It exports the rsmi_* functions the driver calls, with the argument types,
 * enum values and status codes of rocm_smi.h, and returns values scripted by
 * the test through the fake_* control functions (called over ctypes: dlopen of
 * the same path returns the same handle, so the driver and the test share this
 * state). Nothing here is copied from ROCm; the layouts below are written from
 * the documented header facts:
 *
 *   rsmi_gpu_metrics_t is the library's *public* table, the same as AMD
 *   SMI's: fake_gpu_metrics.h writes it (layouts by library release, firmware
 *   cadence), for this fake and amdsmi_fake.c. The fake emulates one library
 *   release at a time (fake_set_library_layout). A 96-byte one is a ROCm 5.x
 *   release (Debian's 5.2.3, measured), which also lays rsmi_frequencies_t out
 *   without has_deep_sleep; the fake then does too.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fake_gpu_metrics.h"

/* rsmi_status_t */
enum {
    RSMI_STATUS_SUCCESS = 0,
    RSMI_STATUS_INVALID_ARGS = 1,
    RSMI_STATUS_NOT_SUPPORTED = 2,
    RSMI_STATUS_FILE_ERROR = 3,
    RSMI_STATUS_PERMISSION = 4,
    RSMI_STATUS_INIT_ERROR = 8,
    RSMI_STATUS_NOT_FOUND = 10,
    RSMI_STATUS_INSUFFICIENT_SIZE = 11,
    RSMI_STATUS_BUSY = 16,
};
/* rsmi_clk_type_t */
enum { RSMI_CLK_TYPE_SYS = 0, RSMI_CLK_TYPE_MEM = 4 };
/* rsmi_memory_type_t */
enum { RSMI_MEM_TYPE_VRAM = 0 };
/* rsmi_temperature_type_t / rsmi_temperature_metric_t */
enum { RSMI_TEMP_TYPE_EDGE = 0, RSMI_TEMP_TYPE_JUNCTION = 1, RSMI_TEMP_TYPE_MEMORY = 2 };
enum { RSMI_TEMP_CURRENT = 0 };

typedef struct {
    uint32_t major, minor, patch;
    const char* build;
} rsmi_version_t;

/* rsmi_frequencies_t, current header: has_deep_sleep first. */
typedef struct {
    _Bool has_deep_sleep;
    uint32_t num_supported;
    uint32_t current;
    uint64_t frequency[33];
} rsmi_frequencies_t;

/* rsmi_frequencies_t of ROCm 5.x releases (emulated with the 96-byte layout). */
typedef struct {
    uint32_t num_supported;
    uint32_t current;
    uint64_t frequency[32];
} rsmi_frequencies_v5_t;

/* ---- scripted state ----------------------------------------------------- */
#define MAX_DEVICES 32
#define MAX_UNSUPPORTED 16

struct fake_device {
    char name[96];
    uint64_t unique_id;
    uint64_t bdfid;
    int32_t numa;
    uint64_t vram_total;
    uint64_t vram_used;
    double power_w;
    double temp_c;
    double mem_temp_c;
    double sclk_mhz;
    double mclk_mhz;
    double busy_pct;  /* <0: mean of the XCD busy values */
    char compute_partition[16];
    char memory_partition[16];
    struct fake_table t;        /* gpu_metrics; t.revision 0: the call is not supported */
    /* failures */
    int lost_status;            /* 0: present; else every call returns this */
    char unsupported[MAX_UNSUPPORTED][48];
    unsigned n_unsupported;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fake_device g_dev[MAX_DEVICES];
static unsigned g_count;
static unsigned g_layout = 4544;
static int g_init_status = RSMI_STATUS_SUCCESS;
static int g_initialized;
static uint64_t g_calls;

static int is_unsupported(const struct fake_device* d, const char* fn) {
    for (unsigned i = 0; i < d->n_unsupported; ++i)
        if (strcmp(d->unsupported[i], fn) == 0) return 1;
    return 0;
}

/* Common prologue of every device query: count, validate, fail as scripted. */
#define DEVICE_CALL(fn, dv_ind, out)                                       \
    struct fake_device* d;                                                 \
    pthread_mutex_lock(&g_lock);                                           \
    ++g_calls;                                                             \
    if (!g_initialized) { pthread_mutex_unlock(&g_lock); return RSMI_STATUS_INIT_ERROR; } \
    if ((dv_ind) >= g_count) { pthread_mutex_unlock(&g_lock); return RSMI_STATUS_INVALID_ARGS; } \
    d = &g_dev[dv_ind];                                                    \
    if (d->lost_status) { int s_ = d->lost_status; pthread_mutex_unlock(&g_lock); return s_; } \
    if (is_unsupported(d, fn)) { pthread_mutex_unlock(&g_lock); return RSMI_STATUS_NOT_SUPPORTED; } \
    if ((out) == NULL) { pthread_mutex_unlock(&g_lock); return RSMI_STATUS_INVALID_ARGS; }

#define DONE(status) do { pthread_mutex_unlock(&g_lock); return (status); } while (0)

/* ---- control API (ctypes) ----------------------------------------------- */
void fake_reset(void) {
    pthread_mutex_lock(&g_lock);
    memset(g_dev, 0, sizeof(g_dev));
    g_count = 0;
    g_layout = 4544;
    g_init_status = RSMI_STATUS_SUCCESS;
    g_calls = 0;
    pthread_mutex_unlock(&g_lock);
}

int fake_add_device(const char* name, uint64_t unique_id, uint64_t bdfid, int32_t numa,
                    uint64_t vram_total) {
    pthread_mutex_lock(&g_lock);
    if (g_count >= MAX_DEVICES) { pthread_mutex_unlock(&g_lock); return -1; }
    struct fake_device* d = &g_dev[g_count];
    memset(d, 0, sizeof(*d));
    snprintf(d->name, sizeof(d->name), "%s", name);
    d->unique_id = unique_id;
    d->bdfid = bdfid;
    d->numa = numa;
    d->vram_total = vram_total;
    d->vram_used = vram_total / 100;
    d->power_w = 140.0;
    d->temp_c = 38.0;
    d->mem_temp_c = 35.0;
    d->sclk_mhz = 132.0;
    d->mclk_mhz = 900.0;
    d->busy_pct = -1.0;
    snprintf(d->compute_partition, sizeof(d->compute_partition), "SPX");
    snprintf(d->memory_partition, sizeof(d->memory_partition), "NPS1");
    d->t.fw_epoch_ns = fake_monotonic_ns();
    d->t.umc_pct = -1.0;  /* ROCm SMI releases never showed it here */
    int index = (int)g_count++;
    pthread_mutex_unlock(&g_lock);
    return index;
}

/* 96, 424, 1832, 2368, 4544: the known releases. Any size above 4544 and below
 * 8192 emulates a future release: the 1.8 struct followed by new all-ones
 * fields, knowing tables up to 1.9. */
int fake_set_library_layout(unsigned size) {
    if (!fake_layout_valid(size)) return -1;
    pthread_mutex_lock(&g_lock);
    g_layout = size;
    pthread_mutex_unlock(&g_lock);
    return 0;
}

void fake_set_init_status(int status) {
    pthread_mutex_lock(&g_lock);
    g_init_status = status;
    pthread_mutex_unlock(&g_lock);
}

/* revision: content revision of the table (3..8), 0 = call not supported. */
int fake_set_metrics(unsigned dev, unsigned revision, unsigned num_partition,
                     unsigned xcc_per_partition, uint64_t fw_period_ns) {
    if (dev >= g_count || num_partition * xcc_per_partition > FAKE_MAX_XCD) return -1;
    pthread_mutex_lock(&g_lock);
    fake_table_start(&g_dev[dev].t, revision, num_partition, xcc_per_partition, fw_period_ns);
    g_dev[dev].t.umc_pct = -1.0;  /* ROCm SMI releases never showed it here */
    pthread_mutex_unlock(&g_lock);
    return 0;
}

int fake_set_xcd_busy(unsigned dev, unsigned xcd, double percent) {
    if (dev >= g_count || xcd >= FAKE_MAX_XCD) return -1;
    pthread_mutex_lock(&g_lock);
    fake_table_set_xcd_busy(&g_dev[dev].t, xcd, percent);
    pthread_mutex_unlock(&g_lock);
    return 0;
}

/* Advance a manual-cadence table by n firmware refreshes. */
int fake_tick(unsigned dev, uint64_t n) {
    if (dev >= g_count) return -1;
    pthread_mutex_lock(&g_lock);
    fake_table_tick(&g_dev[dev].t, n);
    pthread_mutex_unlock(&g_lock);
    return 0;
}

int fake_set_value(unsigned dev, const char* key, double value) {
    if (dev >= g_count) return -1;
    pthread_mutex_lock(&g_lock);
    struct fake_device* d = &g_dev[dev];
    int rc = 0;
    if (strcmp(key, "vram_used") == 0) d->vram_used = (uint64_t)value;
    else if (strcmp(key, "vram_total") == 0) d->vram_total = (uint64_t)value;
    else if (strcmp(key, "power_w") == 0) d->power_w = value;
    else if (strcmp(key, "temp_c") == 0) d->temp_c = value;
    else if (strcmp(key, "mem_temp_c") == 0) d->mem_temp_c = value;
    else if (strcmp(key, "sclk_mhz") == 0) d->sclk_mhz = value;
    else if (strcmp(key, "mclk_mhz") == 0) d->mclk_mhz = value;
    else if (strcmp(key, "busy_pct") == 0) d->busy_pct = value;
    else if (strcmp(key, "ppt_violation") == 0) { fake_table_catch_up(&d->t); d->t.ppt_violation = value; }
    else if (strcmp(key, "thermal_violation") == 0) { fake_table_catch_up(&d->t); d->t.thermal_violation = value; }
    else if (strcmp(key, "throttle_mask") == 0) d->t.throttle_mask = (uint64_t)value;
    else rc = -2;
    pthread_mutex_unlock(&g_lock);
    return rc;
}

int fake_set_partition_modes(unsigned dev, const char* compute, const char* memory) {
    if (dev >= g_count) return -1;
    pthread_mutex_lock(&g_lock);
    snprintf(g_dev[dev].compute_partition, sizeof(g_dev[dev].compute_partition), "%s", compute);
    snprintf(g_dev[dev].memory_partition, sizeof(g_dev[dev].memory_partition), "%s", memory);
    pthread_mutex_unlock(&g_lock);
    return 0;
}

/* Make one rsmi function answer RSMI_STATUS_NOT_SUPPORTED for this device. */
int fake_set_unsupported(unsigned dev, const char* function) {
    if (dev >= g_count) return -1;
    pthread_mutex_lock(&g_lock);
    struct fake_device* d = &g_dev[dev];
    int rc = -1;
    if (d->n_unsupported < MAX_UNSUPPORTED) {
        snprintf(d->unsupported[d->n_unsupported++], sizeof(d->unsupported[0]), "%s", function);
        rc = 0;
    }
    pthread_mutex_unlock(&g_lock);
    return rc;
}

/* status 0: the device is back; otherwise every call on it returns status. */
int fake_set_lost(unsigned dev, int status) {
    if (dev >= g_count) return -1;
    pthread_mutex_lock(&g_lock);
    g_dev[dev].lost_status = status;
    pthread_mutex_unlock(&g_lock);
    return 0;
}

uint64_t fake_call_count(void) {
    pthread_mutex_lock(&g_lock);
    uint64_t n = g_calls;
    pthread_mutex_unlock(&g_lock);
    return n;
}

int fake_initialized(void) { return g_initialized; }

/* ---- rocm_smi ABI -------------------------------------------------------- */
int rsmi_init(uint64_t init_flags) {
    (void)init_flags;
    pthread_mutex_lock(&g_lock);
    int status = g_init_status;
    if (status == RSMI_STATUS_SUCCESS) ++g_initialized;  /* reference counted, as documented */
    pthread_mutex_unlock(&g_lock);
    return status;
}

int rsmi_shut_down(void) {
    pthread_mutex_lock(&g_lock);
    if (g_initialized > 0) --g_initialized;
    pthread_mutex_unlock(&g_lock);
    return RSMI_STATUS_SUCCESS;
}

int rsmi_version_get(rsmi_version_t* version) {
    if (version == NULL) return RSMI_STATUS_INVALID_ARGS;
    version->major = 7;
    version->minor = 5;
    version->patch = 0;
    version->build = "fake";
    return RSMI_STATUS_SUCCESS;
}

int rsmi_status_string(int status, const char** text) {
    if (text == NULL) return RSMI_STATUS_INVALID_ARGS;
    switch (status) {
    case RSMI_STATUS_SUCCESS: *text = "RSMI_STATUS_SUCCESS: The function has been executed successfully."; break;
    case RSMI_STATUS_INVALID_ARGS: *text = "RSMI_STATUS_INVALID_ARGS: The provided arguments do not meet the preconditions required for input."; break;
    case RSMI_STATUS_NOT_SUPPORTED: *text = "RSMI_STATUS_NOT_SUPPORTED: The requested information or action is not available for the given input, on the given system"; break;
    case RSMI_STATUS_FILE_ERROR: *text = "RSMI_STATUS_FILE_ERROR: Problem accessing a file."; break;
    case RSMI_STATUS_INIT_ERROR: *text = "RSMI_STATUS_INIT_ERROR: An error occurred during initialization."; break;
    case RSMI_STATUS_BUSY: *text = "RSMI_STATUS_BUSY: A resource or mutex could not be acquired."; break;
    default: *text = "An unknown error occurred"; break;
    }
    return RSMI_STATUS_SUCCESS;
}

int rsmi_num_monitor_devices(uint32_t* num_devices) {
    if (num_devices == NULL) return RSMI_STATUS_INVALID_ARGS;
    pthread_mutex_lock(&g_lock);
    int initialized = g_initialized;
    *num_devices = g_count;
    pthread_mutex_unlock(&g_lock);
    return initialized ? RSMI_STATUS_SUCCESS : RSMI_STATUS_INIT_ERROR;
}

static int copy_string(char* out, size_t len, const char* value) {
    size_t n = strlen(value);
    if (len == 0) return RSMI_STATUS_INSUFFICIENT_SIZE;
    if (n >= len) {
        memcpy(out, value, len - 1);
        out[len - 1] = 0;
        return RSMI_STATUS_INSUFFICIENT_SIZE;
    }
    memcpy(out, value, n + 1);
    return RSMI_STATUS_SUCCESS;
}

int rsmi_dev_name_get(uint32_t dv_ind, char* name, size_t len) {
    DEVICE_CALL("rsmi_dev_name_get", dv_ind, name)
    DONE(copy_string(name, len, d->name));
}

int rsmi_dev_market_name_get(uint32_t dv_ind, char* name, uint32_t len) {
    DEVICE_CALL("rsmi_dev_market_name_get", dv_ind, name)
    DONE(copy_string(name, len, d->name));
}

int rsmi_dev_brand_get(uint32_t dv_ind, char* brand, uint32_t len) {
    DEVICE_CALL("rsmi_dev_brand_get", dv_ind, brand)
    DONE(copy_string(brand, len, d->name));
}

int rsmi_dev_unique_id_get(uint32_t dv_ind, uint64_t* id) {
    DEVICE_CALL("rsmi_dev_unique_id_get", dv_ind, id)
    *id = d->unique_id;
    DONE(RSMI_STATUS_SUCCESS);
}

int rsmi_dev_pci_id_get(uint32_t dv_ind, uint64_t* bdfid) {
    DEVICE_CALL("rsmi_dev_pci_id_get", dv_ind, bdfid)
    *bdfid = d->bdfid;
    DONE(RSMI_STATUS_SUCCESS);
}

int rsmi_topo_numa_affinity_get(uint32_t dv_ind, int32_t* numa_node) {
    DEVICE_CALL("rsmi_topo_numa_affinity_get", dv_ind, numa_node)
    *numa_node = d->numa;
    DONE(RSMI_STATUS_SUCCESS);
}

int rsmi_dev_memory_total_get(uint32_t dv_ind, int mem_type, uint64_t* total) {
    DEVICE_CALL("rsmi_dev_memory_total_get", dv_ind, total)
    if (mem_type != RSMI_MEM_TYPE_VRAM) DONE(RSMI_STATUS_NOT_SUPPORTED);
    *total = d->vram_total;
    DONE(RSMI_STATUS_SUCCESS);
}

int rsmi_dev_memory_usage_get(uint32_t dv_ind, int mem_type, uint64_t* used) {
    DEVICE_CALL("rsmi_dev_memory_usage_get", dv_ind, used)
    if (mem_type != RSMI_MEM_TYPE_VRAM) DONE(RSMI_STATUS_NOT_SUPPORTED);
    *used = d->vram_used;
    DONE(RSMI_STATUS_SUCCESS);
}

/* Both power calls answer in microwatts. A build with -DFAKE_OMIT_SOCKET_POWER
 * leaves this symbol out, like rocm_smi releases older than the call. */
#ifndef FAKE_OMIT_SOCKET_POWER
int rsmi_dev_current_socket_power_get(uint32_t dv_ind, uint64_t* socket_power) {
    DEVICE_CALL("rsmi_dev_current_socket_power_get", dv_ind, socket_power)
    *socket_power = (uint64_t)(d->power_w * 1e6);
    DONE(RSMI_STATUS_SUCCESS);
}
#endif

int rsmi_dev_power_ave_get(uint32_t dv_ind, uint32_t sensor_ind, uint64_t* power) {
    DEVICE_CALL("rsmi_dev_power_ave_get", dv_ind, power)
    if (sensor_ind != 0) DONE(RSMI_STATUS_INVALID_ARGS);
    *power = (uint64_t)(d->power_w * 1e6);
    DONE(RSMI_STATUS_SUCCESS);
}

/* Millidegrees Celsius. */
int rsmi_dev_temp_metric_get(uint32_t dv_ind, uint32_t sensor_type, int metric, int64_t* temperature) {
    DEVICE_CALL("rsmi_dev_temp_metric_get", dv_ind, temperature)
    if (metric != RSMI_TEMP_CURRENT) DONE(RSMI_STATUS_NOT_SUPPORTED);
    if (sensor_type == RSMI_TEMP_TYPE_JUNCTION) *temperature = (int64_t)(d->temp_c * 1000.0);
    else if (sensor_type == RSMI_TEMP_TYPE_MEMORY) *temperature = (int64_t)(d->mem_temp_c * 1000.0);
    else DONE(RSMI_STATUS_NOT_SUPPORTED);  /* MI300 has no edge sensor */
    DONE(RSMI_STATUS_SUCCESS);
}

int rsmi_dev_gpu_clk_freq_get(uint32_t dv_ind, int clk_type, rsmi_frequencies_t* f) {
    DEVICE_CALL("rsmi_dev_gpu_clk_freq_get", dv_ind, f)
    double mhz;
    if (clk_type == RSMI_CLK_TYPE_SYS) mhz = d->sclk_mhz;
    else if (clk_type == RSMI_CLK_TYPE_MEM) mhz = d->mclk_mhz;
    else DONE(RSMI_STATUS_NOT_SUPPORTED);
    if (g_layout == 96) {  /* a ROCm 5.x release: no has_deep_sleep */
        rsmi_frequencies_v5_t* old = (rsmi_frequencies_v5_t*)f;
        memset(old, 0, sizeof(*old));
        old->num_supported = 3;
        old->current = 1;
        old->frequency[0] = 500000000ULL;
        old->frequency[1] = (uint64_t)(mhz * 1e6);
        old->frequency[2] = 2100000000ULL;
        DONE(RSMI_STATUS_SUCCESS);
    }
    memset(f, 0, sizeof(*f));
    f->has_deep_sleep = 0;
    f->num_supported = 3;
    f->frequency[0] = 500000000ULL;
    f->frequency[1] = (uint64_t)(mhz * 1e6);
    f->frequency[2] = 2100000000ULL;
    f->current = 1;
    DONE(RSMI_STATUS_SUCCESS);
}

int rsmi_dev_busy_percent_get(uint32_t dv_ind, uint32_t* busy_percent) {
    DEVICE_CALL("rsmi_dev_busy_percent_get", dv_ind, busy_percent)
    double pct = d->busy_pct;
    if (pct < 0) {
        unsigned n = d->t.num_partition * d->t.xcc_per_partition;
        double sum = 0;
        for (unsigned x = 0; x < n; ++x) sum += d->t.xcd_busy[x];
        pct = n ? sum / n : 0.0;
    }
    *busy_percent = (uint32_t)(pct + 0.5);
    DONE(RSMI_STATUS_SUCCESS);
}

int rsmi_dev_compute_partition_get(uint32_t dv_ind, char* compute_partition, uint32_t len) {
    DEVICE_CALL("rsmi_dev_compute_partition_get", dv_ind, compute_partition)
    DONE(copy_string(compute_partition, len, d->compute_partition));
}

int rsmi_dev_memory_partition_get(uint32_t dv_ind, char* memory_partition, uint32_t len) {
    DEVICE_CALL("rsmi_dev_memory_partition_get", dv_ind, memory_partition)
    DONE(copy_string(memory_partition, len, d->memory_partition));
}

int rsmi_dev_gpu_metrics_info_get(uint32_t dv_ind, void* out) {
    DEVICE_CALL("rsmi_dev_gpu_metrics_info_get", dv_ind, out)
    if (d->t.revision == 0 || d->t.revision > fake_layout_max_revision(g_layout))
        DONE(RSMI_STATUS_NOT_SUPPORTED);
    struct fake_sensors sensors = {d->power_w, d->temp_c, d->mem_temp_c, d->sclk_mhz, d->mclk_mhz};
    fake_table_fill(out, g_layout, &d->t, &sensors);
    DONE(RSMI_STATUS_SUCCESS);
}
