// The little of msgpack the feed's state bodies need, appended to a string.
//
// Each value takes the shortest form the msgpack spec allows, which is what
// the Python encoder (msgpack-python's packb with use_bin_type=True) picks:
// ints in the smallest fixint/uint/int form (non-negative ones as unsigned),
// floats always as float64, str and bin with the shortest length prefix. So
// a body written here is byte for byte the one python/cuagent/wire packs for
// the same values (tests/test_state_encoder.py holds them to it).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace cuagent::msgpack {

class Writer {
public:
    explicit Writer(std::string& out) noexcept : out_(out) {}

    void map(std::uint32_t entries) { header(entries, 0x80, 16, 0xde, 0xdf); }
    void array(std::uint32_t items) { header(items, 0x90, 16, 0xdc, 0xdd); }

    void str(std::string_view s) {
        const auto n = static_cast<std::uint64_t>(s.size());
        if (n < 32)
            byte(static_cast<std::uint8_t>(0xa0 | n));
        else
            length(n, 0xd9, 0xda, 0xdb);
        out_.append(s.data(), s.size());
    }

    void bin(const void* data, std::size_t n) {
        length(n, 0xc4, 0xc5, 0xc6);
        out_.append(static_cast<const char*>(data), n);
    }

    void uint(std::uint64_t v) {
        if (v < 0x80) {
            byte(static_cast<std::uint8_t>(v));
        } else if (v <= 0xff) {
            byte(0xcc);
            byte(static_cast<std::uint8_t>(v));
        } else if (v <= 0xffff) {
            byte(0xcd);
            be(static_cast<std::uint16_t>(v));
        } else if (v <= 0xffffffffu) {
            byte(0xce);
            be(static_cast<std::uint32_t>(v));
        } else {
            byte(0xcf);
            be(v);
        }
    }

    void sint(std::int64_t v) {
        if (v >= 0) {
            uint(static_cast<std::uint64_t>(v));
        } else if (v >= -32) {
            byte(static_cast<std::uint8_t>(v));  // negative fixint: the value's own low byte
        } else if (v >= -0x80) {
            byte(0xd0);
            byte(static_cast<std::uint8_t>(v));
        } else if (v >= -0x8000) {
            byte(0xd1);
            be(static_cast<std::uint16_t>(v));
        } else if (v >= -0x80000000LL) {
            byte(0xd2);
            be(static_cast<std::uint32_t>(v));
        } else {
            byte(0xd3);
            be(static_cast<std::uint64_t>(v));
        }
    }

    void float64(double v) {
        std::uint64_t bits;
        std::memcpy(&bits, &v, sizeof bits);
        byte(0xcb);
        be(bits);
    }

    // Bytes that are msgpack already (a pre-packed key, a caller's entries).
    void raw(std::string_view packed) { out_.append(packed.data(), packed.size()); }

private:
    void header(std::uint32_t n, std::uint8_t fix, std::uint32_t fix_limit, std::uint8_t b16, std::uint8_t b32) {
        if (n < fix_limit) {
            byte(static_cast<std::uint8_t>(fix | n));
        } else if (n <= 0xffff) {
            byte(b16);
            be(static_cast<std::uint16_t>(n));
        } else {
            byte(b32);
            be(n);
        }
    }
    // The 8/16/32-bit length forms of str and bin: the marker, then the length big-endian.
    void length(std::uint64_t n, std::uint8_t b8, std::uint8_t b16, std::uint8_t b32) {
        if (n <= 0xff) {
            byte(b8);
            byte(static_cast<std::uint8_t>(n));
        } else if (n <= 0xffff) {
            byte(b16);
            be(static_cast<std::uint16_t>(n));
        } else {
            byte(b32);
            be(static_cast<std::uint32_t>(n));
        }
    }
    void byte(std::uint8_t b) { out_.push_back(static_cast<char>(b)); }
    template <typename T>
    void be(T v) {  // msgpack is big-endian whatever the host is
        char buf[sizeof(T)];
        for (std::size_t i = 0; i < sizeof(T); ++i)
            buf[i] = static_cast<char>((v >> (8 * (sizeof(T) - 1 - i))) & 0xff);
        out_.append(buf, sizeof(T));
    }

    std::string& out_;
};

// `s` packed as a msgpack str: keys written once at setup, appended with raw().
inline std::string packed_str(std::string_view s) {
    std::string out;
    Writer(out).str(s);
    return out;
}

}  // namespace cuagent::msgpack
