// The relay's forwarding loop (PROTOCOL.md §7) in native code: whole messages from the XSUB
// to the XPUB, frames untouched and never copied on the way, each message's topic and header
// read into a RelayTable (which copies the header and body of the latest per topic). It hands control back only when the XPUB holds subscriptions to read (the
// relay's Python subscription guard reads them), when the control socket is readable, or
// after a wait (for timers): libzmq's own proxy would pass subscriptions upstream instead.
//
// One thread calls run() at a time, and no other thread uses the three sockets meanwhile.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "cuagent/relay/relay_table.hpp"
#include "cuagent/relay/zmq_abi.hpp"

namespace cuagent::relay {

struct ForwarderStats {
    std::uint64_t forwarded = 0;    // messages sent on
    std::uint64_t dropped = 0;      // messages the table said not to forward (summary interval)
    std::uint64_t send_failed = 0;  // messages the XPUB refused (it drops at each subscriber's HWM instead)
};

class Forwarder {
public:
    enum Wake : int { kSubscriptions = 1, kControl = 2, kTimeout = 4, kTerminated = 8 };

    Forwarder(std::shared_ptr<const ZmqApi> api, void* xsub, void* xpub, void* control, RelayTable& table);

    // Forwards until a wake reason holds (several may); kTimeout after `max_wait_ms`;
    // kTerminated when the context is terminated. Throws std::runtime_error on another
    // libzmq error.
    int run(int max_wait_ms);
    ForwarderStats stats() const noexcept;

private:
    // One message forwarded (1), none waiting (0), or the context terminated (-1).
    int forward_one(std::int64_t now_ns);
    [[noreturn]] void fail(const char* what) const;

    std::shared_ptr<const ZmqApi> api_;
    void* xsub_;
    void* xpub_;
    void* control_;
    RelayTable& table_;
    std::atomic<std::uint64_t> forwarded_{0}, dropped_{0}, send_failed_{0};
};

}  // namespace cuagent::relay
