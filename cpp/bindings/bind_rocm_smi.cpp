// The rocm_smi driver factory, and two slow-path helpers that read a driver
// outside an engine (driver tests and bench/rocm_read.py).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <vector>

#include "cuagent/drivers/rocm_smi.hpp"
#include "cuagent/sample_layout.hpp"

namespace py = pybind11;
using namespace cuagent;

namespace {

const char* status_name(ReadStatus s) {
    switch (s) {
        case ReadStatus::Ok: return "ok";
        case ReadStatus::Error: return "error";
        case ReadStatus::Lost: return "lost";
    }
    return "unknown";
}

}  // namespace

void register_rocm_smi(py::module_& m) {
    m.def("make_rocm_smi_driver",
          [](const std::string& library, const std::string& kfd_root, const std::vector<std::string>& devices,
             std::int64_t min_read_interval_ns) -> std::shared_ptr<Driver> {
              RocmSmiOptions options;
              options.library = library;
              options.kfd_root = kfd_root;
              options.devices = devices;
              options.min_read_interval_ns = min_read_interval_ns;
              return std::shared_ptr<Driver>(make_rocm_smi_driver(options));
          },
          py::arg("library") = "", py::arg("kfd_root") = "/sys/class/kfd/kfd",
          py::arg("devices") = std::vector<std::string>{}, py::arg("min_read_interval_ns") = 10'000'000,
          "Open ROCm SMI and describe every AMD GPU (RuntimeError when the library is missing).");

    m.def("_driver_read",
          [](Driver& driver, std::size_t index, std::int64_t now_ns) {
              if (index >= driver.device_count()) throw py::index_error("no device " + std::to_string(index));
              const SampleLayout layout(driver.device(index));
              py::array_t<float> values(layout.values());
              float* out = values.mutable_data();
              std::fill(out, out + layout.values(), std::numeric_limits<float>::quiet_NaN());
              char detail[256] = {};
              ReadStatus status;
              {
                  py::gil_scoped_release release;  // the driver never touches Python
                  status = driver.read(index, now_ns, out, detail, sizeof detail);
              }
              return py::make_tuple(status_name(status), values, std::string(detail));
          },
          py::arg("driver"), py::arg("index"), py::arg("now_ns") = 0,
          "One read() outside an engine: (status, float32 sample, detail). Slow path, for tests.");

    m.def("_driver_read_cost_ns",
          [](Driver& driver, std::size_t index, std::size_t reads) {
              if (index >= driver.device_count()) throw py::index_error("no device " + std::to_string(index));
              const SampleLayout layout(driver.device(index));
              std::vector<float> sample(layout.values());
              char detail[256];
              py::gil_scoped_release release;
              const auto start = std::chrono::steady_clock::now();
              for (std::size_t i = 0; i < reads; ++i) {
                  std::fill(sample.begin(), sample.end(), std::numeric_limits<float>::quiet_NaN());
                  driver.read(index, 0, sample.data(), detail, sizeof detail);
              }
              const auto elapsed = std::chrono::steady_clock::now() - start;
              return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count()) /
                     static_cast<double>(reads ? reads : 1);
          },
          py::arg("driver"), py::arg("index"), py::arg("reads"),
          "Mean ns per read() of one device over `reads` reads, timed in C++ (benchmarks).");
}
