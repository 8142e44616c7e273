// The nvml driver's factory and the slow-path helpers around it (SM grouping,
// the layout probe). Driver construction dlopens and queries
// NVML (and may run the SM probe): it releases the GIL, touching no Python.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <limits>

#include "cuagent/drivers/nvml.hpp"
#include "cuagent/drivers/sm_layout.hpp"
#include "cuagent/sample_layout.hpp"
#include "registration.hpp"

namespace py = pybind11;
using namespace cuagent;

namespace {

py::dict layout_to_dict(const SmLayout& l) {
    py::dict d;
    d["units"] = l.units;
    d["gpc"] = l.gpc;
    d["tpc"] = l.tpc;
    d["gpcs"] = l.gpcs;
    d["tpcs"] = l.tpcs;
    d["gpc_max_cluster"] = l.gpc_max_cluster;
    d["notes"] = l.notes;
    return d;
}

}  // namespace

void register_nvml(py::module_& m) {
    m.def(
        "make_nvml_driver",
        [](const std::string& library, const std::vector<std::uint32_t>& devices, bool gpm, bool probe_layout,
           const std::string& cuda_library, const std::string& probe_cache_dir, std::uint32_t unsupported_limit) {
            NvmlOptions o;
            o.library = library;
            o.devices = devices;
            o.gpm = gpm;
            o.probe_layout = probe_layout;
            o.cuda_library = cuda_library;
            o.probe_cache_dir = probe_cache_dir;
            o.unsupported_limit = unsupported_limit;
            std::vector<std::string> notes;
            std::unique_ptr<Driver> driver;
            {
                py::gil_scoped_release release;  // dlopen, NVML queries, the probe: no Python touched
                driver = make_nvml_driver(o, &notes);
            }
            return py::make_tuple(std::shared_ptr<Driver>(std::move(driver)), notes);
        },
        py::arg("library") = "libnvidia-ml.so.1", py::arg("devices") = std::vector<std::uint32_t>{},
        py::arg("gpm") = true, py::arg("probe_layout") = false, py::arg("cuda_library") = "libcuda.so.1",
        py::arg("probe_cache_dir") = "", py::arg("unsupported_limit") = 3,
        "Open libnvidia-ml and describe its devices. Returns (driver, notes).");

    m.def("nvidia_sm_count_for_model", &nvidia_sm_count_for_model, py::arg("model"));
    m.def("nvidia_sm_count_from_cores", &nvidia_sm_count_from_cores, py::arg("cores"), py::arg("major"),
          py::arg("minor"));


    m.def(
        "group_sms",
        [](std::uint32_t units, const std::vector<std::pair<std::uint32_t, std::vector<std::uint16_t>>>& obs) {
            std::vector<ClusterObservation> observations;
            observations.reserve(obs.size());
            for (const auto& [size, sms] : obs) observations.push_back({size, sms});
            return layout_to_dict(group_sms(units, observations));
        },
        py::arg("units"), py::arg("observations"),
        "Group SMs from [(cluster_size, [sm, ...]), ...] co-residency observations.");

    m.def(
        "probe_sm_layout",
        [](const std::string& pci_bus_id, const std::string& cuda_library, std::uint32_t launches_per_size) {
            SmProbeOptions o;
            o.cuda_library = cuda_library;
            o.launches_per_size = launches_per_size;
            SmLayout layout;
            std::string why;
            bool ok;
            {
                py::gil_scoped_release release;  // GPU work, no Python
                ok = probe_sm_layout(pci_bus_id, o, layout, why);
            }
            return py::make_tuple(ok ? py::object(layout_to_dict(layout)) : py::object(py::none()), why);
        },
        py::arg("pci_bus_id"), py::arg("cuda_library") = "libcuda.so.1", py::arg("launches_per_size") = 50,
        "Run the SM layout probe on one device: (layout dict or None, reason when None).");
}

CUAGENT_REGISTER_BINDING(register_nvml, 50)
