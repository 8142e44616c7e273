// Device descriptions and the Driver base, as plain read/write records: Python
// reads them to build DeviceTopology, and tests build their own to feed the
// aggregator harness.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "cuagent/driver.hpp"
#include "cuagent/topology.hpp"
#include "registration.hpp"

namespace py = pybind11;
using namespace cuagent;

void register_topology(py::module_& m) {
    py::enum_<Aggregation>(m, "Aggregation")
        .value("mean", Aggregation::Mean)
        .value("bit_or", Aggregation::BitOr)
        .value("last", Aggregation::Last);

    py::class_<CounterSpec>(m, "CounterSpec")
        .def(py::init<>())
        .def(py::init([](std::string name, std::string level, std::string unit, std::string help,
                         Aggregation aggregation, std::string rollup) {
                 return CounterSpec{std::move(name), std::move(level), std::move(unit),
                                    std::move(help), aggregation, std::move(rollup)};
             }),
             py::arg("name"), py::arg("level"), py::arg("unit"), py::arg("help") = "",
             py::arg("aggregation") = Aggregation::Mean, py::arg("rollup") = "")
        .def_readwrite("name", &CounterSpec::name)
        .def_readwrite("level", &CounterSpec::level)
        .def_readwrite("unit", &CounterSpec::unit)
        .def_readwrite("help", &CounterSpec::help)
        .def_readwrite("aggregation", &CounterSpec::aggregation)
        .def_readwrite("rollup", &CounterSpec::rollup);

    py::class_<Partition>(m, "Partition")
        .def(py::init<>())
        .def_readwrite("id", &Partition::id)
        .def_readwrite("kind", &Partition::kind)
        .def_readwrite("units", &Partition::units)
        .def_readwrite("unit_ids", &Partition::unit_ids)
        .def_readwrite("memory_bytes", &Partition::memory_bytes)
        .def_readwrite("profile", &Partition::profile);

    py::class_<Link>(m, "Link")
        .def(py::init<>())
        .def_readwrite("peer", &Link::peer)
        .def_readwrite("type", &Link::type)
        .def_readwrite("count", &Link::count)
        .def_readwrite("path", &Link::path);

    py::class_<DeviceDescription>(m, "DeviceDescription")
        .def(py::init<>())
        .def_readwrite("id", &DeviceDescription::id)
        .def_readwrite("index", &DeviceDescription::index)
        .def_readwrite("vendor", &DeviceDescription::vendor)
        .def_readwrite("model", &DeviceDescription::model)
        .def_readwrite("backend", &DeviceDescription::backend)
        .def_readwrite("unit_kind", &DeviceDescription::unit_kind)
        .def_readwrite("units", &DeviceDescription::units)
        .def_readwrite("levels", &DeviceDescription::levels)
        .def_readwrite("counts", &DeviceDescription::counts)
        .def_readwrite("layout", &DeviceDescription::layout)
        .def_readwrite("layout_source", &DeviceDescription::layout_source)
        .def_readwrite("partitions", &DeviceDescription::partitions)
        .def_readwrite("memory_bytes", &DeviceDescription::memory_bytes)
        .def_readwrite("pci", &DeviceDescription::pci)
        .def_readwrite("numa", &DeviceDescription::numa)
        .def_readwrite("counters", &DeviceDescription::counters)
        .def_readwrite("links", &DeviceDescription::links)
        .def("validate", &DeviceDescription::validate,
             "Raise ValueError naming the first inconsistency.");

    py::class_<Driver, std::shared_ptr<Driver>>(m, "Driver")
        .def_property_readonly("name", &Driver::name)
        .def_property_readonly("device_count", &Driver::device_count)
        .def("device", [](const Driver& d, std::size_t i) {
                 if (i >= d.device_count()) throw py::index_error("no device " + std::to_string(i));
                 return d.device(i);  // a copy: Python must not hold into the driver
             })
        .def("min_read_interval_ns", [](const Driver& d, std::size_t i) {
                 if (i >= d.device_count()) throw py::index_error("no device " + std::to_string(i));
                 return d.min_read_interval_ns(i);
             });
}

CUAGENT_REGISTER_BINDING(register_topology, 0)
