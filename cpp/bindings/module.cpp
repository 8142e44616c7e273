// cuagent._core: the compiled core. Each area binds itself in its own bind_<area>.cpp and
// registers there (registration.hpp); this file only calls them, so adding a backend's
// binding never edits it.
#include <pybind11/pybind11.h>

#include "registration.hpp"

PYBIND11_MODULE(_core, m) {
    m.doc() = "cuagent's compiled core: drivers, sampler, lock-free aggregation (private; use cuagent)";
    cuagent::bindings::register_all(m);
}
