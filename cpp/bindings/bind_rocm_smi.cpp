// The rocm_smi driver factory.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "cuagent/drivers/rocm_smi.hpp"
#include "registration.hpp"

namespace py = pybind11;
using namespace cuagent;

void register_rocm_smi(py::module_& m) {
    m.def("make_rocm_smi_driver",
          [](const std::string& library, const std::string& kfd_root, const std::vector<std::string>& devices,
             std::int64_t min_read_interval_ns) -> std::shared_ptr<Driver> {
              const RocmSmiOptions options{{library, kfd_root, devices, min_read_interval_ns}};
              std::unique_ptr<Driver> driver;
              {
                  // dlopen, rsmi_init (which walks sysfs), KFD reads: no Python touched, and
                  // the agent's other threads go on meanwhile.
                  py::gil_scoped_release release;
                  driver = make_rocm_smi_driver(options);
              }
              return std::shared_ptr<Driver>(std::move(driver));
          },
          py::arg("library") = "", py::arg("kfd_root") = "/sys/class/kfd/kfd",
          py::arg("devices") = std::vector<std::string>{}, py::arg("min_read_interval_ns") = 10'000'000,
          "Open ROCm SMI and describe every AMD GPU (RuntimeError when the library is missing).");
}

CUAGENT_REGISTER_BINDING(register_rocm_smi, 60)
