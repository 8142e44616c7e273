// The relay's native parts (cpp/include/cuagent/relay/) for cuagent.node.relay: the table of
// what a relay forwards, the forwarder on pyzmq's own sockets, and the readers that tests
// compare with cuagent.wire. Times are CLOCK_MONOTONIC ns, read here unless a test passes one.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuagent/clock.hpp"
#include "cuagent/relay/feed_message.hpp"
#include "cuagent/relay/forwarder.hpp"
#include "cuagent/relay/msgpack_scan.hpp"
#include "cuagent/relay/relay_table.hpp"
#include "cuagent/relay/zmq_abi.hpp"
#include "registration.hpp"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace cuagent;
using namespace cuagent::relay;

namespace {

// A bytes-like object's bytes, valid while `owner` is alive.
struct Bytes {
    py::buffer owner;
    py::buffer_info info;
    explicit Bytes(const py::handle& obj) : owner(py::reinterpret_borrow<py::buffer>(obj)), info(owner.request()) {
        if (info.ndim > 1 || (info.ndim == 1 && info.itemsize != 1 && info.strides[0] != info.itemsize))
            throw py::type_error("expected a contiguous bytes-like object");
    }
    FrameView view() const {
        return {static_cast<const std::uint8_t*>(info.ptr), static_cast<std::size_t>(info.size * info.itemsize)};
    }
};

std::int64_t now_or(std::optional<std::int64_t> now_ns) { return now_ns ? *now_ns : monotonic_ns(); }

py::bytes as_bytes(FrameView v) { return py::bytes(reinterpret_cast<const char*>(v.data), v.size); }

// A message's frames (bytes-like), for ingest and merge: the first three are read.
struct Frames {
    std::vector<Bytes> held;
    FeedFrames frames;
    explicit Frames(const py::sequence& seq) {
        frames.count = static_cast<std::size_t>(py::len(seq));
        FrameView* views[3] = {&frames.topic, &frames.header, &frames.body};
        for (std::size_t i = 0; i < frames.count && i < 3; ++i) {
            held.emplace_back(seq[i]);
            *views[i] = held.back().view();
        }
    }
};

py::object snapshot(const RelayTable& table, const std::string& prefix, std::optional<std::int64_t> now_ns) {
    SnapshotView view;
    {
        // The copy holds the table's lock (the forwarding thread waits for it); checking the
        // copied bodies needs nothing else: neither needs Python.
        py::gil_scoped_release release;
        view = table.snapshot(prefix, now_or(now_ns));
    }
    py::list messages;
    const char* data = view.bytes.data();
    for (const auto& m : view.messages)
        messages.append(py::make_tuple(py::bytes(m.topic), py::bytes(data + m.at, m.header_size),
                                       py::bytes(data + m.at + m.header_size, m.body_size)));
    py::dict seqs, epochs, silent;
    for (const auto& [topic, seq] : view.seqs) seqs[py::str(topic)] = seq;
    for (const auto& [node, epoch] : view.epochs) epochs[py::str(node)] = epoch;
    for (const auto& [node, s] : view.silent_s) silent[py::str(node)] = s;
    return py::make_tuple(messages, seqs, epochs, silent, py::cast(view.stale), view.refused);
}

py::dict table_stats(const RelayTable& table) {
    const TableStats s = table.stats();
    py::dict d;
    d["messages"] = s.messages;
    d["malformed"] = s.malformed;
    d["duplicates"] = s.duplicates;
    d["gaps"] = s.gaps;
    d["restarts"] = s.restarts;
    d["untracked"] = s.untracked;
    d["summaries_skipped"] = s.summaries_skipped;
    d["unreadable_bodies"] = s.unreadable_bodies;
    d["merged"] = s.merged;
    d["forgotten"] = s.forgotten;
    d["topics"] = s.topics;
    d["nodes"] = s.nodes;
    return d;
}

void register_relay(py::module_& m) {
    py::class_<RelayTable>(m, "RelayTable",
                           "What a relay keeps of the feed it forwards: latest frames and seqs per topic, epoch "
                           "and last hb per node (PROTOCOL.md §7). Thread-safe.")
        .def(py::init<std::int64_t, std::string, std::size_t>(), "summary_interval_ns"_a = 0, "own_node"_a = "",
             "max_topics"_a = RelayTable::kDefaultMaxTopics)
        .def(
            "ingest",
            [](RelayTable& t, const py::sequence& frames, std::optional<std::int64_t> now_ns) {
                const Frames f(frames);
                return t.ingest(f.frames, now_or(now_ns)) == Verdict::Forward;
            },
            "frames"_a, "now_ns"_a = py::none(), "A feed message (its frames): whether to forward it.")
        .def(
            "merge_message",
            [](RelayTable& t, const py::sequence& frames, std::optional<std::int64_t> now_ns) {
                const Frames f(frames);
                return t.merge_message(f.frames, now_or(now_ns));
            },
            "frames"_a, "now_ns"_a = py::none())
        .def(
            "merge_seq",
            [](RelayTable& t, const std::string& topic, std::uint64_t epoch, std::uint64_t seq,
               std::optional<std::int64_t> now_ns) { return t.merge_seq(topic, epoch, seq, now_or(now_ns)); },
            "topic"_a, "epoch"_a, "seq"_a, "now_ns"_a = py::none())
        .def(
            "merge_silent",
            [](RelayTable& t, const std::string& node, double silent_s, std::optional<std::int64_t> now_ns) {
                t.merge_silent(node, silent_s, now_or(now_ns));
            },
            "node"_a, "silent_s"_a, "now_ns"_a = py::none())
        .def(
            "merge_snapshot",
            [](RelayTable& t, const py::bytes& reply, const std::string& only_node, std::optional<std::int64_t> now_ns) {
                const std::string_view data(reply);
                const std::int64_t now = now_or(now_ns);
                SnapshotMerge merged;
                {
                    // Reads only the reply's bytes (kept alive by the caller) and the table.
                    py::gil_scoped_release release;
                    merged = t.merge_snapshot(reinterpret_cast<const std::uint8_t*>(data.data()), data.size(),
                                              only_node, now);
                }
                py::list nodes;
                for (const auto& [node, epoch] : merged.nodes) nodes.append(py::make_tuple(node, epoch));
                return py::make_tuple(merged.ok, merged.error, merged.relay, nodes);
            },
            "reply"_a, "only_node"_a = "", "now_ns"_a = py::none(),
            "An upstream's snapshot reply, merged without decoding: (ok, error, relay, [(node, epoch)]).")
        .def(
            "take_joins",
            [](RelayTable& t) {
                py::list out;
                for (const auto& j : t.take_joins()) out.append(py::make_tuple(j.node, j.epoch, j.reasons));
                return out;
            },
            "Nodes to join since the last call: (node, epoch, reasons: 1 unjoined, 2 topo lost, 4 unknown device).")
        .def(
            "join_needed",
            [](const RelayTable& t, const std::string& node) -> std::optional<std::uint64_t> {
                std::uint64_t epoch = 0;
                if (!t.join_needed(node, &epoch)) return std::nullopt;
                return epoch;
            },
            "node"_a, "The node's epoch when it still needs a join, else None.")
        .def("mark_joined", &RelayTable::mark_joined, "node"_a, "epoch"_a)
        .def(
            "check_stale",
            [](RelayTable& t, double stale_after_s, std::optional<std::int64_t> now_ns) {
                py::list out;
                for (const auto& c : t.check_stale(now_or(now_ns), static_cast<std::int64_t>(stale_after_s * 1e9)))
                    out.append(py::make_tuple(c.node, c.stale, c.silent_s));
                return out;
            },
            "stale_after_s"_a, "now_ns"_a = py::none(), "(node, stale now, seconds silent) for each change.")
        .def(
            "forget_silent",
            [](RelayTable& t, double forget_after_s, std::optional<std::int64_t> now_ns) {
                py::list out;
                for (const auto& g : t.forget_silent(now_or(now_ns), static_cast<std::int64_t>(forget_after_s * 1e9)))
                    out.append(py::make_tuple(g.node, g.silent_s));
                return out;
            },
            "forget_after_s"_a, "now_ns"_a = py::none(),
            "(node, seconds silent) for each node dropped: nothing heard of it for forget_after_s.")
        .def("snapshot", &snapshot, "prefix"_a, "now_ns"_a = py::none(),
             "(messages [(topic, header, body)], seqs, epochs, silent_s, stale, refused bodies) under prefix.")
        .def(
            "nodes",
            [](const RelayTable& t) {
                py::list out;
                for (const auto& n : t.nodes()) out.append(py::make_tuple(n.name, n.stale));
                return out;
            },
            "(node, stale) for every node with a topo, by name.")
        .def(
            "seq", [](const RelayTable& t, const std::string& topic) { return t.seq(topic); }, "topic"_a)
        .def("stats", &table_stats);

    py::class_<Forwarder> forwarder(m, "RelayForwarder",
                                    "Forwards XSUB -> XPUB in native code on pyzmq's sockets (their .underlying), "
                                    "recording each message in a RelayTable.");
    forwarder
        .def(py::init([](RelayTable& table, std::uintptr_t xsub, std::uintptr_t xpub, std::uintptr_t control,
                         const std::string& libzmq_anchor) {
                 std::string why;
                 auto api = find_loaded_libzmq(libzmq_anchor, why);
                 if (!api) throw std::runtime_error(why);
                 return std::make_unique<Forwarder>(api, reinterpret_cast<void*>(xsub), reinterpret_cast<void*>(xpub),
                                                    reinterpret_cast<void*>(control), table);
             }),
             "table"_a, "xsub"_a, "xpub"_a, "control"_a, "libzmq_anchor"_a, py::keep_alive<1, 2>())
        // Forwarding touches no Python object: the GIL goes for the whole wait.
        .def("run", &Forwarder::run, "max_wait_ms"_a, py::call_guard<py::gil_scoped_release>(),
             "Forward until woken: a mask of WAKE_SUBSCRIPTIONS, WAKE_CONTROL, WAKE_TIMEOUT, WAKE_TERMINATED.")
        .def("stats",
             [](const Forwarder& f) {
                 const ForwarderStats s = f.stats();
                 py::dict d;
                 d["forwarded"] = s.forwarded;
                 d["dropped"] = s.dropped;
                 d["send_failed"] = s.send_failed;
                 return d;
             });
    forwarder.attr("WAKE_SUBSCRIPTIONS") = int{Forwarder::kSubscriptions};
    forwarder.attr("WAKE_CONTROL") = int{Forwarder::kControl};
    forwarder.attr("WAKE_TIMEOUT") = int{Forwarder::kTimeout};
    forwarder.attr("WAKE_TERMINATED") = int{Forwarder::kTerminated};

    m.def(
        "find_libzmq",
        [](const std::string& anchor) {
            std::string why;
            auto api = find_loaded_libzmq(anchor, why);
            if (!api) throw std::runtime_error(why);
            return py::make_tuple(api->path, py::make_tuple(api->major, api->minor, api->patch));
        },
        "anchor"_a, "(path, version) of the loaded libzmq the relay forwarder would use; RuntimeError why not.");
    m.def(
        "parse_feed_header",
        [](const py::handle& data) -> py::object {
            const Bytes b(data);
            const FrameView v = b.view();
            FeedHeader h;
            if (!parse_header(v.data, v.size, h)) return py::none();
            py::object ts = h.ts.negative ? py::int_(h.ts.as_signed()) : py::int_(h.ts.bits);
            return py::make_tuple(py::str(std::string(h.node)), h.epoch, h.seq, ts, h.gen);
        },
        "data"_a, "The relay's reading of a header frame: (node, epoch, seq, ts, gen), or None if malformed.");
    m.def(
        "parse_feed_topic",
        [](const py::handle& data) -> py::object {
            const Bytes b(data);
            FeedTopic t;
            if (!parse_topic(b.view().text(), t)) return py::none();
            py::object device = t.device.empty() ? py::object(py::none()) : py::object(py::str(std::string(t.device)));
            return py::make_tuple(feed_kind_name(t.kind), std::string(t.node), device);
        },
        "data"_a, "The relay's reading of a topic frame: (kind, node, device or None), or None if malformed.");
    m.def(
        "msgpack_well_formed",
        [](const py::handle& data) {
            const Bytes b(data);
            const FrameView v = b.view();
            return msgpack_well_formed(v.data, v.size);
        },
        "data"_a, "Whether data is one msgpack value Python's msgpack (raw=False) accepts.");
}

}  // namespace

CUAGENT_REGISTER_BINDING(register_relay, 80)
