// A DeviceAggregator without an engine: tests feed it sample streams they
// generated and compare with a numpy reference; bench/ feeds it pre-generated
// samples at full speed.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "cuagent/aggregator.hpp"
#include "cuagent/state_encoder.hpp"
#include "cuagent/summary_record.hpp"
#include "window_dict.hpp"
#include "registration.hpp"

namespace py = pybind11;
using namespace cuagent;

namespace {

class AggregatorHarness {
public:
    AggregatorHarness(DeviceDescription device, const StateThresholds& thresholds,
                      std::int64_t window_ns, std::int64_t origin_ns)
        : device_(std::move(device)) {
        device_.validate();
        if (window_ns <= 0) throw std::invalid_argument("window_ns must be > 0");
        auto plan = std::make_shared<const AggregationPlan>(device_);
        aggregator_ = std::make_unique<DeviceAggregator>(device_, plan, thresholds, window_ns, origin_ns);
        encoder_ = std::make_unique<StateEncoder>(device_, plan);
        summary_ = std::make_unique<SummaryRecordWriter>(device_, plan);
    }

    std::uint32_t values() const { return aggregator_->plan().layout.values(); }

    void add(py::array_t<std::int64_t, py::array::c_style | py::array::forcecast> t_ns,
             py::array_t<float, py::array::c_style | py::array::forcecast> samples) {
        if (samples.ndim() != 2 || samples.shape(1) != static_cast<py::ssize_t>(values()))
            throw std::invalid_argument("samples must have shape (n, " + std::to_string(values()) + ")");
        if (t_ns.ndim() != 1 || t_ns.shape(0) != samples.shape(0))
            throw std::invalid_argument("t_ns must have one timestamp per sample");
        const std::int64_t* t = t_ns.data();
        const float* v = samples.data();
        const auto n = static_cast<std::size_t>(samples.shape(0));
        const std::size_t stride = values();
        // Only our own aggregator and the arrays (kept alive by the caller) are touched.
        py::gil_scoped_release release;
        for (std::size_t i = 0; i < n; ++i) aggregator_->add(t[i], v + i * stride);
    }

    void poll(std::int64_t now_ns, std::int64_t grace_ns) { aggregator_->poll(now_ns, grace_ns); }

    py::object latest() {
        auto& published = aggregator_->published();
        published.update();
        if (published.front().seq == 0) return py::none();
        return window_to_dict(device_, aggregator_->plan(), published.front(), 0);
    }

    // The state body the engine would publish for the latest window (Engine::latest_state).
    py::object latest_state(const py::bytes& extras, std::uint32_t extra_entries) {
        auto& published = aggregator_->published();
        published.update();
        if (published.front().seq == 0) return py::none();
        std::string body;
        encoder_->encode(published.front(), std::string_view(extras), extra_entries, body);
        return py::bytes(body);
    }

    // The device's node summary record (Engine::summary_records) at now_ns, window end at
    // t_end + realtime_offset_ns; no window yet: the record of a device without one.
    py::bytes summary_record(std::int64_t now_ns, bool lost, std::int64_t realtime_offset_ns) {
        auto& published = aggregator_->published();
        published.update();
        const WindowResult& front = published.front();
        std::string out;
        summary_->write(front.seq ? &front : nullptr, front.t_end_ns + realtime_offset_ns, now_ns, lost, out);
        return py::bytes(out);
    }

    std::uint64_t windows() const { return aggregator_->windows(); }

    py::list counter_slots() const {
        py::list out;
        const auto& layout = aggregator_->plan().layout;
        for (std::size_t c = 0; c < layout.counters(); ++c)
            out.append(py::make_tuple(device_.counters[c].name, layout.slot(c).offset, layout.slot(c).elements));
        return out;
    }

private:
    DeviceDescription device_;
    std::unique_ptr<DeviceAggregator> aggregator_;
    std::unique_ptr<StateEncoder> encoder_;
    std::unique_ptr<SummaryRecordWriter> summary_;
};

}  // namespace

void register_aggregator(py::module_& m) {
    py::class_<AggregatorHarness>(m, "AggregatorHarness")
        .def(py::init<DeviceDescription, const StateThresholds&, std::int64_t, std::int64_t>(),
             py::arg("device"), py::arg("thresholds"), py::arg("window_ns"), py::arg("origin_ns") = 0)
        .def_property_readonly("values", &AggregatorHarness::values,
                               "Floats per sample (the SampleLayout size).")
        .def("counter_slots", &AggregatorHarness::counter_slots,
             "(name, offset, elements) of each counter inside a sample.")
        .def("add", &AggregatorHarness::add, py::arg("t_ns"), py::arg("samples"))
        .def("poll", &AggregatorHarness::poll, py::arg("now_ns"), py::arg("grace_ns") = 0)
        .def("latest", &AggregatorHarness::latest)
        .def("latest_state", &AggregatorHarness::latest_state, py::arg("extras") = py::bytes(),
             py::arg("extra_entries") = 0,
             "The latest window's state body as the engine encodes it (msgpack), or None.")
        .def("summary_record", &AggregatorHarness::summary_record, py::arg("now_ns"), py::arg("lost") = false,
             py::arg("realtime_offset_ns") = 0,
             "The latest window's node summary record (47 bytes) as the engine writes it.")
        .def_property_readonly("windows", &AggregatorHarness::windows);
}

CUAGENT_REGISTER_BINDING(register_aggregator, 20)
