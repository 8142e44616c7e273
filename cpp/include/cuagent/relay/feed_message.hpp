// What a relay reads of a feed message (PROTOCOL.md §2, §3): the topic, the header, and in
// topo and hb bodies the parts it acts on. Each reader agrees with the Python decoder
// (cuagent.wire) on what it accepts: a header is valid here exactly when
// wire.decode_header accepts it (tests/test_relay_native.py checks both ways).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cuagent/relay/msgpack_scan.hpp"

namespace cuagent::relay {

enum class FeedKind : std::uint8_t { Topo, State, Hb, Event, Sum };

const char* feed_kind_name(FeedKind kind) noexcept;

// cua1/<kind>/<node>/[<device>/]; views into the parsed text.
struct FeedTopic {
    FeedKind kind = FeedKind::Event;
    std::string_view node;
    std::string_view device;  // empty: a node topic
};

// wire.parse_topic's grammar: UTF-8, the kinds of wire.KINDS, node [A-Za-z0-9._-]{1,64},
// device 1-128 characters without '/' or NUL; topo, hb and sum name no device, state one.
bool parse_topic(std::string_view text, FeedTopic& out) noexcept;

bool valid_node_name(std::string_view node) noexcept;

// The header map (§2): v 1, node, epoch, seq >= 1, ts, gen >= 1 (extra keys ignored; a key
// given twice counts once, the last, as in a Python dict).
struct FeedHeader {
    std::string_view node;  // a view into the header frame
    std::uint64_t epoch = 0;
    std::uint64_t seq = 0;
    MsgpackInt ts;
    std::uint64_t gen = 0;
};

bool parse_header(const std::uint8_t* data, std::size_t size, FeedHeader& out) noexcept;

// The devices a topo body lists (§3.1): id, and whether its status lets it serve a state
// (absent or "ok"; any other value, or one that is no string, does not). False when the body
// is not well-formed or has no readable `devices` list of maps with string ids.
struct TopoDevice {
    std::string id;
    bool serving = true;
};

bool read_topo_devices(const std::uint8_t* data, std::size_t size, std::vector<TopoDevice>& out);

// An hb body (§3.3) as wire.decode_hb_body accepts it (seqs: str -> uint64, rate_hz and
// uptime_s numbers, dropped an int); `topo_seq` is seqs[topo_topic], 0 when not listed.
bool read_hb(const std::uint8_t* data, std::size_t size, std::string_view topo_topic,
             std::uint64_t& topo_seq) noexcept;

}  // namespace cuagent::relay
