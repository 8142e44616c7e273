#include "cuagent/relay/forwarder.hpp"

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cuagent/clock.hpp"

namespace cuagent::relay {

namespace {

// Messages forwarded between two looks at the XPUB and the control socket while the XSUB
// stays readable: a subscription flood or a stop waits at most this many messages.
constexpr int kBatch = 512;
// Frames of a message the table reads (topic, header, body); more are forwarded as they come.
constexpr int kReadFrames = 3;

}  // namespace

Forwarder::Forwarder(std::shared_ptr<const ZmqApi> api, void* xsub, void* xpub, void* control, RelayTable& table)
    : api_(std::move(api)), xsub_(xsub), xpub_(xpub), control_(control), table_(table) {
    if (!api_ || !xsub_ || !xpub_ || !control_) throw std::invalid_argument("Forwarder: null libzmq or socket");
}

void Forwarder::fail(const char* what) const {
    const int err = api_->errno_of();
    throw std::runtime_error(std::string("relay forwarder: ") + what + ": " + std::strerror(err));
}

int Forwarder::forward_one(std::int64_t now_ns) {
    ZmqMsg parts[kReadFrames];
    api_->msg_init(&parts[0]);
    if (api_->msg_recv(&parts[0], xsub_, kZmqDontWait) < 0) {
        const int err = api_->errno_of();
        api_->msg_close(&parts[0]);
        if (err == EAGAIN || err == EINTR) return 0;
        if (err == kZmqETerm) return -1;
        fail("receive");
    }
    // An XSUB hands over whole messages: the rest of this one is there already.
    int count = 1;
    bool more = api_->msg_more(&parts[0]) != 0;
    while (more && count < kReadFrames) {
        api_->msg_init(&parts[count]);
        if (api_->msg_recv(&parts[count], xsub_, 0) < 0) {
            for (int i = 0; i <= count; ++i) api_->msg_close(&parts[i]);
            if (api_->errno_of() == kZmqETerm) return -1;
            fail("receive");
        }
        more = api_->msg_more(&parts[count]) != 0;
        ++count;
    }
    FeedFrames frames;
    FrameView* views[kReadFrames] = {&frames.topic, &frames.header, &frames.body};
    for (int i = 0; i < count; ++i)
        *views[i] = {static_cast<const std::uint8_t*>(api_->msg_data(&parts[i])), api_->msg_size(&parts[i])};
    frames.count = more ? kReadFrames + 1 : static_cast<std::size_t>(count);  // more than three: malformed
    const Verdict verdict = table_.ingest(frames, now_ns);
    bool sent_all = verdict == Verdict::Forward;
    for (int i = 0; i < count; ++i) {
        // A send that succeeds takes the payload and leaves an empty message; close either way.
        const bool last = i == count - 1 && !more;
        if (sent_all && api_->msg_send(&parts[i], xpub_, last ? 0 : kZmqSndMore) < 0) sent_all = false;
        api_->msg_close(&parts[i]);
    }
    // Frames beyond the third: pass them on as they come (or drain them).
    while (more) {
        ZmqMsg extra;
        api_->msg_init(&extra);
        if (api_->msg_recv(&extra, xsub_, 0) < 0) {
            api_->msg_close(&extra);
            if (api_->errno_of() == kZmqETerm) return -1;
            fail("receive");
        }
        more = api_->msg_more(&extra) != 0;
        if (sent_all && api_->msg_send(&extra, xpub_, more ? kZmqSndMore : 0) < 0) sent_all = false;
        api_->msg_close(&extra);
    }
    if (verdict == Verdict::Drop)
        dropped_.fetch_add(1, std::memory_order_relaxed);
    else if (sent_all)
        forwarded_.fetch_add(1, std::memory_order_relaxed);
    else
        send_failed_.fetch_add(1, std::memory_order_relaxed);
    return 1;
}

int Forwarder::run(int max_wait_ms) {
    const std::int64_t deadline = monotonic_ns() + std::int64_t{max_wait_ms} * 1000000;
    while (true) {
        // Forward what is there; the clock is read once per batch (hb arrival times need ms).
        const std::int64_t now = monotonic_ns();
        int n = 0;
        for (; n < kBatch; ++n) {
            const int r = forward_one(now);
            if (r < 0) return kTerminated;
            if (r == 0) break;
        }
        const std::int64_t left_ns = deadline - monotonic_ns();
        ZmqPollItem items[3] = {{xsub_, 0, kZmqPollIn, 0}, {xpub_, 0, kZmqPollIn, 0}, {control_, 0, kZmqPollIn, 0}};
        // A full batch: look without waiting, the XSUB has more.
        const long timeout = n == kBatch || left_ns <= 0 ? 0 : static_cast<long>((left_ns + 999999) / 1000000);
        if (api_->poll(items, 3, timeout) < 0) {
            const int err = api_->errno_of();
            if (err == kZmqETerm) return kTerminated;
            if (err != EINTR) fail("poll");
        }
        int wake = 0;
        if (items[1].revents & kZmqPollIn) wake |= kSubscriptions;
        if (items[2].revents & kZmqPollIn) wake |= kControl;
        if (monotonic_ns() >= deadline) wake |= kTimeout;
        if (wake != 0) return wake;
    }
}

ForwarderStats Forwarder::stats() const noexcept {
    return ForwarderStats{forwarded_.load(std::memory_order_relaxed), dropped_.load(std::memory_order_relaxed),
                          send_failed_.load(std::memory_order_relaxed)};
}

}  // namespace cuagent::relay
