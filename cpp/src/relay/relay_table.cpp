#include "cuagent/relay/relay_table.hpp"

#include <algorithm>
#include <cstring>
#include <optional>

namespace cuagent::relay {

namespace {

// A window's messages: of one gen's topology, void at another gen (§4).
bool of_windows(FeedKind kind) noexcept { return kind == FeedKind::State || kind == FeedKind::Sum; }

bool same_bytes(FrameView a, FrameView b) noexcept {
    return a.size == b.size && (a.size == 0 || std::memcmp(a.data, b.data, a.size) == 0);
}

// A header's ts as a signed 128-bit value (it may be any msgpack int).
__int128 ts_value(const MsgpackInt& ts) noexcept {
    return ts.negative ? static_cast<__int128>(ts.as_signed()) : static_cast<__int128>(ts.bits);
}

// The node a prefix is within, when it names one whole (`cua1/<kind>/<node>/...`): every
// topic it covers is that node's. None for a wider prefix (`cua1/`, `cua1/state/`, or
// `cua1/state/n1` which also covers n10).
std::optional<std::string_view> node_of_prefix(std::string_view prefix) noexcept {
    constexpr std::string_view root = "cua1/";
    if (prefix.substr(0, root.size()) != root) return std::nullopt;
    const std::size_t kind_end = prefix.find('/', root.size());
    if (kind_end == std::string_view::npos) return std::nullopt;
    const std::size_t node_end = prefix.find('/', kind_end + 1);
    if (node_end == std::string_view::npos) return std::nullopt;
    return prefix.substr(kind_end + 1, node_end - kind_end - 1);
}

}  // namespace

struct RelayTable::Topic {
    std::string name;
    FeedKind kind = FeedKind::Event;
    Node* node = nullptr;
    std::string device;
    std::uint64_t seq = 0;                          // the last carried in the node's epoch; 0: none
    KeptFrames latest;                              // topo/state/sum: the frames a snapshot serves
    std::uint64_t gen = 0;                          // the header gen of `latest`
    bool sum_sent = false;                          // sum: one forwarded in this epoch, at sum_ts,
    __int128 sum_ts = 0;                            // when its node's topo had changed so often
    std::uint64_t sum_topo_changes = 0;
};

struct RelayTable::Node {
    std::string name;
    std::string topo_topic;  // cua1/topo/<name>/, as hb bodies name it
    bool own = false;
    bool has_epoch = false;
    std::uint64_t epoch = 0;
    std::vector<std::unique_ptr<Topic>> topics;  // its own: forgetting the node frees them
    Topic* topo = nullptr;
    bool has_topo = false;  // a readable topo of this epoch is held
    std::uint64_t topo_gen = 0;  // the gen of that topo
    std::uint64_t topo_changes = 0;  // topos with another body than the one before in its epoch (status, gen)
    std::vector<TopoDevice> devices;
    std::uint64_t hb_topo_seq = 0;  // the topo seq the last hb listed
    std::int64_t last_heard_ns = 0;  // its last hb (or as old as an upstream relay's silent_s says)
    std::int64_t last_message_ns = 0;  // its last message from the feed, or when it became known
    bool hb_heard = false;  // an hb arrived in this epoch (not just a snapshot's silent_s)
    bool stale = false;     // as last reported by check_stale (and withheld)
    bool joined = false;
    bool topo_lost = false;
    bool unknown_device = false;
    bool join_queued = false;
};

void KeptFrames::assign(FrameView header, FrameView body) {
    const std::size_t size = header.size + body.size;
    // A buffer grown once for a large message goes when the messages get small again.
    if (bytes_.capacity() > 2 * size + 4096) std::string().swap(bytes_);
    bytes_.assign(header.text()).append(body.text());
    header_size_ = header.size;
    held_ = true;
}

RelayTable::RelayTable(std::int64_t summary_interval_ns, std::string own_node, std::size_t max_topics)
    : summary_interval_ns_(summary_interval_ns), own_node_(std::move(own_node)), max_topics_(max_topics) {}

RelayTable::~RelayTable() = default;

RelayTable::Topic* RelayTable::find_or_add(std::string_view name, std::int64_t now_ns) {
    if (Topic* found = topics_.find(name)) return found;
    FeedTopic parsed;
    if (!parse_topic(name, parsed)) {
        ++stats_.malformed;
        return nullptr;
    }
    if (topics_.size() >= max_topics_) {
        ++stats_.untracked;
        return nullptr;
    }
    auto node_it = nodes_.find(std::string(parsed.node));
    if (node_it == nodes_.end()) {
        auto node = std::make_unique<Node>();
        node->name.assign(parsed.node);
        node->topo_topic = "cua1/topo/" + node->name + "/";
        node->own = node->name == own_node_;
        node->last_message_ns = now_ns;
        node_it = nodes_.emplace(node->name, std::move(node)).first;
    }
    auto topic = std::make_unique<Topic>();
    topic->name.assign(name);
    topic->kind = parsed.kind;
    topic->node = node_it->second.get();
    topic->device.assign(parsed.device);
    Topic* raw = topic.get();
    topics_.insert(raw);
    raw->node->topics.push_back(std::move(topic));
    if (parsed.kind == FeedKind::Topo) raw->node->topo = raw;
    return raw;
}

void RelayTable::forget(Node& node) {
    for (const auto& t : node.topics) {
        t->seq = 0;
        t->latest.clear();
        t->sum_sent = false;
    }
    node.has_topo = false;
    node.devices.clear();
    node.hb_topo_seq = 0;
    node.hb_heard = false;
    node.joined = false;
    node.topo_lost = false;
    node.unknown_device = false;
}

bool RelayTable::needs_join(const Node& node) const noexcept {
    return !node.own && node.has_epoch && (!node.joined || node.topo_lost || node.unknown_device);
}

void RelayTable::queue_join(Node& node) {
    if (node.join_queued || !needs_join(node)) return;
    node.join_queued = true;
    join_queue_.push_back(&node);
}

bool RelayTable::serving(const Node& node, std::string_view device) noexcept {
    for (const auto& d : node.devices)
        if (d.id == device) return d.serving;
    return false;
}

// A header of another epoch than the node's: a restart (§4) when it comes from the feed, which
// is the authority on what is current; a snapshot of another epoch is ignored (the feed will
// show the restart, if it is one). Returns whether the message belongs to the node's epoch.
bool RelayTable::adopt_epoch(Node& node, const FeedHeader& header, const Topic& topic, std::int64_t now_ns,
                             bool from_feed) {
    if (node.has_epoch && node.epoch == header.epoch) return true;
    if (node.has_epoch) {
        if (!from_feed) return false;
        forget(node);
        ++stats_.restarts;
    }
    node.has_epoch = true;
    node.epoch = header.epoch;
    node.last_heard_ns = now_ns;
    // Its epoch's first topo: everything since its start passes here, nothing to join.
    node.joined = !from_feed || (topic.kind == FeedKind::Topo && header.seq == 1);
    if (from_feed) queue_join(node);
    return true;
}

void RelayTable::apply(Topic& topic, const FeedHeader& header, const FeedFrames& frames, std::int64_t now_ns) {
    Node& node = *topic.node;
    const bool carried_before = topic.seq != 0;  // a message of this topic in this epoch
    topic.seq = header.seq;
    if (of_windows(topic.kind) && node.has_topo && header.gen < node.topo_gen) {
        topic.latest.clear();  // of a gen before the held topo's: its shape is the old topology's
        return;
    }
    topic.gen = header.gen;
    switch (topic.kind) {
        case FeedKind::Topo: {
            const bool unchanged = node.has_topo && topic.latest.held() && same_bytes(topic.latest.body(), frames.body);
            if (!unchanged) {
                // The first topo this table knows of the epoch is no change: a relay that
                // joined a running node hears its summaries first, and the next one within
                // the interval must still wait.
                if (carried_before) ++node.topo_changes;
                std::vector<TopoDevice> devices;
                if (!read_topo_devices(frames.body.data, frames.body.size, devices)) {
                    // Not served: a client could not read it either. Its seq stays (it was sent).
                    ++stats_.unreadable_bodies;
                    topic.latest.clear();
                    node.has_topo = false;
                    node.devices.clear();
                    break;
                }
                node.devices = std::move(devices);
                node.has_topo = true;
                node.unknown_device = false;
                // A device lost, or gone from the topo: its last window is no longer current
                // (§3.1), and one back serves nothing until its next window.
                for (const auto& t : node.topics)
                    if (t->kind == FeedKind::State && !serving(node, t->device)) t->latest.clear();
            }
            if (header.gen != node.topo_gen) {
                // A new gen (its body may even be the same: a rebuilt engine): every state and
                // summary of another gen goes, as the agent drops them (their shape may not
                // match the new topo: partitions, levels), so no snapshot pairs them with it.
                for (const auto& t : node.topics)
                    if (of_windows(t->kind) && t->gen != header.gen)
                        t->latest.clear();
                node.topo_gen = header.gen;
            }
            topic.latest.assign(frames.header, frames.body);
            if (node.hb_topo_seq <= topic.seq) node.topo_lost = false;
            break;
        }
        case FeedKind::State:
            topic.latest.assign(frames.header, frames.body);
            if (node.has_topo && header.gen > node.topo_gen) {
                node.topo_lost = true;  // a topo of its gen was missed: the join brings it
                queue_join(node);
            } else if (node.has_topo && std::none_of(node.devices.begin(), node.devices.end(),
                                              [&](const TopoDevice& d) { return d.id == topic.device; })) {
                node.unknown_device = true;  // a topo we missed lists it
                queue_join(node);
            }
            break;
        case FeedKind::Sum:
            topic.latest.assign(frames.header, frames.body);
            topic.sum_sent = true;
            topic.sum_ts = ts_value(header.ts);
            topic.sum_topo_changes = node.topo_changes;
            break;
        case FeedKind::Hb: {
            std::uint64_t topo_seq = 0;
            if (!read_hb(frames.body.data, frames.body.size, node.topo_topic, topo_seq)) {
                ++stats_.unreadable_bodies;  // not heard: a client would not take it either
                break;
            }
            node.last_heard_ns = now_ns;
            node.hb_heard = true;
            node.hb_topo_seq = topo_seq;
            if (topo_seq > (node.topo ? node.topo->seq : 0)) {
                node.topo_lost = true;
                queue_join(node);
            }
            break;
        }
        case FeedKind::Event:
            break;
    }
}

Verdict RelayTable::ingest(const FeedFrames& frames, std::int64_t now_ns) {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.messages;
    if (frames.count != 3) {
        ++stats_.malformed;
        return Verdict::Forward;
    }
    Topic* topic = find_or_add(frames.topic.text(), now_ns);
    if (topic == nullptr) return Verdict::Forward;
    topic->node->last_message_ns = now_ns;  // heard, whatever the message turns out to be
    FeedHeader header;
    if (!parse_header(frames.header.data, frames.header.size, header) || header.node != topic->node->name) {
        ++stats_.malformed;
        return Verdict::Forward;
    }
    adopt_epoch(*topic->node, header, *topic, now_ns, /*from_feed=*/true);
    // A summary within the interval is dropped, unless its node's topo changed since the last
    // one went on (a device lost or back, a new gen: the agent sends that summary at once,
    // §3.5, and upper tiers should not wait for it), or its ts went back (the clock stepped).
    if (topic->kind == FeedKind::Sum && summary_interval_ns_ > 0 && topic->sum_sent &&
        topic->sum_topo_changes == topic->node->topo_changes) {
        const __int128 ts = ts_value(header.ts);
        if (ts >= topic->sum_ts && ts - topic->sum_ts < summary_interval_ns_) {
            ++stats_.summaries_skipped;
            return Verdict::Drop;
        }
    }
    if (header.seq <= topic->seq) {
        ++stats_.duplicates;
        return Verdict::Forward;
    }
    // (Summaries this relay skipped are no gap.)
    if (topic->seq != 0 && header.seq > topic->seq + 1 && !(topic->kind == FeedKind::Sum && summary_interval_ns_ > 0))
        stats_.gaps += header.seq - topic->seq - 1;
    apply(*topic, header, frames, now_ns);
    return Verdict::Forward;
}

bool RelayTable::merge_message(const FeedFrames& frames, std::int64_t now_ns) {
    std::lock_guard<std::mutex> lock(mu_);
    if (frames.count != 3) return false;
    Topic* topic = find_or_add(frames.topic.text(), now_ns);
    FeedHeader header;
    if (topic == nullptr || !parse_header(frames.header.data, frames.header.size, header) ||
        header.node != topic->node->name)
        return false;
    if (!adopt_epoch(*topic->node, header, *topic, now_ns, /*from_feed=*/false) || header.seq <= topic->seq)
        return false;
    apply(*topic, header, frames, now_ns);
    ++stats_.merged;
    return true;
}

bool RelayTable::merge_seq(std::string_view name, std::uint64_t epoch, std::uint64_t seq, std::int64_t now_ns) {
    std::lock_guard<std::mutex> lock(mu_);
    Topic* topic = find_or_add(name, now_ns);
    if (topic == nullptr || seq == 0) return false;
    Node& node = *topic->node;
    FeedHeader header;
    header.epoch = epoch;
    header.seq = seq;
    if (!adopt_epoch(node, header, *topic, now_ns, /*from_feed=*/false) || seq <= topic->seq) return false;
    topic->seq = seq;
    // Frames older than the seq upstream lists are not its latest (a lost device's state,
    // withheld upstream): never serve a seq with other frames than its own.
    topic->latest.clear();
    if (topic->kind == FeedKind::Topo) {
        node.has_topo = false;
        node.devices.clear();
    }
    ++stats_.merged;
    return true;
}

void RelayTable::merge_silent(std::string_view name, double silent_s, std::int64_t now_ns) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = nodes_.find(std::string(name));
    if (it == nodes_.end() || it->second->hb_heard || !(silent_s >= 0.0 && silent_s < 1e9)) return;
    it->second->last_heard_ns = now_ns - static_cast<std::int64_t>(silent_s * 1e9);
}

namespace {

// Where a value starts and ends in the reply.
struct Span {
    std::size_t begin = 0, end = 0;
    bool found() const noexcept { return end > begin; }
};

bool skip_span(MsgpackCursor& c, int open, Span& span) noexcept {
    span.begin = c.offset();
    if (!c.skip(open)) return false;
    span.end = c.offset();
    return true;
}

bool read_uint(MsgpackCursor& c, std::uint64_t& out) noexcept {
    MsgpackInt v;
    if (!c.read_int(v) || v.negative) return false;
    out = v.bits;
    return true;
}

bool read_number(MsgpackCursor& c, const std::uint8_t* data, double& out) noexcept {
    const std::size_t at = c.offset();
    const std::uint8_t b = data[at];
    if (b == 0xca || b == 0xcb) {  // float32/64, big-endian
        std::uint64_t bits = 0;
        const std::size_t n = b == 0xca ? 4 : 8;
        for (std::size_t i = 1; i <= n; ++i) bits = (bits << 8) | data[at + i];
        if (n == 4) {
            float f;
            const auto b32 = static_cast<std::uint32_t>(bits);
            std::memcpy(&f, &b32, 4);
            out = f;
        } else {
            std::memcpy(&out, &bits, 8);
        }
        c.seek(at + 1 + n);
        return true;
    }
    MsgpackInt v;
    if (!c.read_int(v)) return false;
    out = v.negative ? static_cast<double>(v.as_signed()) : static_cast<double>(v.bits);
    return true;
}

}  // namespace

SnapshotMerge RelayTable::merge_snapshot(const std::uint8_t* data, std::size_t size, std::string_view only_node,
                                         std::int64_t now_ns) {
    SnapshotMerge out;
    auto refuse = [&](const char* why) {
        out.error = why;
        out.nodes.clear();
        return out;
    };
    if (!msgpack_well_formed(data, size)) return refuse("not well-formed msgpack");
    MsgpackCursor c(data, size);
    std::uint32_t entries = 0;
    if (!c.read_map(entries)) return refuse("not a map");
    Span ok, epoch, messages, seqs, epochs, silent;
    for (std::uint32_t i = 0; i < entries; ++i) {
        std::string_view key;
        if (!c.read_str(key)) return refuse("a key that is no string");
        Span value;
        skip_span(c, 1, value);
        if (key == "ok") ok = value;
        else if (key == "epoch") epoch = value;
        else if (key == "messages") messages = value;
        else if (key == "seqs") seqs = value;
        else if (key == "epochs") epochs = value;
        else if (key == "silent_s") silent = value;
    }
    if (!ok.found() || data[ok.begin] != 0xc3) return refuse("refused (ok is not true)");
    std::uint64_t reply_epoch = 0;
    c.seek(epoch.begin);
    MsgpackInt reply_epoch_int;
    if (!epoch.found() || !c.read_int(reply_epoch_int)) return refuse("epoch: not an int");
    reply_epoch = reply_epoch_int.bits;
    // Checked whole before anything is merged: a reply is taken entirely or not at all.
    std::vector<std::pair<std::string_view, std::uint64_t>> seq_list;
    c.seek(seqs.begin);
    std::uint32_t n = 0;
    if (!seqs.found() || !c.read_map(n)) return refuse("seqs: not a map");
    for (std::uint32_t i = 0; i < n; ++i) {
        std::string_view topic;
        std::uint64_t seq = 0;
        if (!c.read_str(topic)) return refuse("seqs: a key that is no string");
        if (!read_uint(c, seq)) return refuse("seqs: a seq that is no uint64");
        seq_list.emplace_back(topic, seq);
    }
    struct Item {
        std::string_view topic;
        Span header, body;
    };
    std::vector<Item> items;
    c.seek(messages.begin);
    if (!messages.found() || !c.read_array(n)) return refuse("messages: not a list");
    for (std::uint32_t i = 0; i < n; ++i) {
        std::uint32_t parts = 0;
        Item item;
        if (!c.read_array(parts) || parts != 3) return refuse("messages: an item that is not [topic, header, body]");
        if (!c.read_str(item.topic)) return refuse("messages: a topic that is no string");
        skip_span(c, 2, item.header);
        skip_span(c, 2, item.body);
        items.push_back(item);
    }
    // Each node's epoch: a relay's "epochs" first, then its messages' headers, then, for a
    // reply covering one node only, the reply's own.
    std::vector<std::pair<std::string, std::uint64_t>> epoch_of;
    // node -> its entry in epoch_of, keyed by views into the reply (which outlives this call):
    // looked up per message and per seq, so not a pass over epoch_of (a reply of N nodes was
    // O(N²)).
    std::unordered_map<std::string_view, std::size_t> epoch_at;
    auto find_epoch = [&](std::string_view node) -> std::uint64_t* {
        const auto it = epoch_at.find(node);
        return it == epoch_at.end() ? nullptr : &epoch_of[it->second].second;
    };
    auto add_epoch = [&](std::string_view node, std::uint64_t e) {
        epoch_at.emplace(node, epoch_of.size());
        epoch_of.emplace_back(std::string(node), e);
    };
    auto wanted = [&](std::string_view node) { return only_node.empty() || node == only_node; };
    if (epochs.found()) {
        c.seek(epochs.begin);
        std::uint32_t m = 0;
        if (c.read_map(m)) {
            out.relay = true;
            for (std::uint32_t i = 0; i < m; ++i) {
                std::string_view node;
                MsgpackInt e;
                const bool named = c.next_is_str() && c.read_str(node);
                if (!named) c.skip(2, true);
                const std::size_t at = c.offset();
                if (named && c.read_int(e) && !e.negative && valid_node_name(node) && wanted(node) &&
                    !find_epoch(node))
                    add_epoch(node, e.bits);
                c.seek(at);
                c.skip(2);
            }
        }
    }
    for (const Item& item : items) {
        FeedTopic topic;
        FeedHeader header;
        if (!parse_topic(item.topic, topic) || !wanted(topic.node) || find_epoch(topic.node)) continue;
        if (parse_header(data + item.header.begin, item.header.end - item.header.begin, header))
            add_epoch(topic.node, header.epoch);
    }
    if (!out.relay) {
        std::string_view single;
        bool one = true;
        for (const auto& [topic, seq] : seq_list) {
            FeedTopic t;
            if (!parse_topic(topic, t)) continue;
            if (!single.empty() && t.node != single) one = false;
            single = t.node;
        }
        if (one && !single.empty() && wanted(single) && !find_epoch(single))
            add_epoch(single, reply_epoch);
    }
    for (const Item& item : items) {
        FeedTopic topic;
        if (!parse_topic(item.topic, topic) || !wanted(topic.node)) continue;
        const FeedFrames frames{{reinterpret_cast<const std::uint8_t*>(item.topic.data()), item.topic.size()},
                                {data + item.header.begin, item.header.end - item.header.begin},
                                {data + item.body.begin, item.body.end - item.body.begin},
                                3};
        merge_message(frames, now_ns);
    }
    for (const auto& [topic, seq] : seq_list) {
        FeedTopic t;
        if (!parse_topic(topic, t) || !wanted(t.node)) continue;
        if (const std::uint64_t* e = find_epoch(t.node)) merge_seq(topic, *e, seq, now_ns);
    }
    if (silent.found()) {
        c.seek(silent.begin);
        std::uint32_t m = 0;
        if (c.read_map(m)) {
            for (std::uint32_t i = 0; i < m; ++i) {
                std::string_view node;
                double age = 0;
                const bool named = c.next_is_str() && c.read_str(node);
                if (!named) c.skip(2, true);
                const std::size_t at = c.offset();
                if (named && read_number(c, data, age) && wanted(node)) merge_silent(node, age, now_ns);
                c.seek(at);
                c.skip(2);
            }
        }
    }
    out.ok = true;
    out.nodes = std::move(epoch_of);
    return out;
}

std::vector<JoinNeed> RelayTable::take_joins() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<JoinNeed> out;
    for (Node* node : join_queue_) {
        node->join_queued = false;
        if (!needs_join(*node)) continue;
        unsigned reasons = (node->joined ? 0u : kJoinUnjoined) | (node->topo_lost ? kJoinTopoLost : 0u) |
                           (node->unknown_device ? kJoinUnknownDevice : 0u);
        out.push_back(JoinNeed{node->name, node->epoch, reasons});
    }
    join_queue_.clear();
    return out;
}

bool RelayTable::join_needed(std::string_view name, std::uint64_t* epoch) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = nodes_.find(std::string(name));
    if (it == nodes_.end()) return false;
    if (epoch != nullptr) *epoch = it->second->epoch;
    return needs_join(*it->second);
}

void RelayTable::mark_joined(std::string_view name, std::uint64_t epoch) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = nodes_.find(std::string(name));
    if (it != nodes_.end() && it->second->has_epoch && it->second->epoch == epoch) it->second->joined = true;
}

std::vector<StaleChange> RelayTable::check_stale(std::int64_t now_ns, std::int64_t stale_after_ns) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<StaleChange> out;
    for (auto& [name, node] : nodes_) {
        if (node->own) continue;
        const std::int64_t silent = now_ns - node->last_heard_ns;
        const bool stale = node->has_topo && silent > stale_after_ns;
        if (stale != node->stale) {
            node->stale = stale;
            out.push_back(StaleChange{name, stale, static_cast<double>(silent) / 1e9});
        }
    }
    return out;
}

std::vector<GoneNode> RelayTable::forget_silent(std::int64_t now_ns, std::int64_t forget_after_ns) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<GoneNode> out;
    for (auto it = nodes_.begin(); it != nodes_.end();) {
        Node& node = *it->second;
        const std::int64_t silent = now_ns - std::max(node.last_heard_ns, node.last_message_ns);
        // A node heard only through events is another relay's own event stream (relays send
        // no hb, and may have nothing to announce for hours): its silence says nothing, and
        // forgetting it would make clients take its next event for a new node's. Relays are
        // few: they are kept.
        const bool relay_events_only = std::all_of(node.topics.begin(), node.topics.end(),
                                                   [](const auto& t) { return t->kind == FeedKind::Event; });
        if (node.own || relay_events_only || silent <= forget_after_ns) {
            ++it;
            continue;
        }
        for (const auto& t : node.topics) topics_.erase(t.get());
        // The join queue holds nodes by address: none may outlive its node there.
        if (node.join_queued)
            join_queue_.erase(std::remove(join_queue_.begin(), join_queue_.end(), &node), join_queue_.end());
        out.push_back(GoneNode{it->first, static_cast<double>(silent) / 1e9});
        ++stats_.forgotten;
        it = nodes_.erase(it);
    }
    return out;
}

SnapshotView RelayTable::snapshot(std::string_view prefix, std::int64_t now_ns) const {
    SnapshotView view;
    {
        std::vector<const Node*> nodes;
        const auto serve = [&](const Topic& topic, int pass) {
            const std::string& name = topic.name;
            if (topic.seq == 0 || std::string_view(name).substr(0, prefix.size()) != prefix) return;
            if ((topic.kind == FeedKind::Topo) != (pass == 0)) return;
            const Node& node = *topic.node;
            // A node being joined is not served yet, as a client would not have it yet: its
            // seqs without the topo it may lack would leave a joining client states it
            // cannot place.
            if (!node.joined && !node.own) return;
            view.seqs.emplace_back(name, topic.seq);
            nodes.push_back(&node);
            if (!topic.latest.held() || node.stale) return;
            if (topic.kind == FeedKind::State && !(node.has_topo && serving(node, topic.device))) return;
            const FrameView h = topic.latest.header(), b = topic.latest.body();
            view.messages.push_back(SnapshotView::Served{name, view.bytes.size(), h.size, b.size});
            view.bytes.append(h.text()).append(b.text());
        };
        const std::optional<std::string_view> one = node_of_prefix(prefix);
        std::lock_guard<std::mutex> lock(mu_);
        // A prefix within one node (a client's or a downstream relay's join of that node) reads
        // that node's topics only: a scan of the whole table, under the lock the forwarding
        // thread waits on, costs ~9 ms per prefix at 110k topics, five prefixes per join.
        const Node* only = nullptr;
        if (one) {
            const auto it = nodes_.find(std::string(*one));
            if (it == nodes_.end()) return view;
            only = it->second.get();
        }
        for (int pass = 0; pass < 2; ++pass) {  // topo first
            if (only != nullptr) {
                for (const auto& topic : only->topics) serve(*topic, pass);
            } else {
                topics_.for_each([&](const Topic& topic) { serve(topic, pass); });
            }
        }
        std::sort(nodes.begin(), nodes.end());
        nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
        for (const Node* node : nodes) {
            view.epochs.emplace_back(node->name, node->epoch);
            if (node->has_topo && !node->own)
                view.silent_s.emplace_back(node->name, static_cast<double>(now_ns - node->last_heard_ns) / 1e9);
            if (node->stale) view.stale.push_back(node->name);
        }
    }
    // Outside the lock: the copies are this view's own.
    const auto* data = reinterpret_cast<const std::uint8_t*>(view.bytes.data());
    const std::size_t before = view.messages.size();
    view.messages.erase(std::remove_if(view.messages.begin(), view.messages.end(),
                                       [&](const SnapshotView::Served& m) {
                                           return !msgpack_well_formed(data + m.at + m.header_size, m.body_size);
                                       }),
                        view.messages.end());
    view.refused = before - view.messages.size();
    return view;
}

std::vector<NodeSummary> RelayTable::nodes() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<NodeSummary> out;
    for (const auto& [name, node] : nodes_)
        if (node->has_topo && node->joined && !node->own) out.push_back(NodeSummary{name, node->stale});
    std::sort(out.begin(), out.end(), [](const NodeSummary& a, const NodeSummary& b) { return a.name < b.name; });
    return out;
}

std::uint64_t RelayTable::seq(std::string_view name) const {
    std::lock_guard<std::mutex> lock(mu_);
    const Topic* topic = topics_.find(name);
    return topic == nullptr ? 0 : topic->seq;
}

TableStats RelayTable::stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    TableStats s = stats_;
    s.topics = topics_.size();
    s.nodes = nodes_.size();
    return s;
}

}  // namespace cuagent::relay
