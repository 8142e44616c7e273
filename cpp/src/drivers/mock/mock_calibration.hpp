// Every number the mock's device-level model is calibrated with, in one place.
//
// Source of the H100 figures: tests/data/h100-nvml-trace.json (a copy of the measured trace), an H100 80GB
// HBM3 (driver 580.159.04) read through NVML/GPM every 100 ms while idle, while
// a second process ran a bf16 8192^3 matmul loop, and while cooling down:
//   idle        76.4 W at 345 MHz, 51 C, throttle mask 1 (GPU idle), 480 MiB used
//   matmul      sm_active 0.92-0.95, tensor_active 0.87-0.92, dram_active 0.20-0.24,
//               sm_occupancy 0.13-0.14, power pinned at the 700 W cap with the SM
//               clock pulled to 1.41-1.56 GHz (mean ~1.48, 15 MHz bins), mask 4
//               (software power cap); temp 67 -> 75 C over 6 s and still rising
//   cool-down   clocks back at 1980 MHz with nothing resident (142 W, mask 0) for
//               about 2 s, then down to 345 MHz and 78 W; reported power falls
//               linearly over ~1 s at each step (NVML reports a ~1 s average);
//               temp drops ~14 C at once, then ~5 C over 3 s (two thermal poles)
// The other presets have no trace; their figures are plausible datasheet-level
// values (TDP, clocks, memory), marked as such, derived with the same model.
#pragma once

#include <cstdint>

namespace cuagent::mock {

struct PowerCalibration {
    // Power: P = P_static(f) + D * (f / f_max)^clock_exponent, where
    // P_static is linear between idle_w (at f_idle) and static_fmax_w (at
    // f_max), and D is the dynamic power the current load would draw at f_max.
    double idle_w;
    double static_fmax_w;
    double cap_w;
    double clock_exponent;
    // Dynamic watts at f_max per unit of device-mean load (fraction of units
    // active, mean tensor / issue activity, DRAM bandwidth share).
    double k_active_w;
    double k_tensor_w;
    double k_issue_w;
    double k_dram_w;
    // Clocks (Hz).
    double f_idle_hz;   // parked clock when idle
    double f_floor_hz;  // lowest clock the power-cap controller pulls to
    double f_max_hz;    // boost clock
    double f_step_hz;   // clock bin
    double mem_clock_hz;
    double idle_hold_s;     // boost clock held this long after the last work
    double load_smooth_s;   // the cap controller's view of load (lag)
    double power_report_s;  // reported power is a boxcar average over this
    // Temperature: T = temp_idle + r_fast*(Pf - idle_w) + r_slow*(Ps - idle_w)
    // with Pf, Ps first-order lags of the drawn power (die, then heat sink).
    double temp_idle_c;
    double r_fast_c_per_w;
    double tau_fast_s;
    double r_slow_c_per_w;
    double tau_slow_s;
    std::uint64_t mem_idle_bytes;  // driver/context memory with nothing running
};

// NVML clocks_event_reasons bits (the mock reports NVIDIA's encoding for every
// preset and says so in the counter's help text).
inline constexpr std::uint32_t kThrottleGpuIdle = 0x1;
inline constexpr std::uint32_t kThrottleSwPowerCap = 0x4;

// H100 SXM, fitted to the trace above:
// - idle_w 76, static_fmax_w 142: the idle and cool-down plateaus.
// - k_*: chosen so the matmul mix (active .93, tensor .90, issue .28, dram .23)
//   wants D ~1180 W at 1980 MHz; the 700 W cap then settles the clock at
//   ~1.48-1.50 GHz, the trace's mean.
// - r_fast 0.0256 C/W (~16 C step for +624 W, seen before the first loaded
//   row and again at cool-down: 75 -> 61), r_slow 0.0265 C/W with tau 10 s
//   (67 -> 75 over 6.5 s loaded, 61 -> 56 over 3 s after).
inline constexpr PowerCalibration kH100Power{
    /*idle_w*/ 76.4, /*static_fmax_w*/ 142.0, /*cap_w*/ 700.0, /*clock_exponent*/ 2.5,
    /*k_active_w*/ 180.0, /*k_tensor_w*/ 1020.0, /*k_issue_w*/ 150.0, /*k_dram_w*/ 250.0,
    /*f_idle_hz*/ 345e6, /*f_floor_hz*/ 1005e6, /*f_max_hz*/ 1980e6, /*f_step_hz*/ 15e6,
    /*mem_clock_hz*/ 2619e6,
    /*idle_hold_s*/ 2.0, /*load_smooth_s*/ 0.005, /*power_report_s*/ 1.0,
    /*temp_idle_c*/ 51.0, /*r_fast_c_per_w*/ 0.0256, /*tau_fast_s*/ 0.2,
    /*r_slow_c_per_w*/ 0.0265, /*tau_slow_s*/ 10.0,
    /*mem_idle_bytes*/ 503316480ull};

// A100 SXM4 80GB (not traced): 400 W TDP, 1410 MHz boost, 210 MHz idle,
// HBM2e at 1593 MHz; dynamic coefficients scaled from the H100 by TDP.
inline constexpr PowerCalibration kA100Power{
    55.0, 90.0, 400.0, 2.5,
    105.0, 580.0, 85.0, 145.0,
    210e6, 765e6, 1410e6, 15e6,
    1593e6,
    2.0, 0.02, 1.0,
    40.0, 0.045, 0.2, 0.04, 10.0,
    440401920ull};

// MI300X OAM (not traced): 750 W TBP, 2100 MHz peak engine clock, HBM3 at
// 1300 MHz; dynamic coefficients scaled from the H100 by TBP and CU count.
inline constexpr PowerCalibration kMI300XPower{
    140.0, 220.0, 750.0, 2.5,
    200.0, 1100.0, 160.0, 280.0,
    150e6, 1000e6, 2100e6, 15e6,
    1300e6,
    2.0, 0.02, 1.0,
    45.0, 0.024, 0.2, 0.025, 10.0,
    314572800ull};

}  // namespace cuagent::mock
