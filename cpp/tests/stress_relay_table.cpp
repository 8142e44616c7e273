// RelayTable: a forwarding thread ingests the feed of many nodes (states, hb, topo re-publishes,
// devices lost and back, restarts, nodes silent long enough to be forgotten, one of them back
// later in its epoch) while two others take snapshots, check staleness, forget silent nodes,
// take joins and merge old upstream messages. Every snapshot must be consistent: each frame served
// carries the seq the reply lists for its topic and its node's epoch, its body belongs to that
// header (the writer encodes seq and epoch into it), and no lost device's state is served.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "check.hpp"
#include "cuagent/relay/feed_message.hpp"
#include "cuagent/relay/msgpack_scan.hpp"
#include "cuagent/relay/relay_table.hpp"

using namespace cuagent::relay;

namespace {

constexpr int kNodes = 40;
constexpr int kDevices = 4;
constexpr int kRounds = 600;
constexpr std::int64_t kRoundNs = 100'000'000;
constexpr std::int64_t kForgetAfterNs = 5'000'000'000;
// n1 sends nothing at all from kAwayFrom to kAwayUntil (then goes on in its epoch), n2 nothing
// from kAwayFrom on: both are forgotten; n0 only stops its hb (stale, never forgotten).
constexpr int kAwayFrom = 200, kAwayUntil = 400;
bool away(int n, int r) { return (n == 1 && r >= kAwayFrom && r < kAwayUntil) || (n == 2 && r >= kAwayFrom); }

void put_str(std::string& out, const std::string& s) {
    out += static_cast<char>(0xa0 | s.size());  // fixstr: every string here is < 32 bytes
    out += s;
}

void put_u64(std::string& out, std::uint64_t v) {
    out += static_cast<char>(0xcf);
    for (int i = 7; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

std::string header(const std::string& node, std::uint64_t epoch, std::uint64_t seq) {
    std::string h(1, static_cast<char>(0x86));
    put_str(h, "v"), h += '\x01';
    put_str(h, "node"), put_str(h, node);
    put_str(h, "epoch"), put_u64(h, epoch);
    put_str(h, "seq"), put_u64(h, seq);
    put_str(h, "ts"), put_u64(h, 1);
    put_str(h, "gen"), h += '\x01';
    return h;
}

// A body that names its own header: {"s": seq, "e": epoch}.
std::string body(std::uint64_t epoch, std::uint64_t seq) {
    std::string b(1, static_cast<char>(0x82));
    put_str(b, "s"), put_u64(b, seq);
    put_str(b, "e"), put_u64(b, epoch);
    return b;
}

std::string topo(std::uint64_t epoch, std::uint64_t seq, int lost) {
    std::string b(1, static_cast<char>(0x83));
    put_str(b, "s"), put_u64(b, seq);
    put_str(b, "e"), put_u64(b, epoch);
    put_str(b, "devices");
    b += static_cast<char>(0x90 | kDevices);
    for (int d = 0; d < kDevices; ++d) {
        b += static_cast<char>(0x82);
        put_str(b, "id"), put_str(b, "d" + std::to_string(d));
        put_str(b, "status"), put_str(b, d == lost ? "lost" : "ok");
    }
    return b;
}

std::string hb(const std::string& node, std::uint64_t topo_seq) {
    std::string b(1, static_cast<char>(0x84));
    put_str(b, "seqs"), b += static_cast<char>(0x81), put_str(b, "cua1/topo/" + node + "/"), put_u64(b, topo_seq);
    put_str(b, "rate_hz"), b += '\x01';
    put_str(b, "dropped"), b += '\x00';
    put_str(b, "uptime_s"), b += '\x01';
    return b;
}

FrameView view(const std::string& s) { return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}; }

struct Message {
    std::string topic, header, body;
    FeedFrames frames() const { return FeedFrames{view(topic), view(header), view(body), 3}; }
};

std::uint64_t read_u64_field(FrameView body, const char* key) {
    MsgpackCursor c(body.data, body.size);
    std::uint32_t n = 0;
    CHECK(c.read_map(n), "body is no map");
    for (std::uint32_t i = 0; i < n; ++i) {
        std::string_view k;
        CHECK(c.read_str(k), "body key");
        MsgpackInt v;
        if (k == key) {
            CHECK(c.read_int(v), "body value");
            return v.bits;
        }
        CHECK(c.skip(1), "body value");
    }
    return 0;
}

bool has_node(const RelayTable& table, const std::string& node) {
    for (const auto& n : table.nodes())
        if (n.name == node) return true;
    return false;
}

// Single-threaded: a node forgotten while queued for a join leaves the queue (which holds
// nodes by address), its topics and seqs go, and heard again it is a new node to join.
void forget_while_queued() {
    RelayTable table(0, "relay-self");
    const std::string node = "q1";
    // A restart seen first through a state (not its epoch's first topo): queued for a join.
    const Message state{"cua1/state/q1/d0/", header(node, 7, 5), body(7, 5)};
    table.ingest(state.frames(), 1'000);
    const Message own{"cua1/event/relay-self/", header("relay-self", 1, 1), body(1, 1)};
    table.ingest(own.frames(), 1'000);
    CHECK(table.join_needed(node), "q1 needs a join");
    CHECK(table.forget_silent(1'000 + kForgetAfterNs, kForgetAfterNs).empty(), "forgotten too early");
    const auto gone = table.forget_silent(1'001 + kForgetAfterNs, kForgetAfterNs);
    CHECK(gone.size() == 1 && gone[0].node == node, "q1 forgotten (the relay's own node never is)");
    CHECK(table.take_joins().empty(), "a forgotten node still queued for a join");
    CHECK(table.seq("cua1/state/q1/d0/") == 0 && !table.join_needed(node), "q1 still held");
    CHECK(table.snapshot("cua1/state/", 2 * kForgetAfterNs).seqs.empty(), "q1's seqs still served");
    TableStats st = table.stats();
    CHECK(st.nodes == 1 && st.topics == 1 && st.forgotten == 1, "nodes %llu topics %llu forgotten %llu",
          (unsigned long long)st.nodes, (unsigned long long)st.topics, (unsigned long long)st.forgotten);
    // Heard again, in the same epoch: a new node, joined again.
    const Message next{"cua1/state/q1/d0/", header(node, 7, 6), body(7, 6)};
    table.ingest(next.frames(), 3 * kForgetAfterNs);
    const auto joins = table.take_joins();
    CHECK(joins.size() == 1 && joins[0].node == node && joins[0].epoch == 7 && (joins[0].reasons & kJoinUnjoined),
          "q1 back: to join");
    CHECK(table.seq("cua1/state/q1/d0/") == 6 && table.stats().restarts == 0, "q1 back: a new node");
}

}  // namespace

int main() {
    forget_while_queued();
    RelayTable table(0, "relay-self");
    std::atomic<bool> done{false};
    std::atomic<std::int64_t> clock{0};

    std::atomic<bool> n1_gone{false};
    std::thread writer([&] {
        std::vector<std::uint64_t> epoch(kNodes);
        std::vector<std::unordered_map<std::string, std::uint64_t>> seqs(kNodes);
        std::vector<int> lost(kNodes, -1);
        auto send = [&](int n, const std::string& kind, const std::string& device, const std::string& b_or_empty,
                        int what) {
            const std::string node = "n" + std::to_string(n);
            const std::string topic = "cua1/" + kind + "/" + node + "/" + (device.empty() ? "" : device + "/");
            const std::uint64_t seq = ++seqs[n][topic];
            std::string b = b_or_empty;
            if (what == 0) b = body(epoch[n], seq);
            if (what == 1) b = topo(epoch[n], seq, lost[n]);
            Message m{topic, header(node, epoch[n], seq), b};
            table.ingest(m.frames(), clock.load(std::memory_order_relaxed));
        };
        for (int n = 0; n < kNodes; ++n) {
            epoch[n] = 1000 + static_cast<std::uint64_t>(n);
            send(n, "topo", "", "", 1);
        }
        for (int r = 0; r < kRounds; ++r) {
            clock.fetch_add(kRoundNs, std::memory_order_relaxed);
            if (r == kAwayUntil) {
                // Back only once forgotten (the sync thread's pace is its own), with its topo
                // re-published: the relay must join it again.
                while (!n1_gone.load(std::memory_order_acquire)) std::this_thread::yield();
                send(1, "topo", "", "", 1);
            }
            for (int n = 0; n < kNodes; ++n) {
                if (away(n, r)) continue;
                for (int d = 0; d < kDevices; ++d)
                    if (d != lost[n]) send(n, "state", "d" + std::to_string(d), "", 0);
                if (r % 10 == n % 10 && !(n == 0 && r > kRounds / 2)) {  // n0 falls silent halfway
                    const std::string node = "n" + std::to_string(n);
                    send(n, "hb", "", hb(node, seqs[n]["cua1/topo/" + node + "/"]), 2);
                }
            }
            const int n = r % kNodes;
            if (away(n, r)) continue;
            if (r % 7 == 3) {  // a device lost, or back
                lost[n] = lost[n] < 0 ? r % kDevices : -1;
                send(n, "topo", "", "", 1);
            } else if (r % 23 == 11) {  // a restart: a new epoch from its first topo
                epoch[n] += 1'000'000;
                seqs[n].clear();
                lost[n] = -1;
                send(n, "topo", "", "", 1);
            } else if (r % 31 == 17) {  // a restart seen first through a state: needs a join
                epoch[n] += 1'000'000;
                seqs[n].clear();
                lost[n] = -1;
                send(n, "state", "d0", "", 0);
                send(n, "topo", "", "", 1);
            }
        }
        done.store(true, std::memory_order_release);
    });

    std::atomic<std::uint64_t> snapshots{0}, frames_checked{0};
    auto reader = [&](int id) {
        while (!done.load(std::memory_order_acquire)) {
            const std::string prefix = id == 0 ? "cua1/" : "cua1/state/n" + std::to_string(snapshots % kNodes) + "/";
            const SnapshotView s = table.snapshot(prefix, clock.load(std::memory_order_relaxed));
            std::unordered_map<std::string, std::uint64_t> seqs(s.seqs.begin(), s.seqs.end());
            std::unordered_map<std::string, std::uint64_t> epochs(s.epochs.begin(), s.epochs.end());
            std::unordered_map<std::string, std::string> lost_device;
            const auto* bytes = reinterpret_cast<const std::uint8_t*>(s.bytes.data());
            CHECK(s.refused == 0, "bodies refused");
            for (const auto& m : s.messages) {
                const std::string& topic = m.topic;
                const FrameView header{bytes + m.at, m.header_size}, body{bytes + m.at + m.header_size, m.body_size};
                CHECK(topic.compare(0, prefix.size(), prefix) == 0, "%s outside %s", topic.c_str(), prefix.c_str());
                FeedHeader h;
                CHECK(parse_header(header.data, header.size, h), "%s: header", topic.c_str());
                CHECK(seqs.count(topic) && seqs[topic] == h.seq, "%s: frame seq %llu, listed %llu", topic.c_str(),
                      (unsigned long long)h.seq, (unsigned long long)seqs[topic]);
                const std::string node(h.node);
                CHECK(epochs.count(node) && epochs[node] == h.epoch, "%s: epoch", topic.c_str());
                CHECK(msgpack_well_formed(body.data, body.size), "%s: body", topic.c_str());
                CHECK(read_u64_field(body, "s") == h.seq && read_u64_field(body, "e") == h.epoch,
                      "%s: body of another message", topic.c_str());
                if (topic.compare(0, 10, "cua1/topo/") == 0) {
                    std::vector<TopoDevice> devices;
                    CHECK(read_topo_devices(body.data, body.size, devices), "topo");
                    for (const auto& d : devices)
                        if (!d.serving) lost_device[node] = d.id;
                }
                frames_checked.fetch_add(1, std::memory_order_relaxed);
            }
            for (const auto& m : s.messages) {
                FeedTopic t;
                CHECK(parse_topic(m.topic, t), "topic");
                auto it = lost_device.find(std::string(t.node));
                CHECK(t.kind != FeedKind::State || it == lost_device.end() || it->second != t.device,
                      "%s: the state of a lost device served", m.topic.c_str());
            }
            snapshots.fetch_add(1, std::memory_order_relaxed);
        }
    };
    std::thread snapshotter(reader, 0), snapshotter2(reader, 1);

    // The sync thread's other work, meanwhile: staleness, joins, stale merges from upstream.
    std::uint64_t joins = 0, stale_changes = 0, forgotten = 0;
    while (!done.load(std::memory_order_acquire)) {
        const std::int64_t now = clock.load(std::memory_order_relaxed);
        stale_changes += table.check_stale(now, 3'000'000'000).size();
        for (const auto& g : table.forget_silent(now, kForgetAfterNs)) {
            ++forgotten;
            CHECK(g.node == "n1" || g.node == "n2", "%s forgotten: it was heard", g.node.c_str());
            if (g.node == "n1") n1_gone.store(true, std::memory_order_release);
        }
        for (const auto& j : table.take_joins()) {
            ++joins;
            table.mark_joined(j.node, j.epoch);
        }
        const std::uint64_t n = 3 + joins % (kNodes - 3);  // not n1 or n2: a merge would make them known again
        const std::string node = "n" + std::to_string(n);
        const std::uint64_t epoch = 1000 + n;  // the node's first epoch
        const Message old{"cua1/state/" + node + "/d1/", header(node, epoch, 1), body(epoch, 1)};
        table.merge_message(old.frames(), now);  // almost always older than what is held
        CHECK(!table.nodes().empty() || now == 0, "nodes");
        std::this_thread::yield();
    }
    writer.join();
    snapshotter.join();
    snapshotter2.join();
    // What the sync thread has not got to yet: n1's join, n2's forgetting.
    for (const auto& j : table.take_joins()) table.mark_joined(j.node, j.epoch);
    forgotten += table.forget_silent(clock.load() + kRoundNs, kForgetAfterNs).size();
    CHECK(!has_node(table, "n2") && table.seq("cua1/state/n2/d0/") == 0, "n2 not forgotten");
    CHECK(has_node(table, "n1") && table.seq("cua1/state/n1/d0/") > 0, "n1 not followed again");
    CHECK(has_node(table, "n0"), "n0 (states, no hb) forgotten");
    const TableStats st = table.stats();
    CHECK(st.forgotten == forgotten && forgotten >= 2 && st.nodes == kNodes - 1, "forgotten %llu, nodes %llu",
          (unsigned long long)forgotten, (unsigned long long)st.nodes);
    CHECK(st.malformed == 0 && st.unreadable_bodies == 0, "malformed %llu unreadable %llu",
          (unsigned long long)st.malformed, (unsigned long long)st.unreadable_bodies);
    CHECK(st.restarts > 0 && snapshots.load() > 0 && stale_changes > 0, "restarts %llu, stale changes %llu",
          (unsigned long long)st.restarts, (unsigned long long)stale_changes);
    std::printf("stress_relay_table: %llu messages, %llu restarts, %llu snapshots, %llu frames checked, %llu joins, "
                "%llu stale changes, %llu nodes forgotten: consistent, passed\n",
                (unsigned long long)st.messages, (unsigned long long)st.restarts,
                (unsigned long long)snapshots.load(), (unsigned long long)frames_checked.load(),
                (unsigned long long)joins, (unsigned long long)stale_changes, (unsigned long long)forgotten);
    return 0;
}
