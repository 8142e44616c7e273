/*
 * What the two fake AMD libraries share (rocm_smi_fake.c, amdsmi_fake.c):
 * the lock every call takes, the library-wide script (which release's public
 * gpu_metrics layout the fake emulates, what init answers, how often each
 * function was called), a GPU's sensors, failures scripted per library device,
 * string answers, and the control functions over a GPU's table
 * (fake_gpu_metrics.h). What differs is each library's ABI: status codes,
 * handles, call names and structs; those stay in each fake.
 *
 * The including fake first defines its library's status codes:
 *   FAKE_SUCCESS, FAKE_INVALID (a bad argument), FAKE_NOT_SUPPORTED,
 *   FAKE_NOT_INIT (a call before init), FAKE_INSUFFICIENT_SIZE.
 *
 * Header-only (static functions, and the fake_* control functions both fakes
 * export): each fake compiles it into itself. Nothing here is copied from ROCm.
 */
#ifndef CUAGENT_FAKE_AMD_LIBRARY_H
#define CUAGENT_FAKE_AMD_LIBRARY_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fake_gpu_metrics.h"

#define FAKE_DEFAULT_LAYOUT 4544
#define FAKE_MAX_UNSUPPORTED 16
#define FAKE_MAX_COUNTED 32

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned g_layout = FAKE_DEFAULT_LAYOUT;  /* the public table size the emulated release writes */
static int g_init_status = FAKE_SUCCESS;
static int g_initialized;
static uint64_t g_calls;
static struct { char name[48]; uint64_t calls; } g_counted[FAKE_MAX_COUNTED];
static unsigned g_n_counted;

/* Answer and unlock: every call path ends here. The answer is worked out
 * before the unlock (it may fill the caller's buffer from the fake's state). */
#define DONE(status) do { const int done_ = (status); pthread_mutex_unlock(&g_lock); return done_; } while (0)

/* Under g_lock. */
static void fake_count_call(const char* fn) {
    ++g_calls;
    for (unsigned i = 0; i < g_n_counted; ++i)
        if (strcmp(g_counted[i].name, fn) == 0) { ++g_counted[i].calls; return; }
    if (g_n_counted < FAKE_MAX_COUNTED) {
        snprintf(g_counted[g_n_counted].name, sizeof g_counted[0].name, "%s", fn);
        g_counted[g_n_counted++].calls = 1;
    }
}

/* The library-wide script back to its start; under g_lock (fake_reset). */
static void fake_library_reset(void) {
    g_layout = FAKE_DEFAULT_LAYOUT;
    g_init_status = FAKE_SUCCESS;
    g_calls = 0;
    g_n_counted = 0;
}

/* ---- library-wide control API (ctypes) ---------------------------------- */

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

uint64_t fake_call_count(void) {
    pthread_mutex_lock(&g_lock);
    uint64_t n = g_calls;
    pthread_mutex_unlock(&g_lock);
    return n;
}

/* How often `function` was called since fake_reset. */
uint64_t fake_calls_of(const char* function) {
    uint64_t n = 0;
    pthread_mutex_lock(&g_lock);
    for (unsigned i = 0; i < g_n_counted; ++i)
        if (strcmp(g_counted[i].name, function) == 0) n = g_counted[i].calls;
    pthread_mutex_unlock(&g_lock);
    return n;
}

int fake_initialized(void) { return g_initialized; }

/* ---- a GPU's sensors and table values ----------------------------------- */

static void fake_sensors_default(struct fake_sensors* s) {
    s->power_w = 140.0;
    s->temp_c = 38.0;
    s->mem_temp_c = 35.0;
    s->sclk_mhz = 132.0;
    s->mclk_mhz = 900.0;
}

/* A GPU-wide value by name; -2 for a name neither the sensors nor the table
 * has (the fake then tries its own). Under g_lock. */
static int fake_set_gpu_key(struct fake_sensors* s, struct fake_table* t, const char* key, double value) {
    if (strcmp(key, "power_w") == 0) s->power_w = value;
    else if (strcmp(key, "temp_c") == 0) s->temp_c = value;
    else if (strcmp(key, "mem_temp_c") == 0) s->mem_temp_c = value;
    else if (strcmp(key, "sclk_mhz") == 0) s->sclk_mhz = value;
    else if (strcmp(key, "mclk_mhz") == 0) s->mclk_mhz = value;
    else if (strcmp(key, "ppt_violation") == 0) { fake_table_catch_up(t); t->ppt_violation = value; }
    else if (strcmp(key, "thermal_violation") == 0) { fake_table_catch_up(t); t->thermal_violation = value; }
    else if (strcmp(key, "throttle_mask") == 0) t->throttle_mask = (uint64_t)value;
    else return -2;
    return 0;
}

/* The control functions over a GPU's table, given the fake's table for the
 * GPU it was asked about (NULL: no such GPU, -1). */
static int fake_script_metrics(struct fake_table* t, unsigned revision, unsigned num_partition,
                               unsigned xcc_per_partition, uint64_t fw_period_ns) {
    if (t == NULL || num_partition * xcc_per_partition > FAKE_MAX_XCD) return -1;
    pthread_mutex_lock(&g_lock);
    fake_table_start(t, revision, num_partition, xcc_per_partition, fw_period_ns);
    pthread_mutex_unlock(&g_lock);
    return 0;
}

static int fake_script_xcd_busy(struct fake_table* t, unsigned xcd, double percent) {
    if (t == NULL || xcd >= FAKE_MAX_XCD) return -1;
    pthread_mutex_lock(&g_lock);
    fake_table_set_xcd_busy(t, xcd, percent);
    pthread_mutex_unlock(&g_lock);
    return 0;
}

/* Advance a manual-cadence table by n firmware refreshes. */
static int fake_script_tick(struct fake_table* t, uint64_t n) {
    if (t == NULL) return -1;
    pthread_mutex_lock(&g_lock);
    fake_table_tick(t, n);
    pthread_mutex_unlock(&g_lock);
    return 0;
}

/* The library's answer to a gpu_metrics call: the table in the emulated
 * release's layout, or NOT_SUPPORTED when there is none or the release does
 * not know its revision. Under g_lock. */
static int fake_answer_table(void* out, struct fake_table* t, const struct fake_sensors* s) {
    if (t->revision == 0 || t->revision > fake_layout_max_revision(g_layout)) return FAKE_NOT_SUPPORTED;
    fake_table_fill(out, g_layout, t, s);
    return FAKE_SUCCESS;
}

/* ---- failures scripted per library device -------------------------------- */

struct fake_failures {
    int lost_status;  /* 0: present; else every call on it returns this */
    char unsupported[FAKE_MAX_UNSUPPORTED][48];  /* functions answering NOT_SUPPORTED */
    unsigned n_unsupported;
};

static int fake_fails(const struct fake_failures* f, const char* fn) {
    for (unsigned i = 0; i < f->n_unsupported; ++i)
        if (strcmp(f->unsupported[i], fn) == 0) return 1;
    return 0;
}

/* Make one function answer NOT_SUPPORTED for the device whose failures are
 * `f` (NULL: no such device). */
static int fake_script_unsupported(struct fake_failures* f, const char* function) {
    if (f == NULL) return -1;
    pthread_mutex_lock(&g_lock);
    int rc = -1;
    if (f->n_unsupported < FAKE_MAX_UNSUPPORTED) {
        snprintf(f->unsupported[f->n_unsupported++], sizeof f->unsupported[0], "%s", function);
        rc = 0;
    }
    pthread_mutex_unlock(&g_lock);
    return rc;
}

/* status 0: the device is back; otherwise every call on it returns status. */
static int fake_script_lost(struct fake_failures* f, int status) {
    if (f == NULL) return -1;
    pthread_mutex_lock(&g_lock);
    f->lost_status = status;
    pthread_mutex_unlock(&g_lock);
    return 0;
}

/* Common prologue of every device query: lock, count, validate, fail as
 * scripted. `entry` names a pointer to the fake's device record (a struct with
 * a `struct fake_failures fail`), set from `find` (NULL: no such device). */
#define FAKE_QUERY(fn, entry, find, out)                                                    \
    pthread_mutex_lock(&g_lock);                                                          \
    fake_count_call(fn);                                                                  \
    if (!g_initialized) DONE(FAKE_NOT_INIT);                                              \
    entry = (find);                                                                       \
    if (entry == NULL) DONE(FAKE_INVALID);                                                \
    if (entry->fail.lost_status) DONE(entry->fail.lost_status);                           \
    if (fake_fails(&entry->fail, fn)) DONE(FAKE_NOT_SUPPORTED);                           \
    if ((out) == NULL) DONE(FAKE_INVALID);

/* ---- answers -------------------------------------------------------------- */

/* A string into the caller's buffer of `len` bytes; truncated (and
 * INSUFFICIENT_SIZE) when it does not fit. */
static int fake_copy_string(char* out, size_t len, const char* value) {
    size_t n = strlen(value);
    if (len == 0) return FAKE_INSUFFICIENT_SIZE;
    if (n >= len) {
        memcpy(out, value, len - 1);
        out[len - 1] = 0;
        return FAKE_INSUFFICIENT_SIZE;
    }
    memcpy(out, value, n + 1);
    return FAKE_SUCCESS;
}

#endif
