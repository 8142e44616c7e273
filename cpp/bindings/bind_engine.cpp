// The Engine. Calls that wait on the engine's threads (start, stop, latest)
// release the GIL: those threads never take it, so waiting for them while
// holding it is what would deadlock (pybind11#1446).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <string_view>
#include <tuple>

#include "cuagent/engine.hpp"
#include "cuagent/platform.hpp"
#include "window_dict.hpp"
#include "registration.hpp"

namespace py = pybind11;
using namespace cuagent;

namespace {

py::dict stats_to_dict(const EngineStats& s) {
    py::list devices;
    for (const auto& d : s.devices) {
        py::dict dd;
        dd["samples"] = d.samples;
        dd["drops"] = d.drops;
        dd["read_errors"] = d.read_errors;
        dd["windows"] = d.windows;
        dd["windows_missed"] = d.windows_missed;
        dd["late_samples"] = d.late_samples;
        dd["skipped_reads"] = d.skipped_reads;
        dd["lost"] = d.lost;
        dd["own_thread"] = d.own_thread;
        devices.append(dd);
    }
    py::dict out;
    out["running"] = s.running;
    out["rate_hz"] = s.rate_hz;
    out["target_rate_hz"] = s.target_rate_hz;
    out["achieved_rate_hz"] = s.achieved_rate_hz;
    out["elapsed_s"] = s.elapsed_s;
    out["ticks"] = s.ticks;
    out["skipped_ticks"] = s.skipped_ticks;
    out["samples"] = s.samples;
    out["drops"] = s.drops;
    out["read_errors"] = s.read_errors;
    out["events_dropped"] = s.events_dropped;
    out["jitter_p50_ns"] = s.jitter_p50_ns;
    out["jitter_p90_ns"] = s.jitter_p90_ns;
    out["jitter_p99_ns"] = s.jitter_p99_ns;
    out["jitter_max_ns"] = s.jitter_max_ns;
    out["devices"] = devices;
    return out;
}

}  // namespace

void register_engine(py::module_& m) {
    py::class_<StateThresholds>(m, "StateThresholds")
        .def(py::init([](float idle_active, float saturated_occupancy, float thrashing_active,
                         float thrashing_mem_stall, float hysteresis) {
                 return StateThresholds{idle_active, saturated_occupancy, thrashing_active,
                                        thrashing_mem_stall, hysteresis};
             }),
             py::arg("idle_active") = 0.05f, py::arg("saturated_occupancy") = 0.9f,
             py::arg("thrashing_active") = 0.5f, py::arg("thrashing_mem_stall") = 0.6f,
             py::arg("hysteresis") = 0.05f)
        .def_readwrite("idle_active", &StateThresholds::idle_active)
        .def_readwrite("saturated_occupancy", &StateThresholds::saturated_occupancy)
        .def_readwrite("thrashing_active", &StateThresholds::thrashing_active)
        .def_readwrite("thrashing_mem_stall", &StateThresholds::thrashing_mem_stall)
        .def_readwrite("hysteresis", &StateThresholds::hysteresis);

    m.def("platform", [] { return std::string(platform::name()); },
          "The OS layer this build uses: 'linux' (eventfd, clock_nanosleep, timer slack) or 'posix'.");

    m.def("next_unit_state", &next_unit_state, py::arg("current"), py::arg("active"),
          py::arg("occupancy"), py::arg("mem_stall"), py::arg("thresholds"),
          "The state machine of one element (exposed so tests can check it directly).");

    py::class_<Engine>(m, "Engine")
        .def(py::init([](std::shared_ptr<Driver> driver, double rate_hz, std::int64_t window_ns,
                         std::size_t ring_capacity, const StateThresholds& thresholds,
                         const std::vector<std::tuple<std::size_t, std::shared_ptr<Driver>, std::size_t>>& sources) {
                 EngineConfig config;
                 config.rate_hz = rate_hz;
                 config.window_ns = window_ns;
                 config.ring_capacity = ring_capacity;
                 config.thresholds = thresholds;
                 // ExtraSource: (engine device, driver, that driver's device index).
                 std::vector<ExtraSource> extra;
                 for (const auto& [device, source, index] : sources) extra.push_back({device, source, index});
                 return std::make_unique<Engine>(std::move(driver), config, std::move(extra));
             }),
             py::arg("driver"), py::arg("rate_hz"), py::arg("window_ns"),
             py::arg("ring_capacity") = 0, py::arg("thresholds") = StateThresholds{},
             py::arg("sources") = std::vector<std::tuple<std::size_t, std::shared_ptr<Driver>, std::size_t>>{})
        .def("start", &Engine::start, py::call_guard<py::gil_scoped_release>())
        .def("stop", &Engine::stop, py::call_guard<py::gil_scoped_release>())
        .def_property_readonly("running", &Engine::running)
        .def_property_readonly("device_count", &Engine::device_count)
        .def_property_readonly("ring_capacity", [](const Engine& e) { return e.config().ring_capacity; })
        .def("device", [](const Engine& e, std::size_t i) {
                 if (i >= e.device_count()) throw py::index_error("no device " + std::to_string(i));
                 return e.device(i);
             })
        .def_property_readonly("window_fd", &Engine::window_fd,
                               "descriptor readable when a window finishes (drain_window_fd() re-arms it)")
        .def("drain_window_fd", &Engine::drain_window_fd, "Make window_fd unreadable until the next window.")
        .def_property_readonly("backend", [](const Engine& e) { return e.driver().name(); })
        .def("latest",
             [](Engine& e, std::size_t i) -> py::object {
                 if (i >= e.device_count()) throw py::index_error("no device " + std::to_string(i));
                 WindowResult window;
                 bool found;
                 {
                     // The copy only contends with other readers, never the engine's threads.
                     py::gil_scoped_release release;
                     found = e.latest(i, window);
                 }
                 if (!found) return py::none();
                 return window_to_dict(e.device(i), e.plan(i), window, e.realtime_offset_ns());
             },
             py::arg("device"), "Latest finished window of a device as a dict, or None.")
        .def("latest_states",
             [](Engine& e, const std::vector<std::int64_t>& newer_than_ns, const std::vector<py::bytes>& extras,
                const std::vector<std::uint32_t>& extra_entries) -> py::list {
                 const std::size_t n = e.device_count();
                 if (newer_than_ns.size() != n || extras.size() != n || extra_entries.size() != n)
                     throw py::value_error("latest_states needs one newer_than_ns, extras and extra_entries per device (" +
                                           std::to_string(n) + ")");
                 // The bytes objects are immutable and held by the caller: readable without the GIL.
                 std::vector<std::string_view> tails(n);
                 for (std::size_t i = 0; i < n; ++i) {
                     char* data = nullptr;
                     py::ssize_t size = 0;
                     PYBIND11_BYTES_AS_STRING_AND_SIZE(extras[i].ptr(), &data, &size);
                     tails[i] = std::string_view(data, static_cast<std::size_t>(size));
                 }
                 thread_local std::vector<std::string> bodies;  // reused: a body is a few KB
                 bodies.resize(n);
                 std::vector<WindowStamp> stamps(n);
                 std::vector<char> found(n);
                 {
                     py::gil_scoped_release release;  // contends only with other readers
                     for (std::size_t i = 0; i < n; ++i) {
                         bodies[i].clear();
                         found[i] = e.latest_state(i, newer_than_ns[i], tails[i], extra_entries[i], stamps[i], bodies[i]);
                     }
                 }
                 py::list out(n);
                 for (std::size_t i = 0; i < n; ++i) {
                     if (!found[i]) {
                         out[i] = py::none();
                         continue;
                     }
                     const WindowStamp& s = stamps[i];
                     py::object body = bodies[i].empty() ? py::object(py::none()) : py::object(py::bytes(bodies[i]));
                     out[i] = py::make_tuple(s.seq, s.t_ns, s.window_ns, s.windows_missed, body);
                 }
                 return out;
             },
             py::arg("newer_than_ns"), py::arg("extras"), py::arg("extra_entries"),
             "Per device, (seq, t_ns, window_ns, windows_missed, body) of its latest finished window, or None "
             "before the first: body is its state message body (msgpack) with extra_entries[i] packed key/value "
             "pairs extras[i] appended, when the window ended after newer_than_ns[i] (Unix ns), else None.")
        .def("summary_records",
             [](Engine& e, std::int64_t now_ns, const std::vector<bool>& lost) {
                 std::string out;
                 {
                     py::gil_scoped_release release;  // contends only with other readers
                     e.summary_records(now_ns, lost, out);
                 }
                 return py::bytes(out);
             },
             py::arg("now_ns"), py::arg("lost"),
             "The node summary's records (layout 1, 47 bytes per device) at now_ns (Unix ns), from the windows "
             "latest_states last took; lost[i]: device i's status is lost.")
        .def("stats", [](const Engine& e) {
                 EngineStats s;
                 {
                     py::gil_scoped_release release;  // may wait for a concurrent start/stop
                     s = e.stats();
                 }
                 return stats_to_dict(s);
             })
        .def("drain_events", [](Engine& e) {
                 std::vector<EngineEvent> events;
                 e.drain_events(events);
                 py::list out;
                 for (const auto& ev : events) {
                     out.append(py::make_tuple(event_type_name(ev.type), ev.device,
                                               ev.t_ns + e.realtime_offset_ns(),
                                               py::str(std::string(ev.detail))));
                 }
                 return out;
             });
}

CUAGENT_REGISTER_BINDING(register_engine, 10)
