/*
 * A fake libamd_smi.so for the amdsmi driver's tests and benchmark.
 *
 * It exports the amdsmi_* functions the driver calls, with the argument types,
 * enum values, status codes and struct layouts of amdsmi.h (AMD SMI 26, ROCm
 * 7.0; tests/test_amdsmi_abi.py reads this fake's answers through AMD's own
 * ctypes description of those structs), and returns values scripted by the
 * test through the fake_* control functions (called over ctypes: dlopen of the
 * same path returns the same handle, so the driver and the test share this
 * state). Nothing here is copied from ROCm.
 *
 * Model: each GPU is a socket; each of its compute partitions is a processor
 * of that socket (one in SPX, eight in CPX), all with the GPU's PCI address.
 * Handles are pointers into this fake's tables. The first processor of a GPU
 * answers amdsmi_get_gpu_metrics_info with the GPU's whole table
 * (fake_gpu_metrics.h); the others answer NOT_SUPPORTED.
 *
 * What it shares with rocm_smi_fake.c (lock, library-wide script, scripted
 * failures, table controls) is fake_amd_library.h.
 *
 * amdsmi_init is not reference counted, as in AMD SMI: a second init succeeds
 * without counting and one amdsmi_shut_down ends it for every user.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* amdsmi_status_t */
enum {
    AMDSMI_STATUS_SUCCESS = 0,
    AMDSMI_STATUS_INVAL = 1,
    AMDSMI_STATUS_NOT_SUPPORTED = 2,
    AMDSMI_STATUS_FILE_ERROR = 14,
    AMDSMI_STATUS_OUT_OF_RESOURCES = 15,
    AMDSMI_STATUS_INIT_ERROR = 18,
    AMDSMI_STATUS_BUSY = 30,
    AMDSMI_STATUS_NOT_FOUND = 31,
    AMDSMI_STATUS_NOT_INIT = 32,
    AMDSMI_STATUS_INSUFFICIENT_SIZE = 41,
};
enum { AMDSMI_INIT_AMD_GPUS = 2 };
enum { AMDSMI_PROCESSOR_TYPE_AMD_GPU = 1 };
enum { AMDSMI_MEM_TYPE_VRAM = 0 };
enum { AMDSMI_TEMPERATURE_TYPE_EDGE = 0, AMDSMI_TEMPERATURE_TYPE_HOTSPOT = 1, AMDSMI_TEMPERATURE_TYPE_VRAM = 2 };
enum { AMDSMI_TEMP_CURRENT = 0 };
enum { AMDSMI_CLK_TYPE_GFX = 0, AMDSMI_CLK_TYPE_MEM = 4 };

#define STRING_LENGTH 256
#define UUID_SIZE 38

/* ---- the amdsmi.h structs the driver passes (AMD SMI 26) ----------------- */
typedef struct {
    uint32_t major, minor, release;
    const char* build;
} amdsmi_version_t;

typedef union {
    uint64_t as_uint;  /* function 2:0, device 7:3, bus 15:8, domain 63:16 */
} amdsmi_bdf_t;

typedef struct {
    char market_name[STRING_LENGTH];
    uint32_t vendor_id;
    char vendor_name[STRING_LENGTH];
    uint32_t subvendor_id;
    uint64_t device_id;
    uint32_t rev_id;
    char asic_serial[STRING_LENGTH];
    uint32_t oam_id;
    uint32_t num_of_compute_units;
    uint64_t target_graphics_version;
    uint32_t subsystem_id;
    uint32_t reserved[21];
} amdsmi_asic_info_t;

typedef struct {
    char model_number[STRING_LENGTH];
    char product_serial[STRING_LENGTH];
    char fru_id[STRING_LENGTH];
    char product_name[STRING_LENGTH];
    char manufacturer_name[STRING_LENGTH];
    uint64_t reserved[64];
} amdsmi_board_info_t;

typedef struct {
    uint64_t kfd_id;
    uint32_t node_id;
    uint32_t current_partition_id;
    uint32_t reserved[12];
} amdsmi_kfd_info_t;

typedef struct {
    uint32_t gfx_activity, umc_activity, mm_activity;
    uint32_t reserved[13];
} amdsmi_engine_usage_t;

typedef struct {
    uint64_t socket_power;
    uint32_t current_socket_power, average_socket_power;
    uint64_t gfx_voltage, soc_voltage, mem_voltage;
    uint32_t power_limit;
    uint64_t reserved[18];
} amdsmi_power_info_t;

typedef struct {
    uint32_t clk, min_clk, max_clk;
    uint8_t clk_locked, clk_deep_sleep;
    uint32_t reserved[4];
} amdsmi_clk_info_t;

typedef struct {
    uint64_t correctable_count, uncorrectable_count, deferred_count;
    uint64_t reserved[5];
} amdsmi_error_count_t;

typedef struct {
    char name[STRING_LENGTH];
    uint32_t pid;
    uint64_t mem;
    struct {
        uint64_t gfx, enc;
        uint32_t reserved[12];
    } engine_usage;
    struct {
        uint64_t gtt_mem, cpu_mem, vram_mem;
        uint32_t reserved[10];
    } memory_usage;
    char container_name[STRING_LENGTH];
    uint32_t cu_occupancy;
    uint32_t reserved[11];
} amdsmi_proc_info_t;

_Static_assert(sizeof(amdsmi_asic_info_t) == 896, "amdsmi_asic_info_t");
_Static_assert(sizeof(amdsmi_board_info_t) == 1792, "amdsmi_board_info_t");
_Static_assert(sizeof(amdsmi_power_info_t) == 192, "amdsmi_power_info_t");
_Static_assert(sizeof(amdsmi_proc_info_t) == 704, "amdsmi_proc_info_t");

#define FAKE_SUCCESS AMDSMI_STATUS_SUCCESS
#define FAKE_INVALID AMDSMI_STATUS_INVAL
#define FAKE_NOT_SUPPORTED AMDSMI_STATUS_NOT_SUPPORTED
#define FAKE_NOT_INIT AMDSMI_STATUS_NOT_INIT
#define FAKE_INSUFFICIENT_SIZE AMDSMI_STATUS_INSUFFICIENT_SIZE
#include "fake_amd_library.h"

/* ---- scripted state ------------------------------------------------------ */
#define MAX_GPUS 8
#define MAX_PROCS 64
#define MAX_PROCESSES 16

struct fake_process {
    uint32_t pid;
    char name[64];
    uint64_t vram, gfx_ns;
    double busy;        /* GFX engine share it keeps using: gfx_ns grows by busy x elapsed ns */
    int64_t since_ns;   /* when gfx_ns was set */
};

struct fake_gpu {  /* one socket */
    char name[96];
    uint32_t device_id;
    struct fake_table t;
    struct fake_sensors s;
    uint64_t ecc_corrected, ecc_uncorrected;
    unsigned first, count;  /* its processors in g_proc */
};

struct fake_proc {  /* one compute partition */
    unsigned gpu;
    unsigned partition;
    uint64_t bdf;
    uint32_t kfd_node;
    uint64_t vram_total, vram_used;
    double busy_pct;  /* < 0: the mean of its partition's XCDs */
    double umc_pct;
    char compute_partition[16], memory_partition[16];
    struct fake_failures fail;
    struct fake_process processes[MAX_PROCESSES];
    unsigned n_processes;
};

static struct fake_gpu g_gpu[MAX_GPUS];
static unsigned g_gpus;
static struct fake_proc g_proc[MAX_PROCS];
static unsigned g_procs;
static uint64_t g_init_calls, g_shutdown_calls;
static uint32_t g_version[3] = {26, 0, 2};

static struct fake_proc* proc_of(void* handle) {
    struct fake_proc* p = (struct fake_proc*)handle;
    if (p < g_proc || p >= g_proc + g_procs) return NULL;
    return p;
}

/* Common prologue of every processor query (fake_amd_library.h); g is the
 * processor's GPU. */
#define PROC_CALL(fn, handle, out)                  \
    struct fake_proc* p;                            \
    struct fake_gpu* g;                             \
    FAKE_QUERY(fn, p, proc_of(handle), out)         \
    g = &g_gpu[p->gpu];                             \
    (void)g;

/* ---- control API (ctypes) ------------------------------------------------ */
void fake_reset(void) {
    pthread_mutex_lock(&g_lock);
    memset(g_gpu, 0, sizeof g_gpu);
    memset(g_proc, 0, sizeof g_proc);
    g_gpus = g_procs = 0;
    fake_library_reset();
    g_version[0] = 26; g_version[1] = 0; g_version[2] = 2;
    g_init_calls = g_shutdown_calls = 0;
    pthread_mutex_unlock(&g_lock);
}

/* A GPU of `partitions` processors at PCI domain:bus:00.0, its KFD nodes
 * first_kfd_node.. (one per partition). function_bits: the partition id is in
 * each processor's PCI function (kernels before 2024), else every processor
 * has function 0 and only amdsmi_get_gpu_kfd_info tells the partition.
 * reversed: the library enumerates the partitions last to first. */
int fake_add_gpu(const char* name, uint32_t device_id, uint32_t domain, uint32_t bus, unsigned partitions,
                 uint64_t vram_per_partition, uint32_t first_kfd_node, int function_bits, int reversed) {
    pthread_mutex_lock(&g_lock);
    if (g_gpus >= MAX_GPUS || partitions == 0 || partitions > 8 || g_procs + partitions > MAX_PROCS) {
        pthread_mutex_unlock(&g_lock);
        return -1;
    }
    struct fake_gpu* g = &g_gpu[g_gpus];
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", name);
    g->device_id = device_id;
    fake_sensors_default(&g->s);
    g->t.fw_epoch_ns = fake_monotonic_ns();
    g->t.umc_pct = 3.0;
    g->first = g_procs;
    g->count = partitions;
    for (unsigned i = 0; i < partitions; ++i) {
        const unsigned part = reversed ? partitions - 1 - i : i;
        struct fake_proc* p = &g_proc[g_procs];
        memset(p, 0, sizeof *p);
        p->gpu = g_gpus;
        p->partition = part;
        p->bdf = ((uint64_t)domain << 16) | ((uint64_t)bus << 8) | (function_bits ? part : 0);
        p->kfd_node = first_kfd_node + part;
        p->vram_total = vram_per_partition;
        p->vram_used = vram_per_partition / 100;
        p->busy_pct = -1.0;
        p->umc_pct = 3.0;
        snprintf(p->compute_partition, sizeof p->compute_partition, "SPX");
        snprintf(p->memory_partition, sizeof p->memory_partition, "NPS1");
        ++g_procs;
    }
    const int index = (int)g_gpus++;
    pthread_mutex_unlock(&g_lock);
    return index;
}

/* The processor of GPU `gpu` serving compute partition `partition`; -1 if none. */
int fake_processor(unsigned gpu, unsigned partition) {
    if (gpu >= g_gpus) return -1;
    for (unsigned i = g_gpu[gpu].first; i < g_gpu[gpu].first + g_gpu[gpu].count; ++i)
        if (g_proc[i].partition == partition) return (int)i;
    return -1;
}

void fake_set_version(uint32_t major, uint32_t minor, uint32_t release) {
    pthread_mutex_lock(&g_lock);
    g_version[0] = major; g_version[1] = minor; g_version[2] = release;
    pthread_mutex_unlock(&g_lock);
}

static struct fake_table* table_of(unsigned gpu) { return gpu < g_gpus ? &g_gpu[gpu].t : NULL; }

/* revision: content revision of the GPU's table (3..9), 0 = call not supported. */
int fake_set_metrics(unsigned gpu, unsigned revision, unsigned num_partition, unsigned xcc_per_partition,
                     uint64_t fw_period_ns) {
    return fake_script_metrics(table_of(gpu), revision, num_partition, xcc_per_partition, fw_period_ns);
}

int fake_set_xcd_busy(unsigned gpu, unsigned xcd, double percent) {
    return fake_script_xcd_busy(table_of(gpu), xcd, percent);
}

int fake_tick(unsigned gpu, uint64_t n) { return fake_script_tick(table_of(gpu), n); }

/* GPU-wide values (sensors, table, ECC). */
int fake_set_gpu_value(unsigned gpu, const char* key, double value) {
    if (gpu >= g_gpus) return -1;
    pthread_mutex_lock(&g_lock);
    struct fake_gpu* g = &g_gpu[gpu];
    int rc = 0;
    if (strcmp(key, "table_umc_pct") == 0) g->t.umc_pct = value;
    else if (strcmp(key, "ecc_corrected") == 0) g->ecc_corrected = (uint64_t)value;
    else if (strcmp(key, "ecc_uncorrected") == 0) g->ecc_uncorrected = (uint64_t)value;
    else rc = fake_set_gpu_key(&g->s, &g->t, key, value);
    pthread_mutex_unlock(&g_lock);
    return rc;
}

/* Per-processor (partition) values. */
int fake_set_value(unsigned proc, const char* key, double value) {
    if (proc >= g_procs) return -1;
    pthread_mutex_lock(&g_lock);
    struct fake_proc* p = &g_proc[proc];
    int rc = 0;
    if (strcmp(key, "vram_used") == 0) p->vram_used = (uint64_t)value;
    else if (strcmp(key, "vram_total") == 0) p->vram_total = (uint64_t)value;
    else if (strcmp(key, "busy_pct") == 0) p->busy_pct = value;
    else if (strcmp(key, "umc_pct") == 0) p->umc_pct = value;
    else rc = -2;
    pthread_mutex_unlock(&g_lock);
    return rc;
}

int fake_set_partition_modes(unsigned proc, const char* compute, const char* memory) {
    if (proc >= g_procs) return -1;
    pthread_mutex_lock(&g_lock);
    snprintf(g_proc[proc].compute_partition, sizeof g_proc[proc].compute_partition, "%s", compute);
    snprintf(g_proc[proc].memory_partition, sizeof g_proc[proc].memory_partition, "%s", memory);
    pthread_mutex_unlock(&g_lock);
    return 0;
}

/* Make one amdsmi function answer AMDSMI_STATUS_NOT_SUPPORTED for this processor. */
int fake_set_unsupported(unsigned proc, const char* function) {
    return fake_script_unsupported(proc < g_procs ? &g_proc[proc].fail : NULL, function);
}

/* status 0: the processor is back; otherwise every call on it returns status. */
int fake_set_lost(unsigned proc, int status) {
    return fake_script_lost(proc < g_procs ? &g_proc[proc].fail : NULL, status);
}

/* A process on a processor (or new figures for one already there): its VRAM,
 * the GFX engine time it has used, and the share of the engine it goes on
 * using (its gfx_ns grows with the monotonic clock between lists). */
int fake_add_process(unsigned proc, uint32_t pid, const char* name, uint64_t vram, uint64_t gfx_ns, double busy) {
    if (proc >= g_procs) return -1;
    pthread_mutex_lock(&g_lock);
    struct fake_proc* p = &g_proc[proc];
    struct fake_process* e = NULL;
    for (unsigned i = 0; i < p->n_processes; ++i)
        if (p->processes[i].pid == pid) e = &p->processes[i];
    if (e == NULL && p->n_processes < MAX_PROCESSES) {
        e = &p->processes[p->n_processes++];
        e->pid = pid;
        snprintf(e->name, sizeof e->name, "%s", name);
    }
    if (e != NULL) {
        e->vram = vram;
        e->gfx_ns = gfx_ns;
        e->busy = busy;
        e->since_ns = fake_monotonic_ns();
    }
    pthread_mutex_unlock(&g_lock);
    return e != NULL ? 0 : -1;
}

int fake_clear_processes(unsigned proc) {
    if (proc >= g_procs) return -1;
    pthread_mutex_lock(&g_lock);
    g_proc[proc].n_processes = 0;
    pthread_mutex_unlock(&g_lock);
    return 0;
}

uint64_t fake_init_calls(void) { return g_init_calls; }
uint64_t fake_shutdown_calls(void) { return g_shutdown_calls; }

/* ---- AMD SMI ABI ---------------------------------------------------------- */
#ifndef FAKE_OMIT_INIT
int amdsmi_init(uint64_t flags) {
    pthread_mutex_lock(&g_lock);
    ++g_init_calls;
    int status = g_init_status;
    if (status == AMDSMI_STATUS_SUCCESS && !(flags & AMDSMI_INIT_AMD_GPUS)) status = AMDSMI_STATUS_NOT_SUPPORTED;
    if (status == AMDSMI_STATUS_SUCCESS) g_initialized = 1;  /* not reference counted */
    pthread_mutex_unlock(&g_lock);
    return status;
}
#endif

int amdsmi_shut_down(void) {
    pthread_mutex_lock(&g_lock);
    ++g_shutdown_calls;
    g_initialized = 0;
    pthread_mutex_unlock(&g_lock);
    return AMDSMI_STATUS_SUCCESS;
}

int amdsmi_status_code_to_string(int status, const char** text) {
    if (text == NULL) return AMDSMI_STATUS_INVAL;
    switch (status) {
    case AMDSMI_STATUS_SUCCESS: *text = "AMDSMI_STATUS_SUCCESS: Call succeeded"; break;
    case AMDSMI_STATUS_INVAL: *text = "AMDSMI_STATUS_INVAL: Invalid parameters"; break;
    case AMDSMI_STATUS_NOT_SUPPORTED: *text = "AMDSMI_STATUS_NOT_SUPPORTED: Command not supported"; break;
    case AMDSMI_STATUS_FILE_ERROR: *text = "AMDSMI_STATUS_FILE_ERROR: Error opening file"; break;
    case AMDSMI_STATUS_INIT_ERROR: *text = "AMDSMI_STATUS_INIT_ERROR: An error occurred when initializing internal data structures"; break;
    case AMDSMI_STATUS_BUSY: *text = "AMDSMI_STATUS_BUSY: Processor busy"; break;
    case AMDSMI_STATUS_NOT_FOUND: *text = "AMDSMI_STATUS_NOT_FOUND: Processor Not found"; break;
    case AMDSMI_STATUS_NOT_INIT: *text = "AMDSMI_STATUS_NOT_INIT: Processor not initialized"; break;
    default: *text = "An unknown error occurred"; break;
    }
    return AMDSMI_STATUS_SUCCESS;
}

int amdsmi_get_lib_version(amdsmi_version_t* version) {
    if (version == NULL) return AMDSMI_STATUS_INVAL;
    pthread_mutex_lock(&g_lock);
    version->major = g_version[0];
    version->minor = g_version[1];
    version->release = g_version[2];
    version->build = "fake";
    pthread_mutex_unlock(&g_lock);
    return AMDSMI_STATUS_SUCCESS;
}

/* Both handle lists: count only when the array is NULL; otherwise fill up to
 * *count and report how many there are (OUT_OF_RESOURCES if more). */
int amdsmi_get_socket_handles(uint32_t* count, void** sockets) {
    pthread_mutex_lock(&g_lock);
    fake_count_call("amdsmi_get_socket_handles");
    if (!g_initialized) DONE(AMDSMI_STATUS_NOT_INIT);
    if (count == NULL) DONE(AMDSMI_STATUS_INVAL);
    if (sockets == NULL) { *count = g_gpus; DONE(AMDSMI_STATUS_SUCCESS); }
    uint32_t n = *count < g_gpus ? *count : g_gpus;
    for (uint32_t i = 0; i < n; ++i) sockets[i] = &g_gpu[i];
    int status = *count < g_gpus ? AMDSMI_STATUS_OUT_OF_RESOURCES : AMDSMI_STATUS_SUCCESS;
    *count = n;
    DONE(status);
}

int amdsmi_get_processor_handles(void* socket, uint32_t* count, void** processors) {
    pthread_mutex_lock(&g_lock);
    fake_count_call("amdsmi_get_processor_handles");
    if (!g_initialized) DONE(AMDSMI_STATUS_NOT_INIT);
    struct fake_gpu* g = (struct fake_gpu*)socket;
    if (g < g_gpu || g >= g_gpu + g_gpus || count == NULL) DONE(AMDSMI_STATUS_INVAL);
    if (processors == NULL) { *count = g->count; DONE(AMDSMI_STATUS_SUCCESS); }
    uint32_t n = *count < g->count ? *count : g->count;
    for (uint32_t i = 0; i < n; ++i) processors[i] = &g_proc[g->first + i];
    int status = *count < g->count ? AMDSMI_STATUS_OUT_OF_RESOURCES : AMDSMI_STATUS_SUCCESS;
    *count = n;
    DONE(status);
}

int amdsmi_get_processor_type(void* handle, uint32_t* type) {
    PROC_CALL("amdsmi_get_processor_type", handle, type)
    *type = AMDSMI_PROCESSOR_TYPE_AMD_GPU;
    DONE(AMDSMI_STATUS_SUCCESS);
}

int amdsmi_get_gpu_device_bdf(void* handle, amdsmi_bdf_t* bdf) {
    PROC_CALL("amdsmi_get_gpu_device_bdf", handle, bdf)
    bdf->as_uint = p->bdf;
    DONE(AMDSMI_STATUS_SUCCESS);
}

int amdsmi_get_gpu_device_uuid(void* handle, uint32_t* length, char* uuid) {
    PROC_CALL("amdsmi_get_gpu_device_uuid", handle, uuid)
    if (length == NULL || *length < UUID_SIZE) DONE(AMDSMI_STATUS_INSUFFICIENT_SIZE);
    snprintf(uuid, *length, "%02xff%04x-0000-1000-8000-%012x", p->partition, g->device_id, p->gpu);
    *length = (uint32_t)strlen(uuid);
    DONE(AMDSMI_STATUS_SUCCESS);
}

int amdsmi_get_gpu_asic_info(void* handle, amdsmi_asic_info_t* info) {
    PROC_CALL("amdsmi_get_gpu_asic_info", handle, info)
    memset(info, 0, sizeof *info);
    snprintf(info->market_name, sizeof info->market_name, "%s", g->name);
    info->vendor_id = 0x1002;
    snprintf(info->vendor_name, sizeof info->vendor_name, "Advanced Micro Devices Inc. [AMD/ATI]");
    info->device_id = g->device_id;
    info->oam_id = p->gpu;
    info->num_of_compute_units = 304 / g->count;
    info->target_graphics_version = 942;
    DONE(AMDSMI_STATUS_SUCCESS);
}

int amdsmi_get_gpu_board_info(void* handle, amdsmi_board_info_t* info) {
    PROC_CALL("amdsmi_get_gpu_board_info", handle, info)
    memset(info, 0, sizeof *info);
    snprintf(info->product_name, sizeof info->product_name, "%s OAM", g->name);
    snprintf(info->manufacturer_name, sizeof info->manufacturer_name, "AMD");
    DONE(AMDSMI_STATUS_SUCCESS);
}

int amdsmi_topo_get_numa_node_number(void* handle, uint32_t* numa) {
    PROC_CALL("amdsmi_topo_get_numa_node_number", handle, numa)
    *numa = p->gpu < 4 ? 0 : 1;
    DONE(AMDSMI_STATUS_SUCCESS);
}

int amdsmi_get_gpu_kfd_info(void* handle, amdsmi_kfd_info_t* info) {
    PROC_CALL("amdsmi_get_gpu_kfd_info", handle, info)
    memset(info, 0, sizeof *info);
    info->kfd_id = 40000 + p->kfd_node;
    info->node_id = p->kfd_node;
    info->current_partition_id = p->partition;
    DONE(AMDSMI_STATUS_SUCCESS);
}

int amdsmi_get_gpu_memory_total(void* handle, uint32_t type, uint64_t* total) {
    PROC_CALL("amdsmi_get_gpu_memory_total", handle, total)
    if (type != AMDSMI_MEM_TYPE_VRAM) DONE(AMDSMI_STATUS_NOT_SUPPORTED);
    *total = p->vram_total;
    DONE(AMDSMI_STATUS_SUCCESS);
}

int amdsmi_get_gpu_memory_usage(void* handle, uint32_t type, uint64_t* used) {
    PROC_CALL("amdsmi_get_gpu_memory_usage", handle, used)
    if (type != AMDSMI_MEM_TYPE_VRAM) DONE(AMDSMI_STATUS_NOT_SUPPORTED);
    *used = p->vram_used;
    DONE(AMDSMI_STATUS_SUCCESS);
}

/* A build with -DFAKE_OMIT_ACTIVITY leaves this symbol out (a release without it). */
#ifndef FAKE_OMIT_ACTIVITY
int amdsmi_get_gpu_activity(void* handle, amdsmi_engine_usage_t* usage) {
    PROC_CALL("amdsmi_get_gpu_activity", handle, usage)
    double pct = p->busy_pct;
    if (pct < 0) {
        const struct fake_table* t = &g->t;
        double sum = 0;
        unsigned n = 0;
        /* The XCDs of this processor's partition (all of them when the table has one partition). */
        for (unsigned x = 0; x < t->num_partition * t->xcc_per_partition; ++x) {
            if (t->num_partition > 1 && x / t->xcc_per_partition != p->partition) continue;
            sum += t->xcd_busy[x];
            ++n;
        }
        pct = n ? sum / n : 0.0;
    }
    memset(usage, 0xFF, sizeof *usage);
    usage->gfx_activity = (uint32_t)(pct + 0.5);
    usage->umc_activity = (uint32_t)(p->umc_pct + 0.5);
    usage->mm_activity = 0;
    DONE(AMDSMI_STATUS_SUCCESS);
}
#endif

int amdsmi_get_power_info(void* handle, amdsmi_power_info_t* info) {
    PROC_CALL("amdsmi_get_power_info", handle, info)
    memset(info, 0xFF, sizeof *info);
    info->socket_power = (uint64_t)g->s.power_w;
    info->current_socket_power = (uint32_t)g->s.power_w;
    info->average_socket_power = (uint32_t)g->s.power_w;
    DONE(AMDSMI_STATUS_SUCCESS);
}

/* Degrees Celsius (AMD SMI divides ROCm SMI's millidegrees). */
int amdsmi_get_temp_metric(void* handle, uint32_t sensor, uint32_t metric, int64_t* temperature) {
    PROC_CALL("amdsmi_get_temp_metric", handle, temperature)
    if (metric != AMDSMI_TEMP_CURRENT) DONE(AMDSMI_STATUS_NOT_SUPPORTED);
    if (sensor == AMDSMI_TEMPERATURE_TYPE_HOTSPOT) *temperature = (int64_t)g->s.temp_c;
    else if (sensor == AMDSMI_TEMPERATURE_TYPE_VRAM) *temperature = (int64_t)g->s.mem_temp_c;
    else DONE(AMDSMI_STATUS_NOT_SUPPORTED);  /* MI300 has no edge sensor */
    DONE(AMDSMI_STATUS_SUCCESS);
}

int amdsmi_get_clock_info(void* handle, uint32_t type, amdsmi_clk_info_t* info) {
    PROC_CALL("amdsmi_get_clock_info", handle, info)
    double mhz;
    if (type == AMDSMI_CLK_TYPE_GFX) mhz = g->s.sclk_mhz;
    else if (type == AMDSMI_CLK_TYPE_MEM) mhz = g->s.mclk_mhz;
    else DONE(AMDSMI_STATUS_NOT_SUPPORTED);
    memset(info, 0, sizeof *info);
    info->clk = (uint32_t)mhz;
    info->min_clk = 500;
    info->max_clk = 2100;
    DONE(AMDSMI_STATUS_SUCCESS);
}

int amdsmi_get_gpu_total_ecc_count(void* handle, amdsmi_error_count_t* ec) {
    PROC_CALL("amdsmi_get_gpu_total_ecc_count", handle, ec)
    memset(ec, 0, sizeof *ec);
    ec->correctable_count = g->ecc_corrected;
    ec->uncorrectable_count = g->ecc_uncorrected;
    DONE(AMDSMI_STATUS_SUCCESS);
}

int amdsmi_get_gpu_metrics_info(void* handle, void* out) {
    PROC_CALL("amdsmi_get_gpu_metrics_info", handle, out)
    if (p->partition != 0) DONE(AMDSMI_STATUS_NOT_SUPPORTED);  /* the first partition answers for the GPU */
    DONE(fake_answer_table(out, &g->t, &g->s));
}

int amdsmi_get_gpu_compute_partition(void* handle, char* text, uint32_t len) {
    PROC_CALL("amdsmi_get_gpu_compute_partition", handle, text)
    DONE(fake_copy_string(text, len, p->compute_partition));
}

int amdsmi_get_gpu_memory_partition(void* handle, char* text, uint32_t len) {
    PROC_CALL("amdsmi_get_gpu_memory_partition", handle, text)
    DONE(fake_copy_string(text, len, p->memory_partition));
}

/* *max_processes in: the list's room; out: how many processes there are.
 * A list too small is filled and answered OUT_OF_RESOURCES. */
int amdsmi_get_gpu_process_list(void* handle, uint32_t* max_processes, amdsmi_proc_info_t* list) {
    PROC_CALL("amdsmi_get_gpu_process_list", handle, max_processes)
    const uint32_t room = *max_processes;
    *max_processes = p->n_processes;
    if (room == 0 || p->n_processes == 0) DONE(AMDSMI_STATUS_SUCCESS);
    if (list == NULL) DONE(AMDSMI_STATUS_INVAL);
    for (uint32_t i = 0; i < p->n_processes && i < room; ++i) {
        const struct fake_process* e = &p->processes[i];
        amdsmi_proc_info_t* out = &list[i];
        memset(out, 0, sizeof *out);
        snprintf(out->name, sizeof out->name, "%s", e->name);
        out->pid = e->pid;
        out->mem = e->vram;
        out->engine_usage.gfx = e->gfx_ns + (uint64_t)(e->busy * (double)(fake_monotonic_ns() - e->since_ns));
        out->memory_usage.vram_mem = e->vram;
        out->cu_occupancy = 0;
    }
    DONE(room < p->n_processes ? AMDSMI_STATUS_OUT_OF_RESOURCES : AMDSMI_STATUS_SUCCESS);
}
