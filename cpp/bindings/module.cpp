// The private extension module cuagent._core: each area registers itself.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void register_driver_tmp(py::module_& m);  // TEMPORARY until main's bind_engine.cpp
void register_mock(py::module_& m);

PYBIND11_MODULE(_core, m) {
    m.doc() = "cuagent C++ core (private; use the cuagent package)";
    register_driver_tmp(m);
    register_mock(m);
}
