#include "cuagent/relay/msgpack_scan.hpp"

namespace cuagent::relay {

namespace {

bool continuation(std::uint8_t b) noexcept { return (b & 0xC0) == 0x80; }

constexpr std::uint64_t kMaxNanoseconds = 999999999;

}  // namespace

// Strict UTF-8 as Python decodes it: no overlong forms, no surrogates, nothing past U+10FFFF.
bool valid_utf8(const std::uint8_t* s, std::size_t n) noexcept {
    std::size_t i = 0;
    while (i < n) {
        const std::uint8_t c = s[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        if (c < 0xC2) return false;  // a stray continuation byte, or an overlong 2-byte form
        if (c < 0xE0) {
            if (n - i < 2 || !continuation(s[i + 1])) return false;
            i += 2;
        } else if (c < 0xF0) {
            if (n - i < 3 || !continuation(s[i + 1]) || !continuation(s[i + 2])) return false;
            if (c == 0xE0 && s[i + 1] < 0xA0) return false;   // overlong
            if (c == 0xED && s[i + 1] >= 0xA0) return false;  // UTF-16 surrogates
            i += 3;
        } else if (c < 0xF5) {
            if (n - i < 4 || !continuation(s[i + 1]) || !continuation(s[i + 2]) || !continuation(s[i + 3]))
                return false;
            if (c == 0xF0 && s[i + 1] < 0x90) return false;   // overlong
            if (c == 0xF4 && s[i + 1] >= 0x90) return false;  // past U+10FFFF
            i += 4;
        } else {
            return false;
        }
    }
    return true;
}

std::uint64_t MsgpackCursor::be(std::size_t n) noexcept {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | p_[i];
    p_ += n;
    return v;
}

bool MsgpackCursor::read_map(std::uint32_t& entries) noexcept {
    if (!need(1)) return false;
    const std::uint8_t b = *p_;
    if (b >= 0x80 && b <= 0x8f) {
        ++p_;
        entries = b & 0x0f;
        return true;
    }
    if (b == 0xde || b == 0xdf) {
        const std::size_t n = b == 0xde ? 2 : 4;
        if (!need(1 + n)) return false;
        ++p_;
        entries = static_cast<std::uint32_t>(be(n));
        return true;
    }
    return false;
}

bool MsgpackCursor::read_array(std::uint32_t& items) noexcept {
    if (!need(1)) return false;
    const std::uint8_t b = *p_;
    if (b >= 0x90 && b <= 0x9f) {
        ++p_;
        items = b & 0x0f;
        return true;
    }
    if (b == 0xdc || b == 0xdd) {
        const std::size_t n = b == 0xdc ? 2 : 4;
        if (!need(1 + n)) return false;
        ++p_;
        items = static_cast<std::uint32_t>(be(n));
        return true;
    }
    return false;
}

bool MsgpackCursor::next_is_str() const noexcept {
    if (!need(1)) return false;
    const std::uint8_t b = *p_;
    return (b >= 0xa0 && b <= 0xbf) || b == 0xd9 || b == 0xda || b == 0xdb;
}

bool MsgpackCursor::read_str(std::string_view& out) noexcept {
    if (!need(1)) return false;
    const std::uint8_t b = *p_;
    std::size_t len = 0;
    if (b >= 0xa0 && b <= 0xbf) {
        ++p_;
        len = b & 0x1f;
    } else if (b == 0xd9 || b == 0xda || b == 0xdb) {
        const std::size_t n = b == 0xd9 ? 1 : b == 0xda ? 2 : 4;
        if (!need(1 + n)) return false;
        ++p_;
        len = static_cast<std::size_t>(be(n));
    } else {
        return false;
    }
    if (!need(len) || !valid_utf8(p_, len)) return false;
    out = std::string_view(reinterpret_cast<const char*>(p_), len);
    p_ += len;
    return true;
}

bool MsgpackCursor::read_int(MsgpackInt& out) noexcept {
    if (!need(1)) return false;
    const std::uint8_t b = *p_;
    if (b <= 0x7f) {
        ++p_;
        out = {false, b};
        return true;
    }
    if (b >= 0xe0) {
        ++p_;
        out = {true, static_cast<std::uint64_t>(static_cast<std::int64_t>(static_cast<std::int8_t>(b)))};
        return true;
    }
    if (b >= 0xcc && b <= 0xcf) {  // uint8..uint64
        const std::size_t n = std::size_t{1} << (b - 0xcc);
        if (!need(1 + n)) return false;
        ++p_;
        out = {false, be(n)};
        return true;
    }
    if (b >= 0xd0 && b <= 0xd3) {  // int8..int64: sign-extend
        const std::size_t n = std::size_t{1} << (b - 0xd0);
        if (!need(1 + n)) return false;
        ++p_;
        std::uint64_t v = be(n);
        if (n < 8 && (v >> (8 * n - 1)) & 1) v |= ~std::uint64_t{0} << (8 * n);
        out = {static_cast<std::int64_t>(v) < 0, v};
        return true;
    }
    return false;
}

bool MsgpackCursor::skip(int open, bool as_key) noexcept {
    // Items still to read in each open container (a map counts keys and values), so that
    // depth costs no stack frames; `map` marks where every other item is a key.
    struct Level {
        std::uint64_t left;
        bool map;
    };
    Level levels[kMsgpackMaxDepth];
    int depth = 0;
    do {
        bool key = as_key && depth == 0;
        if (depth > 0) {
            Level& top = levels[depth - 1];
            key = top.map && top.left % 2 == 0;
            --top.left;
        }
        if (!need(1)) return false;
        const std::uint8_t b = *p_++;
        std::uint64_t container = 0;  // items of an array or map starting here
        bool is_container = false, is_map = false;
        std::size_t skip_bytes = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            // fixint, nil, bool: nothing more
        } else if (b >= 0x80 && b <= 0x8f) {
            is_container = is_map = true;
            container = 2 * std::uint64_t{b & 0x0fu};
        } else if (b >= 0x90 && b <= 0x9f) {
            is_container = true;
            container = b & 0x0fu;
        } else if (b >= 0xa0 && b <= 0xbf) {
            const std::size_t len = b & 0x1fu;
            if (!need(len) || !valid_utf8(p_, len)) return false;
            p_ += len;
        } else {
            switch (b) {
                case 0xc4: case 0xc5: case 0xc6: {  // bin 8/16/32
                    const std::size_t n = b == 0xc4 ? 1 : b == 0xc5 ? 2 : 4;
                    if (!need(n)) return false;
                    skip_bytes = static_cast<std::size_t>(be(n));
                    break;
                }
                case 0xd9: case 0xda: case 0xdb: {  // str 8/16/32
                    const std::size_t n = b == 0xd9 ? 1 : b == 0xda ? 2 : 4;
                    if (!need(n)) return false;
                    const auto len = static_cast<std::size_t>(be(n));
                    if (!need(len) || !valid_utf8(p_, len)) return false;
                    p_ += len;
                    break;
                }
                case 0xca: skip_bytes = 4; break;
                case 0xcb: skip_bytes = 8; break;
                case 0xcc: case 0xd0: skip_bytes = 1; break;
                case 0xcd: case 0xd1: skip_bytes = 2; break;
                case 0xce: case 0xd2: skip_bytes = 4; break;
                case 0xcf: case 0xd3: skip_bytes = 8; break;
                case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
                case 0xc7: case 0xc8: case 0xc9: {  // ext: [length], type, data
                    std::size_t len = 0;
                    if (b >= 0xd4) {
                        len = std::size_t{1} << (b - 0xd4);
                    } else {
                        const std::size_t n = b == 0xc7 ? 1 : b == 0xc8 ? 2 : 4;
                        if (!need(n)) return false;
                        len = static_cast<std::size_t>(be(n));
                    }
                    if (!need(1)) return false;
                    const auto type = static_cast<std::int8_t>(*p_++);
                    if (!need(len)) return false;
                    // Python builds an ExtType (codes 0-127 only) or, for -1, a timestamp, and
                    // refuses what neither takes.
                    if (type < -1) return false;
                    if (type == -1) {
                        if (len == 8) {
                            std::uint64_t data64 = 0;
                            for (std::size_t i = 0; i < 8; ++i) data64 = (data64 << 8) | p_[i];
                            if ((data64 >> 34) > kMaxNanoseconds) return false;
                        } else if (len == 12) {
                            std::uint64_t ns = 0;
                            for (std::size_t i = 0; i < 4; ++i) ns = (ns << 8) | p_[i];
                            if (ns > kMaxNanoseconds) return false;
                        } else if (len != 4) {
                            return false;
                        }
                    }
                    skip_bytes = len;
                    break;
                }
                case 0xdc: case 0xdd: {  // array 16/32
                    const std::size_t n = b == 0xdc ? 2 : 4;
                    if (!need(n)) return false;
                    is_container = true;
                    container = be(n);
                    break;
                }
                case 0xde: case 0xdf: {  // map 16/32
                    const std::size_t n = b == 0xde ? 2 : 4;
                    if (!need(n)) return false;
                    is_container = is_map = true;
                    container = 2 * be(n);
                    break;
                }
                default:  // 0xc1: never used
                    return false;
            }
        }
        if (skip_bytes) {
            if (!need(skip_bytes)) return false;
            p_ += skip_bytes;
        }
        if (is_container) {
            if (key) return false;  // unhashable in Python
            if (open + depth >= kMsgpackMaxDepth) return false;
            // Every item takes at least one byte: a count beyond what is left is truncated.
            if (container > static_cast<std::uint64_t>(end_ - p_)) return false;
            if (container > 0) levels[depth++] = Level{container, is_map};
        }
        while (depth > 0 && levels[depth - 1].left == 0) --depth;
    } while (depth > 0);
    return true;
}

bool msgpack_well_formed(const std::uint8_t* data, std::size_t size) noexcept {
    MsgpackCursor c(data, size);
    return c.skip() && c.at_end();
}

}  // namespace cuagent::relay
