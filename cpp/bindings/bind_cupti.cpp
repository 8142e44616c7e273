// The CUPTI PM-sampling source: its factory, the operator's pause/resume and
// status, its events, and the offline checks the tests run on the real host
// library. Construction dlopens libcupti and talks to the driver: GIL released.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "cuagent/drivers/cupti.hpp"
#include "registration.hpp"

namespace py = pybind11;
using namespace cuagent;

void register_cupti(py::module_& m) {
    py::class_<CuptiSource, Driver, std::shared_ptr<CuptiSource>>(m, "CuptiSource")
        .def("pause", &CuptiSource::pause, py::arg("reason") = "", py::call_guard<py::gil_scoped_release>())
        .def("resume", &CuptiSource::resume, py::call_guard<py::gil_scoped_release>())
        .def_property_readonly("paused", &CuptiSource::paused)
        .def_property_readonly("library_path", &CuptiSource::library_path)
        .def_property_readonly("nvperf_host_path", &CuptiSource::nvperf_host_path)
        .def_property_readonly("decode_cpu_ns", &CuptiSource::decode_cpu_ns)
        .def("status", [](const CuptiSource& s) {
            py::list out;
            for (const auto& d : s.status()) {
                py::dict x;
                x["state"] = d.state;
                x["reason"] = d.reason;
                x["chip"] = d.chip;
                x["samples"] = d.samples;
                x["late"] = d.late;
                x["dropped"] = d.dropped;
                x["overflows"] = d.overflows;
                x["data_full"] = d.data_full;
                x["decode_calls"] = d.decode_calls;
                x["library_ns"] = d.library_ns;
                out.append(x);
            }
            return out;
        })
        .def("drain_events", [](CuptiSource& s) {
            py::list out;
            for (const auto& e : s.drain_events()) out.append(py::make_tuple(e.device, e.kind, e.reason));
            return out;
        });

    m.def(
        "make_cupti_source",
        [](const std::vector<std::string>& library, const std::vector<std::string>& python_paths,
           const std::vector<std::uint32_t>& devices, double rate_hz, std::int64_t decode_interval_ns,
           std::int64_t retry_min_ns, std::int64_t retry_max_ns, bool start_paused) {
            CuptiOptions o;
            o.library = library;
            o.python_paths = python_paths;
            o.devices = devices;
            o.rate_hz = rate_hz;
            o.decode_interval_ns = decode_interval_ns;
            o.retry_min_ns = retry_min_ns;
            o.retry_max_ns = retry_max_ns;
            o.start_paused = start_paused;
            py::gil_scoped_release release;
            return make_cupti_source(o);
        },
        py::arg("library") = std::vector<std::string>{}, py::arg("python_paths") = std::vector<std::string>{},
        py::arg("devices") = std::vector<std::uint32_t>{0}, py::arg("rate_hz") = 1000.0,
        py::arg("decode_interval_ns") = 100'000'000, py::arg("retry_min_ns") = 1'000'000'000,
        py::arg("retry_max_ns") = 60'000'000'000, py::arg("start_paused") = false,
        "Open libcupti and start PM sampling of `devices` (CUDA indices) on a decode thread of its own; an "
        "Engine given it as a source tells it its window grid.");

    m.def(
        "cupti_offline_check",
        [](const std::vector<std::string>& library, const std::string& chip) {
            CuptiOfflineReport r;
            {
                py::gil_scoped_release release;
                r = cupti_offline_check(library, chip);
            }
            py::dict out;
            out["library"] = r.library;
            out["metrics"] = r.metrics;
            out["passes"] = r.passes;
            out["error"] = r.error;
            return out;
        },
        py::arg("library"), py::arg("chip"),
        "Through the source's own config code: each metric accepted for `chip`, and the passes of the set.");
    m.def("cupti_metric_names", &cupti_metric_names);
    m.def("cupti_struct_sizes", &cupti_struct_sizes);
}

CUAGENT_REGISTER_BINDING(register_cupti, 70)
