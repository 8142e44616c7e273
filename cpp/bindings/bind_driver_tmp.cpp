// TEMPORARY (branch mock only): the Driver holder type, which main will define
// in bind_engine.cpp. Delete on merging main.
#include <memory>

#include <pybind11/pybind11.h>

#include "cuagent/driver.hpp"

namespace py = pybind11;

void register_driver_tmp(py::module_& m) {
    py::class_<cuagent::Driver, std::shared_ptr<cuagent::Driver>>(m, "Driver")
        .def_property_readonly("name", &cuagent::Driver::name)
        .def("device_count", &cuagent::Driver::device_count);
}
