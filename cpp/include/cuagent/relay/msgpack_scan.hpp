// A bounded msgpack reader for the relay (PROTOCOL.md §3, §7): it reads feed headers and the
// few parts of topo and hb bodies a relay needs, and tells whether a frame is one well-formed
// value, without building objects. "Well-formed" is what Python's msgpack (unpackb, raw=False,
// strict_map_key=False) accepts, since clients decode the relay's snapshot replies with it and
// one frame it refuses, spliced into a reply, would make the whole reply undecodable:
//   - strings are valid UTF-8;
//   - a map key is never an array or a map (Python cannot hash them);
//   - an ext type code is 0-127, or -1: a timestamp of 4, 8 or 12 bytes, nanoseconds below 10^9;
//   - at most 1024 arrays/maps are open when another one starts (msgpack's stack);
//   - nothing follows the value; 0xc1 never appears.
// Never reads past the end of its input, never allocates, never recurses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace cuagent::relay {

// A msgpack integer: `negative` ones are int64 values below 0, the rest uint64.
struct MsgpackInt {
    bool negative = false;
    std::uint64_t bits = 0;
    std::int64_t as_signed() const noexcept { return static_cast<std::int64_t>(bits); }
};

// Containers msgpack-python allows open at once (its unpacker stack).
constexpr int kMsgpackMaxDepth = 1024;

class MsgpackCursor {
public:
    MsgpackCursor(const std::uint8_t* data, std::size_t size) noexcept : p_(data), end_(data + size), begin_(data) {}

    std::size_t offset() const noexcept { return static_cast<std::size_t>(p_ - begin_); }
    bool at_end() const noexcept { return p_ == end_; }
    void seek(std::size_t offset) noexcept { p_ = begin_ + offset; }

    // Each read consumes one value of its type, or returns false (the cursor is then unspecified).
    bool read_map(std::uint32_t& entries) noexcept;
    bool read_array(std::uint32_t& items) noexcept;
    bool read_str(std::string_view& out) noexcept;  // checks UTF-8
    bool read_int(MsgpackInt& out) noexcept;
    // Whether the next value is a string, without consuming it.
    bool next_is_str() const noexcept;
    // Consumes one value of any type, checking it as described above; `open` containers
    // enclose it already (for the depth rule); `as_key`: it is a map key (no array or map).
    bool skip(int open = 0, bool as_key = false) noexcept;

private:
    bool need(std::size_t n) const noexcept { return static_cast<std::size_t>(end_ - p_) >= n; }
    std::uint64_t be(std::size_t n) noexcept;  // big-endian, n bytes; need(n) checked by the caller

    const std::uint8_t* p_;
    const std::uint8_t* end_;
    const std::uint8_t* begin_;
};

bool valid_utf8(const std::uint8_t* s, std::size_t n) noexcept;

// Exactly one well-formed value fills [data, data + size).
bool msgpack_well_formed(const std::uint8_t* data, std::size_t size) noexcept;

}  // namespace cuagent::relay
