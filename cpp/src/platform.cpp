#include "cuagent/platform.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <ctime>
#include <stdexcept>

#if defined(__linux__) && !defined(CUAGENT_PORTABLE)
#define CUAGENT_LINUX 1
#include <linux/futex.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

namespace cuagent::platform {

#ifdef CUAGENT_LINUX

const char* name() noexcept { return "linux"; }

Notifier::Notifier() {
    read_fd_ = write_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (read_fd_ < 0) throw std::runtime_error("eventfd failed: cannot signal finished windows");
}

Notifier::~Notifier() { close(read_fd_); }

void Notifier::notify() noexcept {
    const std::uint64_t one = 1;
    // EAGAIN only if the counter would overflow, which still leaves the fd
    // readable, so the result can be ignored.
    [[maybe_unused]] const ssize_t written = write(write_fd_, &one, sizeof one);
}

void Notifier::drain() noexcept {
    std::uint64_t count = 0;
    [[maybe_unused]] const ssize_t got = read(read_fd_, &count, sizeof count);  // resets the counter
}

void sleep_until_monotonic_ns(std::int64_t deadline_ns) noexcept {
    timespec ts;
    ts.tv_sec = static_cast<time_t>(deadline_ns / 1000000000);
    ts.tv_nsec = static_cast<long>(deadline_ns % 1000000000);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {}
}

void set_fine_timer_slack() noexcept { prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL); }

void name_this_thread(const char* name) noexcept { prctl(PR_SET_NAME, name, 0UL, 0UL, 0UL); }

namespace {
// The futex word is the atomic's own storage (as libstdc++'s atomic<>::wait uses it).
std::uint32_t* futex_word(const std::atomic<std::uint32_t>& word) noexcept {
    static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t), "a futex is 32 bits");
    return reinterpret_cast<std::uint32_t*>(const_cast<std::atomic<std::uint32_t>*>(&word));
}

// Sleeps while `word` holds `expected`, until `deadline_ns` (CLOCK_MONOTONIC).
// FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC timeout; it returns at
// once if the word no longer holds `expected` (a change that came first).
void sleep_on_word(const std::atomic<std::uint32_t>& word, std::uint32_t expected, std::int64_t deadline_ns) noexcept {
    timespec ts;
    ts.tv_sec = static_cast<time_t>(deadline_ns / 1000000000);
    ts.tv_nsec = static_cast<long>(deadline_ns % 1000000000);
    while (word.load(std::memory_order_seq_cst) == expected) {
        if (syscall(SYS_futex, futex_word(word), FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected, &ts, nullptr,
                    FUTEX_BITSET_MATCH_ANY) == 0)
            continue;  // woken: by a change, or spuriously (then the deadline still stands)
        if (errno == ETIMEDOUT) return;
        if (errno != EINTR && errno != EAGAIN) {  // no futex here: sleep without an early wake
            sleep_until_monotonic_ns(deadline_ns);
            return;
        }
    }
}
}  // namespace

void StopFlag::request() noexcept {
    word_.store(1, std::memory_order_release);
    syscall(SYS_futex, futex_word(word_), FUTEX_WAKE | FUTEX_PRIVATE_FLAG, INT_MAX, nullptr, nullptr, 0);
}

void StopFlag::sleep_until(std::int64_t deadline_ns) const noexcept { sleep_on_word(word_, 0, deadline_ns); }

bool Doorbell::wakes_early() noexcept { return true; }

void Doorbell::ring() noexcept {
    // Sequentially consistent with the sleeper's two steps (sleeping_, then
    // word_): either it sees this ring, or this sees it sleeping.
    word_.fetch_add(1, std::memory_order_seq_cst);
    if (sleeping_.load(std::memory_order_seq_cst) != 0)
        syscall(SYS_futex, futex_word(word_), FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, nullptr, nullptr, 0);
}

void Doorbell::sleep_until(std::int64_t deadline_ns, std::uint32_t seen) noexcept {
    sleeping_.store(1, std::memory_order_seq_cst);
    sleep_on_word(word_, seen, deadline_ns);
    sleeping_.store(0, std::memory_order_relaxed);
}

#else  // plain POSIX

namespace {
bool set_flags(int fd) noexcept {
    const int status = fcntl(fd, F_GETFL);
    const int descriptor = fcntl(fd, F_GETFD);
    return status >= 0 && descriptor >= 0 && fcntl(fd, F_SETFL, status | O_NONBLOCK) == 0 &&
           fcntl(fd, F_SETFD, descriptor | FD_CLOEXEC) == 0;
}

std::int64_t monotonic_now_ns() noexcept {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}
}  // namespace

const char* name() noexcept { return "posix"; }

Notifier::Notifier() {
    int fds[2];
    // pipe2 is not POSIX (macOS lacks it): set the flags afterwards.
    if (pipe(fds) != 0) throw std::runtime_error("pipe failed: cannot signal finished windows");
    read_fd_ = fds[0];
    write_fd_ = fds[1];
    if (!set_flags(read_fd_) || !set_flags(write_fd_)) {
        close(read_fd_);
        close(write_fd_);
        throw std::runtime_error("fcntl failed: cannot make the window pipe non-blocking");
    }
}

Notifier::~Notifier() {
    close(read_fd_);
    close(write_fd_);
}

void Notifier::notify() noexcept {
    const char byte = 1;
    // A full pipe (EAGAIN: 64 KiB of notifications nobody drained) is still
    // readable, which is all a notification has to achieve.
    [[maybe_unused]] const ssize_t written = write(write_fd_, &byte, 1);
}

void Notifier::drain() noexcept {
    char bytes[256];
    while (read(read_fd_, bytes, sizeof bytes) > 0) {}
}

void sleep_until_monotonic_ns(std::int64_t deadline_ns) noexcept {
    // nanosleep is relative: sleep what is left, then look at the clock again
    // (after a signal, or an early or late wake), until the deadline passed.
    for (std::int64_t now = monotonic_now_ns(); now < deadline_ns; now = monotonic_now_ns()) {
        const std::int64_t left = deadline_ns - now;
        timespec ts;
        ts.tv_sec = static_cast<time_t>(left / 1000000000);
        ts.tv_nsec = static_cast<long>(left % 1000000000);
        nanosleep(&ts, nullptr);
    }
}

void set_fine_timer_slack() noexcept {}

void name_this_thread(const char*) noexcept {}

void StopFlag::request() noexcept { word_.store(1, std::memory_order_release); }

void StopFlag::sleep_until(std::int64_t deadline_ns) const noexcept {
    // Longest single sleep: how long a request() may wait for a sleeper.
    constexpr std::int64_t kStopCheckNs = 50'000'000;
    for (std::int64_t now = monotonic_now_ns(); now < deadline_ns && !requested(); now = monotonic_now_ns())
        sleep_until_monotonic_ns(std::min(deadline_ns, now + kStopCheckNs));
}

bool Doorbell::wakes_early() noexcept { return false; }

void Doorbell::ring() noexcept { word_.fetch_add(1, std::memory_order_release); }

void Doorbell::sleep_until(std::int64_t deadline_ns, std::uint32_t seen) noexcept {
    if (rung() == seen) sleep_until_monotonic_ns(deadline_ns);
}

#endif

}  // namespace cuagent::platform
