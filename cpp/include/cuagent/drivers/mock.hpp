// The mock driver: a discrete-event model of the hardware block scheduler
// (docs/ARCHITECTURE.md, "The mock GPU"). The only backend with true per-unit
// counters, used by developers without a GPU and by the test suite.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cuagent/driver.hpp"

namespace cuagent {

// Faults a mock device can be told to show, to exercise the failure paths.
struct MockFaults {
    double lost_at_s = -1.0;        // device falls off the bus this many seconds after
                                    // the first read (<0: never)
    double back_at_s = -1.0;        // ... and comes back at this time (<0: never), as a
                                    // reset device: idle, its scenario starting over
    double read_error_rate = 0.0;   // probability that one read fails (decided by a hash
                                    // of seed, device and read time: reproducible)
    double slow_read_every_s = 0.0; // every this many seconds one read stalls (0: never)
    double slow_read_ms = 0.0;      // ... for this long
};

struct MockDeviceSpec {
    std::string preset = "h100-sxm";  // "h100-sxm" | "a100-sxm" | "mi300x" | "generic"
    std::string scenario = "training";  // idle | training | inference | fragmented | thrashing | mig
    std::uint32_t units = 0;          // for "generic": the unit count
    MockFaults faults;
};

// Throws std::invalid_argument naming a bad preset, scenario or value.
std::unique_ptr<Driver> make_mock_driver(const std::vector<MockDeviceSpec>& devices,
                                         std::uint64_t seed);

// Names accepted by make_mock_driver, for error messages and --help.
std::vector<std::string> mock_presets();
std::vector<std::string> mock_scenarios();

}  // namespace cuagent
