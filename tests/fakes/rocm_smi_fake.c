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
 *   rsmi_gpu_metrics_t is the library's *public* table. rsmi_dev_gpu_metrics_info_get
 *   copies the kernel's table into it, every field the kernel table lacks set
 *   to all-ones, the header (size, format and content revision) taken from the
 *   kernel table. Its layout depends on the library release, not the table:
 *     96 bytes    ROCm 5.x releases (Debian's 5.2.3, measured): the kernel 1.1
 *                  table, tables up to 1.3; 1.2/1.3 cut to it with
 *                  firmware_timestamp x 10 as system_clock_counter. Such a
 *                  release also lays rsmi_frequencies_t out without
 *                  has_deep_sleep, which the fake then does too.
 *     424 bytes   libraries that know tables up to 1.5 (no xcp_stats)
 *     1832 bytes  + 1.6: xcp_stats[8] of {gfx_busy_inst u32[8], jpeg_busy u16[32],
 *                  vcn_busy u16[4], gfx_busy_acc u64[8]}
 *     2368 bytes  + 1.7: xcp_stats gain gfx_below_host_limit_acc u64[8];
 *                  vram_max_bandwidth, xgmi_link_status[8] at the end
 *     4544 bytes  + 1.8: jpeg_busy grows to u16[40] (moving vcn_busy and
 *                  gfx_busy_acc), four more u64[8] accumulators per XCP
 *   The fake emulates one library release at a time (fake_set_library_layout)
 *   and writes exactly that many bytes, as the real library's struct copy does.
 *
 * Firmware cadence: the firmware refreshes the table every fw_period_ns. Each
 * refresh advances firmware_timestamp (10 ns units), accumulation_counter by
 * one and every gfx_busy_acc[xcc] by that XCD's busy percent. A period of 0
 * means manual: the table advances only through fake_tick().
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* ---- public gpu_metrics layouts ---------------------------------------- */
struct metrics_header {
    uint16_t structure_size;
    uint8_t format_revision;
    uint8_t content_revision;
};

#define METRICS_BASE                                                              \
    struct metrics_header common_header;                                         \
    uint16_t temperature_edge, temperature_hotspot, temperature_mem;             \
    uint16_t temperature_vrgfx, temperature_vrsoc, temperature_vrmem;            \
    uint16_t average_gfx_activity, average_umc_activity, average_mm_activity;    \
    uint16_t average_socket_power;                                               \
    uint64_t energy_accumulator;                                                 \
    uint64_t system_clock_counter;                                               \
    uint16_t average_gfxclk_frequency, average_socclk_frequency;                 \
    uint16_t average_uclk_frequency, average_vclk0_frequency;                    \
    uint16_t average_dclk0_frequency, average_vclk1_frequency;                   \
    uint16_t average_dclk1_frequency;                                            \
    uint16_t current_gfxclk, current_socclk, current_uclk, current_vclk0;        \
    uint16_t current_dclk0, current_vclk1, current_dclk1;                        \
    uint32_t throttle_status;                                                    \
    uint16_t current_fan_speed, pcie_link_width, pcie_link_speed;                \
    uint32_t gfx_activity_acc, mem_activity_acc;                                 \
    uint16_t temperature_hbm[4];                                                 \
    uint64_t firmware_timestamp;                                                 \
    uint16_t voltage_soc, voltage_gfx, voltage_mem;                              \
    uint64_t indep_throttle_status;                                              \
    uint16_t current_socket_power;                                               \
    uint16_t vcn_activity[4];                                                    \
    uint32_t gfxclk_lock_status;                                                 \
    uint16_t xgmi_link_width, xgmi_link_speed;                                   \
    uint64_t pcie_bandwidth_acc, pcie_bandwidth_inst;                            \
    uint64_t pcie_l0_to_recov_count_acc, pcie_replay_count_acc;                  \
    uint64_t pcie_replay_rover_count_acc;                                        \
    uint64_t xgmi_read_data_acc[8], xgmi_write_data_acc[8];                      \
    uint16_t current_gfxclks[8], current_socclks[4];                             \
    uint16_t current_vclk0s[4], current_dclk0s[4];                               \
    uint16_t jpeg_activity[32];                                                  \
    uint32_t pcie_nak_sent_count_acc, pcie_nak_rcvd_count_acc;

#define METRICS_V16_TAIL(XCP)                                                     \
    uint64_t accumulation_counter;                                               \
    uint64_t prochot_residency_acc, ppt_residency_acc, socket_thm_residency_acc; \
    uint64_t vr_thm_residency_acc, hbm_thm_residency_acc;                        \
    uint16_t num_partition;                                                      \
    struct XCP xcp_stats[8];                                                     \
    uint32_t pcie_lc_perf_other_end_recovery;

struct xcp_v16 {
    uint32_t gfx_busy_inst[8];
    uint16_t jpeg_busy[32];
    uint16_t vcn_busy[4];
    uint64_t gfx_busy_acc[8];
};
struct xcp_v17 {
    uint32_t gfx_busy_inst[8];
    uint16_t jpeg_busy[32];
    uint16_t vcn_busy[4];
    uint64_t gfx_busy_acc[8];
    uint64_t gfx_below_host_limit_acc[8];
};
struct xcp_v18 {
    uint32_t gfx_busy_inst[8];
    uint16_t jpeg_busy[40];
    uint16_t vcn_busy[4];
    uint64_t gfx_busy_acc[8];
    uint64_t gfx_below_host_limit_acc[8];
    uint64_t gfx_below_host_limit_ppt_acc[8];
    uint64_t gfx_below_host_limit_thm_acc[8];
    uint64_t gfx_low_utilization_acc[8];
    uint64_t gfx_below_host_limit_total_acc[8];
};

struct public_v15 { METRICS_BASE };
struct public_v16 { METRICS_BASE METRICS_V16_TAIL(xcp_v16) };
struct public_v17 {
    METRICS_BASE METRICS_V16_TAIL(xcp_v17)
    uint64_t vram_max_bandwidth;
    uint16_t xgmi_link_status[8];
};
struct public_v18 {
    METRICS_BASE METRICS_V16_TAIL(xcp_v18)
    uint64_t vram_max_bandwidth;
    uint16_t xgmi_link_status[8];
};

_Static_assert(sizeof(struct public_v15) == 424, "1.5-era public table");
_Static_assert(sizeof(struct public_v16) == 1832, "1.6-era public table (older header)");
_Static_assert(sizeof(struct public_v17) == 2368, "1.7-era public table");
_Static_assert(sizeof(struct public_v18) == 4544, "1.8-era public table (2025 header)");

/* Kernel-side table sizes, only echoed in the header's structure_size. */
static uint16_t kernel_table_size(unsigned revision) {
    switch (revision) {
    case 3: return 264;
    case 4: return 368;
    case 5: return 440;
    case 6: return 1448;
    case 7: return 2032;
    default: return 4576;
    }
}

/* ---- scripted state ----------------------------------------------------- */
#define MAX_DEVICES 32
#define MAX_XCD 8
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
    /* gpu_metrics */
    unsigned metrics_revision;  /* 0: rsmi_dev_gpu_metrics_info_get not supported */
    unsigned num_partition;     /* XCPs in the table */
    unsigned xcc_per_partition;
    uint64_t fw_period_ns;
    double xcd_busy[MAX_XCD];   /* percent, by XCD of this table */
    double ppt_violation;       /* 0..1 share of firmware ticks power-limited */
    double thermal_violation;
    uint64_t throttle_mask;     /* indep_throttle_status for tables <= 1.5 */
    /* firmware accumulators */
    uint64_t fw_ticks;
    uint64_t busy_acc[MAX_XCD];
    double ppt_acc, thm_acc;
    int64_t fw_epoch_ns;
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

static int64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* One firmware refresh: accumulate what the XCDs did during it. */
static void fw_tick_locked(struct fake_device* d, uint64_t n) {
    for (unsigned x = 0; x < MAX_XCD; ++x)
        d->busy_acc[x] += (uint64_t)(d->xcd_busy[x] + 0.5) * n;
    d->ppt_acc += d->ppt_violation * (double)n;
    d->thm_acc += d->thermal_violation * (double)n;
    d->fw_ticks += n;
}

static void fw_catch_up_locked(struct fake_device* d) {
    if (d->fw_period_ns == 0) return;
    int64_t elapsed = monotonic_ns() - d->fw_epoch_ns;
    uint64_t due = (uint64_t)(elapsed / (int64_t)d->fw_period_ns);
    if (due > d->fw_ticks) fw_tick_locked(d, due - d->fw_ticks);
}

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
    d->fw_epoch_ns = monotonic_ns();
    int index = (int)g_count++;
    pthread_mutex_unlock(&g_lock);
    return index;
}

/* 96, 424, 1832, 2368, 4544: the known releases. Any size above 4544 and below
 * 8192 emulates a future release: the 1.8 struct followed by new all-ones
 * fields, knowing tables up to 1.9. */
int fake_set_library_layout(unsigned size) {
    if (size != 96 && size != 424 && size != 1832 && size != 2368 && (size < 4544 || size >= 8192)) return -1;
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
    if (dev >= g_count || num_partition * xcc_per_partition > MAX_XCD) return -1;
    pthread_mutex_lock(&g_lock);
    struct fake_device* d = &g_dev[dev];
    d->metrics_revision = revision;
    d->num_partition = num_partition;
    d->xcc_per_partition = xcc_per_partition;
    d->fw_period_ns = fw_period_ns;
    d->fw_epoch_ns = monotonic_ns();
    d->fw_ticks = 0;
    pthread_mutex_unlock(&g_lock);
    return 0;
}

int fake_set_xcd_busy(unsigned dev, unsigned xcd, double percent) {
    if (dev >= g_count || xcd >= MAX_XCD) return -1;
    pthread_mutex_lock(&g_lock);
    fw_catch_up_locked(&g_dev[dev]);  /* what ran before the change stays accounted */
    g_dev[dev].xcd_busy[xcd] = percent;
    pthread_mutex_unlock(&g_lock);
    return 0;
}

/* Advance a manual-cadence table by n firmware refreshes. */
int fake_tick(unsigned dev, uint64_t n) {
    if (dev >= g_count) return -1;
    pthread_mutex_lock(&g_lock);
    fw_tick_locked(&g_dev[dev], n);
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
    else if (strcmp(key, "ppt_violation") == 0) { fw_catch_up_locked(d); d->ppt_violation = value; }
    else if (strcmp(key, "thermal_violation") == 0) { fw_catch_up_locked(d); d->thermal_violation = value; }
    else if (strcmp(key, "throttle_mask") == 0) d->throttle_mask = (uint64_t)value;
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
        unsigned n = d->num_partition * d->xcc_per_partition;
        double sum = 0;
        for (unsigned x = 0; x < n; ++x) sum += d->xcd_busy[x];
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

static unsigned layout_max_revision(unsigned layout) {
    switch (layout) {
    case 96: return 3;
    case 424: return 5;
    case 1832: return 6;
    case 2368: return 7;
    case 4544: return 8;
    default: return 9;
    }
}

/* Fill the xcp_stats of whichever public layout, through a stride. */
static void fill_xcp(unsigned char* base, size_t stride, size_t acc_offset,
                     const struct fake_device* d) {
    for (unsigned p = 0; p < d->num_partition; ++p) {
        unsigned char* xcp = base + p * stride;
        uint32_t* inst = (uint32_t*)xcp;
        uint64_t* acc = (uint64_t*)(xcp + acc_offset);
        for (unsigned x = 0; x < d->xcc_per_partition; ++x) {
            unsigned xcd = p * d->xcc_per_partition + x;
            inst[x] = (uint32_t)(d->xcd_busy[xcd] + 0.5);
            acc[x] = d->busy_acc[xcd];
        }
    }
}

int rsmi_dev_gpu_metrics_info_get(uint32_t dv_ind, void* out) {
    DEVICE_CALL("rsmi_dev_gpu_metrics_info_get", dv_ind, out)
    if (d->metrics_revision == 0 || d->metrics_revision > layout_max_revision(g_layout))
        DONE(RSMI_STATUS_NOT_SUPPORTED);
    fw_catch_up_locked(d);

    /* Build the largest layout, then hand out the emulated release's prefix:
     * everything up to xcp_stats is identical in all four layouts. */
    static union {
        struct public_v15 v15;
        struct public_v16 v16;
        struct public_v17 v17;
        struct public_v18 v18;
        unsigned char future[8192];
    } t;
    memset(&t, 0xFF, sizeof(t));  /* all-ones: no data */
    struct public_v15* m = &t.v15;
    unsigned rev = d->metrics_revision;
    m->common_header.structure_size = kernel_table_size(rev);
    m->common_header.format_revision = 1;
    m->common_header.content_revision = (uint8_t)rev;
    m->temperature_hotspot = (uint16_t)d->temp_c;
    m->temperature_mem = (uint16_t)d->mem_temp_c;
    m->system_clock_counter = (uint64_t)monotonic_ns();
    m->firmware_timestamp = d->fw_ticks * (d->fw_period_ns ? d->fw_period_ns : 1000000ULL) / 10;
    m->current_uclk = (uint16_t)d->mclk_mhz;
    double busy = 0;
    unsigned nxcd = d->num_partition * d->xcc_per_partition;
    for (unsigned x = 0; x < nxcd; ++x) busy += d->xcd_busy[x];
    m->average_gfx_activity = (uint16_t)(nxcd ? busy / nxcd + 0.5 : 0);
    if (rev < 4) {
        m->temperature_edge = (uint16_t)d->temp_c;
        m->average_socket_power = (uint16_t)d->power_w;
        m->current_gfxclk = (uint16_t)d->sclk_mhz;
    } else {
        m->current_socket_power = (uint16_t)d->power_w;
        for (unsigned x = 0; x < nxcd; ++x) m->current_gfxclks[x] = (uint16_t)d->sclk_mhz;
    }
    if (rev <= 5) {
        m->throttle_status = (uint32_t)d->throttle_mask;
        m->indep_throttle_status = d->throttle_mask;
    }
    if (g_layout == 96 && rev >= 2) m->system_clock_counter = m->firmware_timestamp * 10;
    size_t bytes = g_layout;
    if (rev >= 6 && g_layout >= 1832) {
        /* The tail fields before xcp_stats sit at the same offsets in 1.6..1.8. */
        struct public_v16* m16 = &t.v16;
        m16->accumulation_counter = d->fw_ticks;
        m16->ppt_residency_acc = (uint64_t)d->ppt_acc;
        m16->socket_thm_residency_acc = (uint64_t)d->thm_acc;
        m16->num_partition = (uint16_t)d->num_partition;
        if (g_layout == 1832)
            fill_xcp((unsigned char*)t.v16.xcp_stats, sizeof(struct xcp_v16), 104, d);
        else if (g_layout == 2368)
            fill_xcp((unsigned char*)t.v17.xcp_stats, sizeof(struct xcp_v17), 104, d);
        else
            fill_xcp((unsigned char*)t.v18.xcp_stats, sizeof(struct xcp_v18), 120, d);
    }
    memcpy(out, &t, bytes);
    DONE(RSMI_STATUS_SUCCESS);
}
