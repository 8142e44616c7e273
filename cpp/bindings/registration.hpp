// Each bindings file registers its area here at load time, so adding an area (a new
// backend's bind_<name>.cpp) touches no other file: module.cpp calls them all.
//
//     void register_amdsmi(py::module_& m) { ... }
//     CUAGENT_REGISTER_BINDING(register_amdsmi, 100)
//
// `order` keeps the core's areas first (types a later area's signatures use must be
// registered before it): topology 0, engine 10, aggregator 20, driver I/O 30, the
// built-in drivers 40-60, any other backend 100 or more.
#pragma once

#include <pybind11/pybind11.h>

namespace cuagent::bindings {

using RegisterFn = void (*)(pybind11::module_&);

struct Registration {
    Registration(const char* name, int order, RegisterFn fn) noexcept;
};

// Calls every registered function by (order, name).
void register_all(pybind11::module_& m);

}  // namespace cuagent::bindings

#define CUAGENT_REGISTER_BINDING(fn, order) \
    static const ::cuagent::bindings::Registration cuagent_registration_##fn{#fn, (order), &(fn)};
