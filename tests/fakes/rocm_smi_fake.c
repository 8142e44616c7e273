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
 *   cadence), for this fake and amdsmi_fake.c, and fake_amd_library.h holds
 *   what the two fakes share (lock, library-wide script, scripted failures).
 *   The fake emulates one library release at a time
 *   (fake_set_library_layout). A 96-byte one is a ROCm 5.x release (Debian's
 *   5.2.3, measured), which also lays rsmi_frequencies_t out without
 *   has_deep_sleep; the fake then does too.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

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

#define FAKE_SUCCESS RSMI_STATUS_SUCCESS
#define FAKE_INVALID RSMI_STATUS_INVALID_ARGS
#define FAKE_NOT_SUPPORTED RSMI_STATUS_NOT_SUPPORTED
#define FAKE_NOT_INIT RSMI_STATUS_INIT_ERROR
#define FAKE_INSUFFICIENT_SIZE RSMI_STATUS_INSUFFICIENT_SIZE
#include "fake_amd_library.h"

/* ---- scripted state ----------------------------------------------------- */
#define MAX_DEVICES 32

struct fake_device {  /* one rsmi device: a GPU, or one compute partition of it */
    char name[96];
    uint64_t unique_id;
    uint64_t bdfid;
    int32_t numa;
    uint64_t vram_total;
    uint64_t vram_used;
    double busy_pct;  /* <0: mean of the XCD busy values */
    char compute_partition[16];
    char memory_partition[16];
    struct fake_sensors s;
    struct fake_table t;        /* gpu_metrics; t.revision 0: the call is not supported */
    struct fake_failures fail;
};

static struct fake_device g_dev[MAX_DEVICES];
static unsigned g_count;

static struct fake_device* device_of(uint32_t dv_ind) { return dv_ind < g_count ? &g_dev[dv_ind] : NULL; }

/* Common prologue of every device query (fake_amd_library.h). */
#define DEVICE_CALL(fn, dv_ind, out) \
    struct fake_device* d;           \
    FAKE_QUERY(fn, d, device_of(dv_ind), out)

/* ---- control API (ctypes) ----------------------------------------------- */
void fake_reset(void) {
    pthread_mutex_lock(&g_lock);
    memset(g_dev, 0, sizeof(g_dev));
    g_count = 0;
    fake_library_reset();
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
    fake_sensors_default(&d->s);
    d->busy_pct = -1.0;
    snprintf(d->compute_partition, sizeof(d->compute_partition), "SPX");
    snprintf(d->memory_partition, sizeof(d->memory_partition), "NPS1");
    d->t.fw_epoch_ns = fake_monotonic_ns();
    d->t.umc_pct = -1.0;  /* ROCm SMI releases never showed it here */
    int index = (int)g_count++;
    pthread_mutex_unlock(&g_lock);
    return index;
}

static struct fake_table* table_of(unsigned dev) { return dev < g_count ? &g_dev[dev].t : NULL; }

/* revision: content revision of the table (3..8), 0 = call not supported. */
int fake_set_metrics(unsigned dev, unsigned revision, unsigned num_partition,
                     unsigned xcc_per_partition, uint64_t fw_period_ns) {
    return fake_script_metrics(table_of(dev), revision, num_partition, xcc_per_partition, fw_period_ns);
}

int fake_set_xcd_busy(unsigned dev, unsigned xcd, double percent) {
    return fake_script_xcd_busy(table_of(dev), xcd, percent);
}

int fake_tick(unsigned dev, uint64_t n) { return fake_script_tick(table_of(dev), n); }

int fake_set_value(unsigned dev, const char* key, double value) {
    if (dev >= g_count) return -1;
    pthread_mutex_lock(&g_lock);
    struct fake_device* d = &g_dev[dev];
    int rc = 0;
    if (strcmp(key, "vram_used") == 0) d->vram_used = (uint64_t)value;
    else if (strcmp(key, "vram_total") == 0) d->vram_total = (uint64_t)value;
    else if (strcmp(key, "busy_pct") == 0) d->busy_pct = value;
    else rc = fake_set_gpu_key(&d->s, &d->t, key, value);
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
    return fake_script_unsupported(dev < g_count ? &g_dev[dev].fail : NULL, function);
}

/* status 0: the device is back; otherwise every call on it returns status. */
int fake_set_lost(unsigned dev, int status) {
    return fake_script_lost(dev < g_count ? &g_dev[dev].fail : NULL, status);
}

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

int rsmi_dev_name_get(uint32_t dv_ind, char* name, size_t len) {
    DEVICE_CALL("rsmi_dev_name_get", dv_ind, name)
    DONE(fake_copy_string(name, len, d->name));
}

int rsmi_dev_market_name_get(uint32_t dv_ind, char* name, uint32_t len) {
    DEVICE_CALL("rsmi_dev_market_name_get", dv_ind, name)
    DONE(fake_copy_string(name, len, d->name));
}

int rsmi_dev_brand_get(uint32_t dv_ind, char* brand, uint32_t len) {
    DEVICE_CALL("rsmi_dev_brand_get", dv_ind, brand)
    DONE(fake_copy_string(brand, len, d->name));
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
    *socket_power = (uint64_t)(d->s.power_w * 1e6);
    DONE(RSMI_STATUS_SUCCESS);
}
#endif

int rsmi_dev_power_ave_get(uint32_t dv_ind, uint32_t sensor_ind, uint64_t* power) {
    DEVICE_CALL("rsmi_dev_power_ave_get", dv_ind, power)
    if (sensor_ind != 0) DONE(RSMI_STATUS_INVALID_ARGS);
    *power = (uint64_t)(d->s.power_w * 1e6);
    DONE(RSMI_STATUS_SUCCESS);
}

/* Millidegrees Celsius. */
int rsmi_dev_temp_metric_get(uint32_t dv_ind, uint32_t sensor_type, int metric, int64_t* temperature) {
    DEVICE_CALL("rsmi_dev_temp_metric_get", dv_ind, temperature)
    if (metric != RSMI_TEMP_CURRENT) DONE(RSMI_STATUS_NOT_SUPPORTED);
    if (sensor_type == RSMI_TEMP_TYPE_JUNCTION) *temperature = (int64_t)(d->s.temp_c * 1000.0);
    else if (sensor_type == RSMI_TEMP_TYPE_MEMORY) *temperature = (int64_t)(d->s.mem_temp_c * 1000.0);
    else DONE(RSMI_STATUS_NOT_SUPPORTED);  /* MI300 has no edge sensor */
    DONE(RSMI_STATUS_SUCCESS);
}

int rsmi_dev_gpu_clk_freq_get(uint32_t dv_ind, int clk_type, rsmi_frequencies_t* f) {
    DEVICE_CALL("rsmi_dev_gpu_clk_freq_get", dv_ind, f)
    double mhz;
    if (clk_type == RSMI_CLK_TYPE_SYS) mhz = d->s.sclk_mhz;
    else if (clk_type == RSMI_CLK_TYPE_MEM) mhz = d->s.mclk_mhz;
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
    DONE(fake_copy_string(compute_partition, len, d->compute_partition));
}

int rsmi_dev_memory_partition_get(uint32_t dv_ind, char* memory_partition, uint32_t len) {
    DEVICE_CALL("rsmi_dev_memory_partition_get", dv_ind, memory_partition)
    DONE(fake_copy_string(memory_partition, len, d->memory_partition));
}

int rsmi_dev_gpu_metrics_info_get(uint32_t dv_ind, void* out) {
    DEVICE_CALL("rsmi_dev_gpu_metrics_info_get", dv_ind, out)
    DONE(fake_answer_table(out, &d->t, &d->s));
}
