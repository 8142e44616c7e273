#include "cuagent/relay/feed_message.hpp"

#include <array>

namespace cuagent::relay {

namespace {

constexpr std::string_view kPrefix = "cua1/";
constexpr std::size_t kMaxNodeChars = 64;
constexpr std::size_t kMaxDeviceChars = 128;

struct KindName {
    std::string_view name;
    FeedKind kind;
};
// wire.KINDS.
constexpr std::array<KindName, 5> kKinds{{{"topo", FeedKind::Topo},
                                          {"state", FeedKind::State},
                                          {"hb", FeedKind::Hb},
                                          {"event", FeedKind::Event},
                                          {"sum", FeedKind::Sum}}};

bool node_char(char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
}

// Code points in valid UTF-8: the bytes that start one.
std::size_t characters(std::string_view s) noexcept {
    std::size_t n = 0;
    for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    return n;
}

bool is_msgpack_int(const std::uint8_t* p) noexcept {
    const std::uint8_t b = *p;
    return b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3);
}

bool is_msgpack_float(const std::uint8_t* p) noexcept { return *p == 0xca || *p == 0xcb; }

constexpr std::size_t kAbsent = static_cast<std::size_t>(-1);

// Walks a map whose keys are all strings (wire's as_map), noting for each wanted key where
// its last value starts. `open`: containers around the map, for the depth rule.
template <std::size_t N>
bool read_str_keyed_map(MsgpackCursor& c, int open, const std::array<std::string_view, N>& wanted,
                        std::array<std::size_t, N>& at) noexcept {
    std::uint32_t entries = 0;
    if (!c.read_map(entries)) return false;
    at.fill(kAbsent);
    for (std::uint32_t i = 0; i < entries; ++i) {
        std::string_view key;
        if (!c.read_str(key)) return false;
        for (std::size_t k = 0; k < N; ++k)
            if (key == wanted[k]) at[k] = c.offset();
        if (!c.skip(open + 1)) return false;
    }
    return true;
}

}  // namespace

const char* feed_kind_name(FeedKind kind) noexcept {
    for (const auto& k : kKinds)
        if (k.kind == kind) return k.name.data();
    return "?";
}

bool valid_node_name(std::string_view node) noexcept {
    if (node.empty() || node.size() > kMaxNodeChars) return false;
    for (char c : node)
        if (!node_char(c)) return false;
    return true;
}

bool parse_topic(std::string_view text, FeedTopic& out) noexcept {
    if (text.size() <= kPrefix.size() || text.substr(0, kPrefix.size()) != kPrefix || text.back() != '/')
        return false;
    if (!valid_utf8(reinterpret_cast<const std::uint8_t*>(text.data()), text.size())) return false;
    std::string_view rest = text.substr(kPrefix.size(), text.size() - kPrefix.size() - 1);
    std::string_view parts[3];
    std::size_t count = 0;
    while (true) {
        const std::size_t slash = rest.find('/');
        if (count == 3) return false;  // a fourth component
        parts[count++] = rest.substr(0, slash);
        if (slash == std::string_view::npos) break;
        rest.remove_prefix(slash + 1);
    }
    if (count < 2) return false;
    const KindName* kind = nullptr;
    for (const auto& k : kKinds)
        if (k.name == parts[0]) kind = &k;
    if (kind == nullptr || !valid_node_name(parts[1])) return false;
    if (count == 3) {
        const std::string_view device = parts[2];
        const std::size_t chars = characters(device);
        if (chars < 1 || chars > kMaxDeviceChars || device.find('\0') != std::string_view::npos) return false;
        if (kind->kind == FeedKind::Topo || kind->kind == FeedKind::Hb || kind->kind == FeedKind::Sum)
            return false;  // wire.NODE_KINDS: per node
        out.device = device;
    } else {
        if (kind->kind == FeedKind::State) return false;
        out.device = {};
    }
    out.kind = kind->kind;
    out.node = parts[1];
    return true;
}

bool parse_header(const std::uint8_t* data, std::size_t size, FeedHeader& out) noexcept {
    static constexpr std::array<std::string_view, 6> kKeys{"v", "node", "epoch", "seq", "ts", "gen"};
    std::array<std::size_t, 6> at;
    at.fill(kAbsent);
    MsgpackCursor c(data, size);
    std::uint32_t entries = 0;
    if (!c.read_map(entries)) return false;
    // Keys of any hashable type may sit beside ours (strict_map_key=False); only string keys
    // can be ours.
    for (std::uint32_t i = 0; i < entries; ++i) {
        if (c.next_is_str()) {
            std::string_view key;
            if (!c.read_str(key)) return false;
            for (std::size_t k = 0; k < kKeys.size(); ++k)
                if (key == kKeys[k]) at[k] = c.offset();
        } else if (!c.skip(1, /*as_key=*/true)) {
            return false;
        }
        if (!c.skip(1)) return false;
    }
    if (!c.at_end()) return false;
    for (std::size_t a : at)
        if (a == kAbsent) return false;
    MsgpackInt v, epoch, seq, ts, gen;
    std::string_view node;
    auto int_at = [&](std::size_t offset, MsgpackInt& value) {
        c.seek(offset);
        return c.read_int(value);
    };
    if (!int_at(at[0], v) || v.negative || v.bits != 1) return false;
    c.seek(at[1]);
    if (!c.read_str(node) || !valid_node_name(node)) return false;
    if (!int_at(at[2], epoch) || epoch.negative) return false;
    if (!int_at(at[3], seq) || seq.negative || seq.bits < 1) return false;
    if (!int_at(at[4], ts)) return false;
    if (!int_at(at[5], gen) || gen.negative || gen.bits < 1) return false;
    out.node = node;
    out.epoch = epoch.bits;
    out.seq = seq.bits;
    out.ts = ts;
    out.gen = gen.bits;
    return true;
}

bool read_topo_devices(const std::uint8_t* data, std::size_t size, std::vector<TopoDevice>& out) {
    out.clear();
    if (!msgpack_well_formed(data, size)) return false;
    MsgpackCursor c(data, size);
    std::uint32_t entries = 0;
    if (!c.read_map(entries)) return false;
    // Keys are strings (wire's as_map), in the body and in each device.
    std::size_t devices_at = kAbsent;
    for (std::uint32_t i = 0; i < entries; ++i) {
        std::string_view key;
        if (!c.read_str(key)) return false;
        if (key == "devices") devices_at = c.offset();
        if (!c.skip(1)) return false;
    }
    if (devices_at == kAbsent) return false;
    c.seek(devices_at);
    std::uint32_t count = 0;
    if (!c.read_array(count)) return false;
    for (std::uint32_t d = 0; d < count; ++d) {
        std::uint32_t fields = 0;
        if (!c.read_map(fields)) return false;
        std::size_t id_at = kAbsent, status_at = kAbsent;
        for (std::uint32_t f = 0; f < fields; ++f) {
            std::string_view key;
            if (!c.read_str(key)) return false;
            if (key == "id") id_at = c.offset();
            if (key == "status") status_at = c.offset();
            if (!c.skip(3)) return false;
        }
        const std::size_t next = c.offset();
        TopoDevice dev;
        std::string_view id;
        c.seek(id_at == kAbsent ? next : id_at);
        if (id_at == kAbsent || !c.read_str(id)) return false;
        dev.id.assign(id);
        if (status_at != kAbsent) {
            std::string_view status;
            c.seek(status_at);
            dev.serving = c.read_str(status) && status == "ok";
        }
        out.push_back(std::move(dev));
        c.seek(next);
    }
    return true;
}

bool read_hb(const std::uint8_t* data, std::size_t size, std::string_view topo_topic, std::uint64_t& topo_seq) noexcept {
    static constexpr std::array<std::string_view, 4> kKeys{"seqs", "rate_hz", "dropped", "uptime_s"};
    std::array<std::size_t, 4> at;
    MsgpackCursor c(data, size);
    if (!read_str_keyed_map(c, 0, kKeys, at) || !c.at_end()) return false;
    for (std::size_t a : at)
        if (a == kAbsent) return false;
    // Numbers are ints or floats (never bools); dropped an int.
    if (!(is_msgpack_int(data + at[1]) || is_msgpack_float(data + at[1]))) return false;
    if (!is_msgpack_int(data + at[2])) return false;
    if (!(is_msgpack_int(data + at[3]) || is_msgpack_float(data + at[3]))) return false;
    c.seek(at[0]);
    std::uint32_t entries = 0;
    if (!c.read_map(entries)) return false;
    topo_seq = 0;
    for (std::uint32_t i = 0; i < entries; ++i) {
        std::string_view topic;
        MsgpackInt seq;
        if (!c.read_str(topic) || !c.read_int(seq) || seq.negative) return false;
        if (topic == topo_topic) topo_seq = seq.bits;  // the last, if listed twice
    }
    return true;
}

}  // namespace cuagent::relay
