// Reading a driver outside an engine, for tests, tools and benchmarks: one
// read at a given time, or many reads timed in C++. Works on any backend. Must
// not be used on a driver an engine is sampling (read() is single-threaded).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "cuagent/clock.hpp"
#include "cuagent/driver.hpp"
#include "cuagent/sample_layout.hpp"
#include "registration.hpp"

namespace py = pybind11;
using namespace cuagent;

namespace {

const char* status_name(ReadStatus s) {
    switch (s) {
        case ReadStatus::Ok: return "ok";
        case ReadStatus::Error: return "error";
        case ReadStatus::Lost: return "lost";
    }
    return "unknown";
}

std::size_t checked_index(const Driver& driver, long long device) {
    if (device < 0 || static_cast<std::size_t>(device) >= driver.device_count())
        throw py::index_error("device index " + std::to_string(device) + " out of range (" +
                              std::to_string(driver.device_count()) + " devices)");
    return static_cast<std::size_t>(device);
}

py::tuple read_once(Driver& driver, long long device, std::int64_t t_ns) {
    const std::size_t index = checked_index(driver, device);
    const DeviceDescription& desc = driver.device(index);
    const SampleLayout layout(desc);
    std::vector<float> values(layout.values(), std::numeric_limits<float>::quiet_NaN());
    char detail[256] = {};
    ReadStatus status;
    {
        // The read may block (a slow-read fault, a vendor call); it touches no Python.
        py::gil_scoped_release release;
        status = driver.read(index, t_ns < 0 ? monotonic_ns() : t_ns, values.data(), detail, sizeof detail);
    }
    py::dict counters;
    for (std::size_t c = 0; c < layout.counters(); ++c) {
        const auto& slot = layout.slot(c);
        py::array_t<float> a(static_cast<py::ssize_t>(slot.elements));
        std::copy_n(values.data() + slot.offset, slot.elements, a.mutable_data());
        counters[py::str(desc.counters[c].name)] = a;
    }
    return py::make_tuple(status_name(status), counters, std::string(detail));
}

py::tuple time_reads(Driver& driver, long long device, std::size_t reads, std::int64_t step_ns) {
    const std::size_t index = checked_index(driver, device);
    const SampleLayout layout(driver.device(index));
    std::vector<float> values(layout.values());
    char detail[256];
    std::size_t ok = 0;
    std::int64_t elapsed = 0;
    {
        py::gil_scoped_release release;
        // Synthetic read times step_ns apart: the driver sees the cadence an
        // engine would read it at (GPM, for one, computes metrics on every read).
        std::int64_t t = monotonic_ns();
        const std::int64_t start = monotonic_ns();
        for (std::size_t i = 0; i < reads; ++i) {
            std::fill(values.begin(), values.end(), std::numeric_limits<float>::quiet_NaN());
            t += step_ns;
            ok += driver.read(index, t, values.data(), detail, sizeof detail) == ReadStatus::Ok;
        }
        elapsed = monotonic_ns() - start;
    }
    return py::make_tuple(elapsed, ok);
}

}  // namespace

void register_driver_io(py::module_& m) {
    m.def("driver_read", &read_once, py::arg("driver"), py::arg("device"), py::arg("t_ns") = -1,
          "One read() of a device at t_ns (the driver's CLOCK_MONOTONIC; <0: now), outside any "
          "engine. Returns (status, {counter: float32 array}, detail), status 'ok' | 'error' | "
          "'lost'. NaN: no value.");
    m.def("driver_time_reads", &time_reads, py::arg("driver"), py::arg("device"), py::arg("reads"),
          py::arg("step_ns") = 100'000'000,
          "Time `reads` back-to-back read() calls in C++, step_ns apart in the driver's clock: "
          "(elapsed_ns, ok_reads).");
}

CUAGENT_REGISTER_BINDING(register_driver_io, 30)
