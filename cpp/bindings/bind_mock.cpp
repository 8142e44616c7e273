// Python bindings of the mock driver: the factory, its names, and a helper the
// tests use to read a device at chosen timestamps without an engine.
#include <cmath>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "cuagent/drivers/mock.hpp"
#include "cuagent/sample_layout.hpp"
#include "registration.hpp"

namespace py = pybind11;
using cuagent::MockDeviceSpec;
using cuagent::MockFaults;

namespace {

const char* const kFaultKeys[] = {"lost_at_s", "back_at_s", "read_error_rate",
                                  "slow_read_every_s", "slow_read_ms"};

double& fault_field(MockFaults& f, const std::string& key) {
    if (key == "lost_at_s") return f.lost_at_s;
    if (key == "back_at_s") return f.back_at_s;
    if (key == "read_error_rate") return f.read_error_rate;
    if (key == "slow_read_every_s") return f.slow_read_every_s;
    return f.slow_read_ms;
}

bool is_fault_key(const std::string& key) {
    for (const char* k : kFaultKeys)
        if (key == k) return true;
    return false;
}

double as_seconds(const py::handle& v, const std::string& key, double none_value) {
    if (v.is_none()) return none_value;
    try {
        return v.cast<double>();
    } catch (const py::cast_error&) {
        throw py::value_error("mock device: " + key + " must be a number, got " +
                              py::repr(v).cast<std::string>());
    }
}

MockFaults faults_from_dict(const py::dict& d, MockFaults f = {}) {
    for (auto item : d) {
        const auto key = py::str(item.first).cast<std::string>();
        if (!is_fault_key(key))
            throw py::value_error("mock device: unknown fault option '" + key + "'");
        // None means "never" for the time-like options, "none" for the rest.
        const double none_value = (key == "lost_at_s" || key == "back_at_s") ? -1.0 : 0.0;
        fault_field(f, key) = as_seconds(item.second, key, none_value);
    }
    return f;
}

// A device spec from a bound MockDeviceSpec, or a dict with preset, scenario,
// units, faults (dict or MockFaults) and/or the fault options flat.
MockDeviceSpec spec_from(const py::handle& obj, std::size_t index) {
    if (py::isinstance<MockDeviceSpec>(obj)) return obj.cast<MockDeviceSpec>();
    if (!py::isinstance<py::dict>(obj))
        throw py::type_error("mock device " + std::to_string(index) +
                             ": expected a MockDeviceSpec or a dict, got " +
                             py::repr(obj).cast<std::string>());
    MockDeviceSpec spec;
    py::dict flat_faults;
    for (auto item : obj.cast<py::dict>()) {
        const auto key = py::str(item.first).cast<std::string>();
        const py::handle v = item.second;
        if (key == "preset") {
            spec.preset = py::str(v).cast<std::string>();
        } else if (key == "scenario") {
            spec.scenario = py::str(v).cast<std::string>();
        } else if (key == "units") {
            if (!v.is_none()) {
                const auto n = v.cast<long long>();
                if (n < 0 || n > std::numeric_limits<std::uint32_t>::max())
                    throw py::value_error("mock device " + std::to_string(index) +
                                          ": units must be positive, got " + std::to_string(n));
                spec.units = static_cast<std::uint32_t>(n);
            }
        } else if (key == "faults") {
            if (py::isinstance<MockFaults>(v)) spec.faults = v.cast<MockFaults>();
            else if (py::isinstance<py::dict>(v)) spec.faults = faults_from_dict(v.cast<py::dict>());
            else if (!v.is_none())
                throw py::type_error("mock device " + std::to_string(index) +
                                     ": faults must be a dict or MockFaults");
        } else if (is_fault_key(key)) {
            flat_faults[item.first] = v;
        } else {
            throw py::value_error("mock device " + std::to_string(index) + ": unknown option '" +
                                  key + "'");
        }
    }
    spec.faults = faults_from_dict(flat_faults, spec.faults);
    return spec;
}

}  // namespace

void register_mock(py::module_& m) {
    py::class_<MockFaults>(m, "MockFaults", "Faults a mock device injects (times from its first read)")
        .def(py::init([](double lost_at_s, double back_at_s, double read_error_rate,
                         double slow_read_every_s, double slow_read_ms) {
                 return MockFaults{lost_at_s, back_at_s, read_error_rate, slow_read_every_s,
                                   slow_read_ms};
             }),
             py::kw_only(), py::arg("lost_at_s") = -1.0, py::arg("back_at_s") = -1.0,
             py::arg("read_error_rate") = 0.0, py::arg("slow_read_every_s") = 0.0,
             py::arg("slow_read_ms") = 0.0)
        .def_readwrite("lost_at_s", &MockFaults::lost_at_s)
        .def_readwrite("back_at_s", &MockFaults::back_at_s)
        .def_readwrite("read_error_rate", &MockFaults::read_error_rate)
        .def_readwrite("slow_read_every_s", &MockFaults::slow_read_every_s)
        .def_readwrite("slow_read_ms", &MockFaults::slow_read_ms);

    py::class_<MockDeviceSpec>(m, "MockDeviceSpec", "One simulated device: preset, scenario, faults")
        .def(py::init([](std::string preset, std::string scenario, std::uint32_t units,
                         MockFaults faults) {
                 return MockDeviceSpec{std::move(preset), std::move(scenario), units, faults};
             }),
             py::arg("preset") = "h100-sxm", py::arg("scenario") = "training",
             py::arg("units") = 0, py::arg("faults") = MockFaults{})
        .def_readwrite("preset", &MockDeviceSpec::preset)
        .def_readwrite("scenario", &MockDeviceSpec::scenario)
        .def_readwrite("units", &MockDeviceSpec::units)
        .def_readwrite("faults", &MockDeviceSpec::faults);

    m.def(
        "make_mock_driver",
        [](const py::sequence& devices, std::uint64_t seed) {
            std::vector<MockDeviceSpec> specs;
            for (std::size_t i = 0; i < devices.size(); ++i) specs.push_back(spec_from(devices[i], i));
            // std::invalid_argument (bad preset/scenario/value) surfaces as ValueError.
            return std::shared_ptr<cuagent::Driver>(cuagent::make_mock_driver(specs, seed));
        },
        py::arg("devices"), py::arg("seed") = 0,
        "Build the mock driver: one simulated device per spec (MockDeviceSpec or dict).");
    m.def("mock_presets", &cuagent::mock_presets);
    m.def("mock_scenarios", &cuagent::mock_scenarios);
}

CUAGENT_REGISTER_BINDING(register_mock, 40)
