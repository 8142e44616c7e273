// The amdsmi driver factory, its slow-path queries (processes, partition
// modes) and the ABI description the layout test checks. Construction dlopens
// and queries AMD SMI: it releases the GIL, touching no Python.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "cuagent/drivers/amdsmi.hpp"
#include "registration.hpp"

namespace py = pybind11;
using namespace cuagent;

void register_amdsmi(py::module_& m) {
    m.def(
        "make_amdsmi_driver",
        [](const std::string& library, const std::string& kfd_root, const std::vector<std::string>& devices,
           std::int64_t min_read_interval_ns, std::int64_t ecc_interval_ns) {
            const AmdSmiOptions o{{library, kfd_root, devices, min_read_interval_ns}, ecc_interval_ns};
            std::vector<std::string> notes;
            std::unique_ptr<Driver> driver;
            {
                py::gil_scoped_release release;  // dlopen, AMD SMI queries, KFD reads: no Python touched
                driver = make_amdsmi_driver(o, &notes);
            }
            return py::make_tuple(std::shared_ptr<Driver>(std::move(driver)), notes);
        },
        py::arg("library") = "", py::arg("kfd_root") = "/sys/class/kfd/kfd",
        py::arg("devices") = std::vector<std::string>{}, py::arg("min_read_interval_ns") = 10'000'000,
        py::arg("ecc_interval_ns") = 1'000'000'000,
        "Open AMD SMI and describe every AMD GPU. Returns (driver, notes); RuntimeError when the library is missing.");

    py::class_<AmdSmiSlowQueries>(m, "AmdSmiSlowQueries",
                                  "Processes and partition modes per device (the agent's slow path).")
        .def_property_readonly("devices", &AmdSmiSlowQueries::devices)
        .def("partitions", &AmdSmiSlowQueries::partitions, py::arg("index"),
             "Compute partitions (processor handles) of a device: 1 in SPX.")
        .def(
            "processes",
            [](AmdSmiSlowQueries& q, std::uint32_t index) {
                std::vector<AmdSmiProcess> list;
                std::string error;
                bool ok;
                {
                    py::gil_scoped_release release;
                    ok = q.processes(index, list, error);
                }
                if (!ok) throw std::runtime_error(error);
                py::list out;
                for (const auto& p : list) {
                    py::dict d;
                    d["pid"] = p.pid;
                    d["name"] = p.name;
                    d["vram_bytes"] = p.vram_bytes;
                    d["gfx_ns"] = p.gfx_ns;
                    out.append(d);
                }
                return out;
            },
            py::arg("index"),
            "[{pid, name, vram_bytes, gfx_ns}] on a device (physical index); RuntimeError when it cannot list them.")
        .def(
            "partition_modes",
            [](AmdSmiSlowQueries& q, std::uint32_t index) {
                py::gil_scoped_release release;
                return q.partition_modes(index);
            },
            py::arg("index"), "(compute, memory) partition modes of a device, e.g. ('CPX', 'NPS4').");

    m.def(
        "make_amdsmi_slow_queries",
        [](const std::string& library, const std::string& kfd_root, const std::vector<std::string>& devices) {
            const AmdSmiOptions o{{library, kfd_root, devices, 0}, 0};
            py::gil_scoped_release release;
            return make_amdsmi_slow_queries(o);
        },
        py::arg("library") = "", py::arg("kfd_root") = "/sys/class/kfd/kfd",
        py::arg("devices") = std::vector<std::string>{},
        "The slow-path queries over the same devices (and library instance) as the driver.");

    m.def(
        "amdsmi_abi_fields",
        [] {
            py::list out;
            for (const auto& f : amdsmi_abi_fields()) out.append(py::make_tuple(f.type, f.field, f.offset, f.size));
            return out;
        },
        "[(type, field, offset, size)]: what the driver assumes of libamd_smi's struct layouts ('' field: the size).");
    m.def("amdsmi_abi_constants", &amdsmi_abi_constants, "[(amdsmi.h name, value)] the driver passes or tests for.");
    m.def(
        "amdsmi_abi_functions",
        [] {
            py::list out;
            for (const auto& f : amdsmi_abi_functions()) out.append(py::make_tuple(f.name, f.types));
            return out;
        },
        "[(name, [return type, argument types...])] of every function the driver looks up.");
}

CUAGENT_REGISTER_BINDING(register_amdsmi, 100)
