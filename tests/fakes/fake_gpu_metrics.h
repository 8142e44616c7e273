/*
 * The public gpu_metrics table both AMD fakes hand out (rocm_smi_fake.c,
 * amdsmi_fake.c): ROCm SMI's rsmi_gpu_metrics_t and AMD SMI's
 * amdsmi_gpu_metrics_t are the same fields at the same offsets. Written from
 * the documented header facts, nothing copied:
 *
 *   The library copies the kernel's table into its own public struct, every
 *   field the kernel table lacks set to all-ones, the header (size, format and
 *   content revision) taken from the kernel table. The layout depends on the
 *   library release, not the table:
 *     96 bytes    ROCm 5.x releases (Debian's 5.2.3, measured): the kernel 1.1
 *                  table, tables up to 1.3; 1.2/1.3 cut to it with
 *                  firmware_timestamp x 10 as system_clock_counter
 *     424 bytes   libraries that know tables up to 1.5 (no xcp_stats)
 *     1832 bytes  + 1.6: xcp_stats[8] of {gfx_busy_inst u32[8], jpeg_busy u16[32],
 *                  vcn_busy u16[4], gfx_busy_acc u64[8]}
 *     2368 bytes  + 1.7: xcp_stats gain gfx_below_host_limit_acc u64[8];
 *                  vram_max_bandwidth, xgmi_link_status[8] at the end
 *     4544 bytes  + 1.8: jpeg_busy grows to u16[40] (moving vcn_busy and
 *                  gfx_busy_acc), four more u64[8] accumulators per XCP
 *   A fake emulates one library release at a time and writes exactly that many
 *   bytes, as the real library's struct copy does.
 *
 * Firmware cadence: the firmware refreshes the table every fw_period_ns. Each
 * refresh advances firmware_timestamp (10 ns units), accumulation_counter by
 * one and every gfx_busy_acc[xcc] by that XCD's busy percent. A period of 0
 * means manual: the table advances only through fake_table_tick().
 *
 * Header-only (static functions): each fake compiles it into itself.
 */
#ifndef CUAGENT_FAKE_GPU_METRICS_H
#define CUAGENT_FAKE_GPU_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

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

#define FAKE_MAX_XCD 8

/* One GPU's firmware and the values its table reports. */
struct fake_table {
    unsigned revision;          /* content revision of the table (3..9); 0: no table */
    unsigned num_partition;     /* XCPs in the table */
    unsigned xcc_per_partition;
    uint64_t fw_period_ns;
    int64_t fw_epoch_ns;
    double xcd_busy[FAKE_MAX_XCD];  /* percent, by XCD */
    double ppt_violation;           /* 0..1 share of firmware ticks power-limited */
    double thermal_violation;
    double umc_pct;                 /* average_umc_activity; < 0: the table lacks it */
    uint64_t throttle_mask;         /* indep_throttle_status for tables <= 1.5 */
    /* firmware accumulators */
    uint64_t fw_ticks;
    uint64_t busy_acc[FAKE_MAX_XCD];
    double ppt_acc, thm_acc;
};

/* What the sensors read, also in the table. */
struct fake_sensors {
    double power_w, temp_c, mem_temp_c, sclk_mhz, mclk_mhz;
};

static int64_t fake_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* n firmware refreshes: accumulate what the XCDs did during them. */
static void fake_table_tick(struct fake_table* t, uint64_t n) {
    for (unsigned x = 0; x < FAKE_MAX_XCD; ++x)
        t->busy_acc[x] += (uint64_t)(t->xcd_busy[x] + 0.5) * n;
    t->ppt_acc += t->ppt_violation * (double)n;
    t->thm_acc += t->thermal_violation * (double)n;
    t->fw_ticks += n;
}

static void fake_table_catch_up(struct fake_table* t) {
    if (t->fw_period_ns == 0) return;
    int64_t elapsed = fake_monotonic_ns() - t->fw_epoch_ns;
    uint64_t due = (uint64_t)(elapsed / (int64_t)t->fw_period_ns);
    if (due > t->fw_ticks) fake_table_tick(t, due - t->fw_ticks);
}

/* The firmware (re)starts: a table of content revision `revision` (0: none)
 * holding num_partition XCPs of xcc_per_partition XCDs, refreshed every
 * fw_period_ns (0: only by fake_table_tick), its refreshes counted from now. */
static void fake_table_start(struct fake_table* t, unsigned revision, unsigned num_partition,
                             unsigned xcc_per_partition, uint64_t fw_period_ns) {
    t->revision = revision;
    t->num_partition = num_partition;
    t->xcc_per_partition = xcc_per_partition;
    t->fw_period_ns = fw_period_ns;
    t->fw_epoch_ns = fake_monotonic_ns();
    t->fw_ticks = 0;
}

/* One XCD's load from now on; what ran before the change stays accounted. */
static void fake_table_set_xcd_busy(struct fake_table* t, unsigned xcd, double percent) {
    fake_table_catch_up(t);
    t->xcd_busy[xcd] = percent;
}

/* Kernel-side table sizes, only echoed in the header's structure_size. */
static uint16_t fake_kernel_table_size(unsigned revision) {
    switch (revision) {
    case 3: return 264;
    case 4: return 368;
    case 5: return 440;
    case 6: return 1448;
    case 7: return 2032;
    default: return 4576;
    }
}

/* Newest table content revision a library of this public layout knows. */
static unsigned fake_layout_max_revision(unsigned layout) {
    switch (layout) {
    case 96: return 3;
    case 424: return 5;
    case 1832: return 6;
    case 2368: return 7;
    case 4544: return 8;
    default: return 9;
    }
}

/* 96, 424, 1832, 2368, 4544: the known releases. Any size above 4544 and below
 * 8192 emulates a future release: the 1.8 struct followed by new all-ones
 * fields, knowing tables up to 1.9. */
static int fake_layout_valid(unsigned size) {
    return size == 96 || size == 424 || size == 1832 || size == 2368 || (size >= 4544 && size < 8192);
}

/* Fill the xcp_stats of whichever public layout, through a stride. */
static void fake_fill_xcp(unsigned char* base, size_t stride, size_t acc_offset, const struct fake_table* t) {
    for (unsigned p = 0; p < t->num_partition; ++p) {
        unsigned char* xcp = base + p * stride;
        for (unsigned x = 0; x < t->xcc_per_partition; ++x) {
            unsigned xcd = p * t->xcc_per_partition + x;
            uint32_t inst = (uint32_t)(t->xcd_busy[xcd] + 0.5);
            memcpy(xcp + 4 * x, &inst, sizeof inst);
            memcpy(xcp + acc_offset + 8 * x, &t->busy_acc[xcd], sizeof t->busy_acc[xcd]);
        }
    }
}

/* The table of `t` as a library of public layout `layout` writes it into
 * `out` (exactly `layout` bytes). The caller has checked that the release
 * knows the table's revision. */
static void fake_table_fill(void* out, unsigned layout, struct fake_table* t, const struct fake_sensors* s) {
    /* Build the largest layout, then hand out the emulated release's prefix:
     * everything up to xcp_stats is identical in all four layouts. */
    static union {
        struct public_v15 v15;
        struct public_v16 v16;
        struct public_v17 v17;
        struct public_v18 v18;
        unsigned char future[8192];
    } buffer;
    fake_table_catch_up(t);
    memset(&buffer, 0xFF, sizeof(buffer));  /* all-ones: no data */
    struct public_v15* m = &buffer.v15;
    unsigned rev = t->revision;
    m->common_header.structure_size = fake_kernel_table_size(rev);
    m->common_header.format_revision = 1;
    m->common_header.content_revision = (uint8_t)rev;
    m->temperature_hotspot = (uint16_t)s->temp_c;
    m->temperature_mem = (uint16_t)s->mem_temp_c;
    m->system_clock_counter = (uint64_t)fake_monotonic_ns();
    m->firmware_timestamp = t->fw_ticks * (t->fw_period_ns ? t->fw_period_ns : 1000000ULL) / 10;
    m->current_uclk = (uint16_t)s->mclk_mhz;
    double busy = 0;
    unsigned nxcd = t->num_partition * t->xcc_per_partition;
    for (unsigned x = 0; x < nxcd; ++x) busy += t->xcd_busy[x];
    m->average_gfx_activity = (uint16_t)(nxcd ? busy / nxcd + 0.5 : 0);
    if (t->umc_pct >= 0) m->average_umc_activity = (uint16_t)(t->umc_pct + 0.5);
    if (rev < 4) {
        m->temperature_edge = (uint16_t)s->temp_c;
        m->average_socket_power = (uint16_t)s->power_w;
        m->current_gfxclk = (uint16_t)s->sclk_mhz;
    } else {
        m->current_socket_power = (uint16_t)s->power_w;
        for (unsigned x = 0; x < nxcd; ++x) m->current_gfxclks[x] = (uint16_t)s->sclk_mhz;
    }
    if (rev <= 5) {
        m->throttle_status = (uint32_t)t->throttle_mask;
        m->indep_throttle_status = t->throttle_mask;
    }
    if (layout == 96 && rev >= 2) m->system_clock_counter = m->firmware_timestamp * 10;
    if (rev >= 6 && layout >= 1832) {
        /* The tail fields before xcp_stats sit at the same offsets in 1.6..1.8. */
        struct public_v16* m16 = &buffer.v16;
        m16->accumulation_counter = t->fw_ticks;
        m16->ppt_residency_acc = (uint64_t)t->ppt_acc;
        m16->socket_thm_residency_acc = (uint64_t)t->thm_acc;
        m16->num_partition = (uint16_t)t->num_partition;
        if (layout == 1832)
            fake_fill_xcp((unsigned char*)buffer.v16.xcp_stats, sizeof(struct xcp_v16), 104, t);
        else if (layout == 2368)
            fake_fill_xcp((unsigned char*)buffer.v17.xcp_stats, sizeof(struct xcp_v17), 104, t);
        else
            fake_fill_xcp((unsigned char*)buffer.v18.xcp_stats, sizeof(struct xcp_v18), 120, t);
    }
    memcpy(out, &buffer, layout);
}

#endif
