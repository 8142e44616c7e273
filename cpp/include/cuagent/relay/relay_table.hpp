// What a relay knows of the nodes it forwards (PROTOCOL.md §4, §7), kept from the frames as
// they pass: per topic the last seq carried and, for topo, state and sum topics, the latest
// frames themselves (shared, never decoded); per node its epoch, when its last hb arrived,
// the devices its topo says may serve a state, and whether it must be joined (snapshot from
// upstream). Snapshots are assembled from it, so a reply's seqs and frames are those the feed
// carried, at one moment. A node not heard at all for a while is forgotten whole
// (forget_silent), so the table holds the nodes that are, not every node that ever was.
//
// Thread-safe: the forwarding thread ingests while the sync thread snapshots, merges and
// checks staleness; one mutex, held per message (nothing slow happens under it).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cuagent/relay/feed_message.hpp"
#include "cuagent/relay/name_index.hpp"

namespace cuagent::relay {

struct FrameView {
    const std::uint8_t* data = nullptr;
    std::size_t size = 0;
    std::string_view text() const noexcept { return {reinterpret_cast<const char*>(data), size}; }
};

// One feed message as received: its first three frames and how many it had.
struct FeedFrames {
    FrameView topic, header, body;
    std::size_t count = 0;
};

// The frames a table keeps of a topic's latest message: header and body, copied into one
// buffer of the table's own, overwritten in place by the next message of the topic (a table in
// its steady state allocates nothing per message). Never a reference to libzmq's payload: a
// received frame lives in its connection's 8 KiB receive buffer (zero-copy decoding), which
// one kept reference pins whole. A snapshot copies the bytes out under the table's lock, so
// nothing is ever shared between threads.
class KeptFrames {
public:
    bool held() const noexcept { return held_; }
    FrameView header() const noexcept { return {data(), header_size_}; }
    FrameView body() const noexcept { return {data() + header_size_, bytes_.size() - header_size_}; }
    void assign(FrameView header, FrameView body);
    void clear() noexcept { held_ = false; }

private:
    const std::uint8_t* data() const noexcept { return reinterpret_cast<const std::uint8_t*>(bytes_.data()); }

    std::string bytes_;
    std::size_t header_size_ = 0;
    bool held_ = false;
};

enum class Verdict : std::uint8_t { Forward, Drop };

// Why a node must be (re)joined.
enum JoinReason : unsigned {
    kJoinUnjoined = 1,       // new, or restarted, and not seen from its epoch's first topo
    kJoinTopoLost = 2,       // its hb lists a topo seq beyond the topo held
    kJoinUnknownDevice = 4,  // a state of a device the topo held does not list
};

struct JoinNeed {
    std::string node;
    std::uint64_t epoch = 0;
    unsigned reasons = 0;
};

struct StaleChange {
    std::string node;
    bool stale = false;
    double silent_s = 0.0;
};

// A node forgotten: nothing heard of it for the forget interval.
struct GoneNode {
    std::string node;
    double silent_s = 0.0;
};

struct NodeSummary {
    std::string name;
    bool stale = false;
};

// What one snapshot serves: for every topic under the prefix its seq; the frames of topo,
// state and sum topics, unless withheld (a stale node; a state its node's topo does not let
// serve); each node's epoch; for nodes with a topo, seconds since their last hb; the stale.
// A node still to be joined is left out altogether (as if not heard yet).
struct SnapshotView {
    struct Served {
        std::string topic;
        std::size_t at = 0, header_size = 0, body_size = 0;  // the header, then the body, in `bytes`
    };
    std::string bytes;  // the frames served, copied out of the table
    std::vector<Served> messages;  // topo first
    // Frames withheld because their body is not one well-formed msgpack value (msgpack_scan.hpp):
    // spliced into a reply, it would spoil all of it. Checked here, not on the forwarding path.
    std::size_t refused = 0;
    std::vector<std::pair<std::string, std::uint64_t>> seqs;
    std::vector<std::pair<std::string, std::uint64_t>> epochs;
    std::vector<std::pair<std::string, double>> silent_s;
    std::vector<std::string> stale;
};

// What merging an upstream's snapshot reply did.
struct SnapshotMerge {
    bool ok = false;
    std::string error;  // why the reply was refused (nothing merged)
    bool relay = false;  // it lists "epochs": an upstream relay's
    std::vector<std::pair<std::string, std::uint64_t>> nodes;  // the nodes it covered, each with its epoch
};

struct TableStats {
    std::uint64_t messages = 0;           // ingested (forwarded or not)
    std::uint64_t malformed = 0;          // not 3 frames, a topic or header wire.decode_envelope refuses
    std::uint64_t duplicates = 0;         // seq <= the last carried (two paths, a snapshot ahead)
    std::uint64_t gaps = 0;               // seqs never seen between two carried
    std::uint64_t restarts = 0;           // epochs that changed
    std::uint64_t untracked = 0;          // messages of new topics beyond max_topics
    std::uint64_t summaries_skipped = 0;  // sum messages not forwarded (summary interval)
    std::uint64_t unreadable_bodies = 0;  // topo/hb bodies it could not read (not served/heard)
    std::uint64_t merged = 0;             // messages and seqs taken from upstream snapshots
    std::uint64_t forgotten = 0;          // nodes dropped, nothing heard of them for the forget interval
    std::uint64_t topics = 0;
    std::uint64_t nodes = 0;
};

class RelayTable {
public:
    static constexpr std::size_t kDefaultMaxTopics = std::size_t{1} << 20;

    // `summary_interval_ns`: forward a sum topic's message only when its header ts is at least
    // this much past the last forwarded one's (0: all). `own_node`: the relay's own name (its
    // events pass through, but it is never joined or aged).
    explicit RelayTable(std::int64_t summary_interval_ns = 0, std::string own_node = {},
                        std::size_t max_topics = kDefaultMaxTopics);
    ~RelayTable();
    RelayTable(const RelayTable&) = delete;
    RelayTable& operator=(const RelayTable&) = delete;

    // A message from the feed: whether to forward it. Malformed messages are forwarded
    // untouched (clients judge them) but change nothing here.
    Verdict ingest(const FeedFrames& frames, std::int64_t now_ns);

    // From an upstream's snapshot reply (§4): a message applied if newer than what is held, in
    // the node's epoch (or adopting its epoch for a node not heard yet); a seq raised likewise
    // (dropping frames it makes old). True when something changed.
    bool merge_message(const FeedFrames& frames, std::int64_t now_ns);
    bool merge_seq(std::string_view topic, std::uint64_t epoch, std::uint64_t seq, std::int64_t now_ns);
    // An upstream relay's silent_s for `node`: its last hb is that old, unless heard here since.
    void merge_silent(std::string_view node, double silent_s, std::int64_t now_ns);
    // A whole snapshot reply (§5, §7) as it came, read without building objects: its messages
    // (their header and body bytes as they are in the reply), then its seqs, each node in the
    // epoch its messages carry, or that "epochs" lists, or the reply's own when it covers one
    // node; silent_s. Only `only_node`'s, unless empty. Refused whole when it is not one that
    // wire.decode_snapshot_reply accepts.
    SnapshotMerge merge_snapshot(const std::uint8_t* reply, std::size_t size, std::string_view only_node,
                                 std::int64_t now_ns);

    // Nodes queued for a join since the last call (each once), with why; and whether one
    // still needs it (a join answered, or its epoch's first topo seen, settles it).
    std::vector<JoinNeed> take_joins();
    bool join_needed(std::string_view node, std::uint64_t* epoch = nullptr) const;
    // A join of `node` in `epoch` was answered (nothing, if it has restarted since).
    void mark_joined(std::string_view node, std::uint64_t epoch);

    // Nodes with a topo whose stale state changed: stale once no hb for `stale_after_ns`.
    std::vector<StaleChange> check_stale(std::int64_t now_ns, std::int64_t stale_after_ns);

    // Nodes not heard at all for `forget_after_ns` (no message from the feed, no hb as recent
    // as an upstream relay's silent_s says; one first known from a join counts as heard then):
    // dropped with their topics, frames and epoch, as if never heard. A node heard again later
    // is a new node (joined again). The relay's own node is never forgotten.
    std::vector<GoneNode> forget_silent(std::int64_t now_ns, std::int64_t forget_after_ns);

    SnapshotView snapshot(std::string_view prefix, std::int64_t now_ns) const;
    std::vector<NodeSummary> nodes() const;  // nodes joined and with a topo, by name
    std::uint64_t seq(std::string_view topic) const;  // 0: none carried
    TableStats stats() const;

private:
    struct Node;
    struct Topic;

    Topic* find_or_add(std::string_view name, std::int64_t now_ns);
    bool adopt_epoch(Node& node, const FeedHeader& header, const Topic& topic, std::int64_t now_ns, bool from_feed);
    void apply(Topic& topic, const FeedHeader& header, const FeedFrames& frames, std::int64_t now_ns);
    void forget(Node& node);
    void queue_join(Node& node);
    bool needs_join(const Node& node) const noexcept;
    static bool serving(const Node& node, std::string_view device) noexcept;

    const std::int64_t summary_interval_ns_;
    const std::string own_node_;
    const std::size_t max_topics_;
    mutable std::mutex mu_;
    NameIndex<Topic> topics_;  // each topic is its node's (Node::topics)
    std::unordered_map<std::string, std::unique_ptr<Node>> nodes_;
    std::vector<Node*> join_queue_;
    TableStats stats_;
};

}  // namespace cuagent::relay
