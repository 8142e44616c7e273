// cuagent._core: the compiled core. Each area binds itself in its own file;
// this file only declares and calls them.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void register_topology(py::module_& m);
void register_engine(py::module_& m);
void register_aggregator(py::module_& m);
void register_driver_io(py::module_& m);
void register_mock(py::module_& m);
void register_nvml(py::module_& m);
void register_rocm_smi(py::module_& m);
void register_cupti(py::module_& m);

PYBIND11_MODULE(_core, m) {
    m.doc() = "cuagent's compiled core: drivers, sampler, lock-free aggregation (private; use cuagent)";
    register_topology(m);
    register_engine(m);
    register_aggregator(m);
    register_driver_io(m);
    register_mock(m);
    register_nvml(m);
    register_rocm_smi(m);
    register_cupti(m);
}
