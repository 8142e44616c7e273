// The few operating-system services the core needs beyond standard C++.
//
// Linux has precise ones: an eventfd to signal finished windows, a sleep to an
// absolute CLOCK_MONOTONIC deadline (clock_nanosleep with TIMER_ABSTIME), and a
// per-thread timer slack of 1 ns (prctl). Any other POSIX system (a developer's
// macOS laptop) gets stand-ins built from plain POSIX calls: a non-blocking
// pipe, relative nanosleeps towards the deadline that re-read the clock, and
// the system's default slack. The CMake option CUAGENT_PORTABLE forces the
// stand-ins on Linux too, so that CI builds and tests them.
#pragma once

#include <atomic>
#include <cstdint>

namespace cuagent::platform {

// The implementation this build uses: "linux" or "posix".
const char* name() noexcept;

// A file descriptor that one thread makes readable and a poller (select,
// zmq.Poller, asyncio) waits on.
class Notifier {
public:
    Notifier();  // throws std::runtime_error when the OS gives no descriptor
    ~Notifier();
    Notifier(const Notifier&) = delete;
    Notifier& operator=(const Notifier&) = delete;

    // Readable from the first notify() until drain().
    int fd() const noexcept { return read_fd_; }
    // Any thread; never blocks, never allocates.
    void notify() noexcept;
    // Makes fd() unreadable until the next notify(); a notify() racing with it
    // may be consumed, so look for what was notified after draining.
    void drain() noexcept;

private:
    int read_fd_ = -1;
    int write_fd_ = -1;  // the same descriptor as read_fd_ for an eventfd
};

// Sleeps until an absolute CLOCK_MONOTONIC time; signals do not cut it short.
void sleep_until_monotonic_ns(std::int64_t deadline_ns) noexcept;

// Names the calling thread (at most 15 characters are kept), so that `top -H`
// and profiles tell the engine's threads apart. Does nothing where the OS has
// no such call.
void name_this_thread(const char* name) noexcept;

// A stop request that wakes the threads sleeping towards their next deadline
// at once. Threads that tick rarely (a device read every 100 ms on a reader
// thread of its own) used to cut every sleep into 50 ms pieces to notice a
// stop in time, which doubled their wake-ups, and each costs tens of us in a
// VM. On Linux a sleeper waits on a futex with the deadline as an absolute
// CLOCK_MONOTONIC timeout (with the thread's timer slack, like
// clock_nanosleep): one wake-up per deadline, and request() wakes it. The
// POSIX stand-in still sleeps in pieces of at most 50 ms.
class StopFlag {
public:
    // Any thread; never blocks, never allocates.
    bool requested() const noexcept { return word_.load(std::memory_order_acquire) != 0; }
    void request() noexcept;  // sets the flag and wakes every sleeper
    void clear() noexcept { word_.store(0, std::memory_order_release); }
    // Sleeps until `deadline_ns` (CLOCK_MONOTONIC) or until request(),
    // whichever comes first; signals do not cut it short.
    void sleep_until(std::int64_t deadline_ns) const noexcept;

private:
    std::atomic<std::uint32_t> word_{0};  // 1: stop requested (a futex word on Linux)
};

// A wake-up that one thread sends another sleeping towards a deadline: the
// sampler rings it when a tick has completed a window, so that the aggregator
// finishes the window as soon as its samples are in, not at a guessed time
// after the tick (which was either early, and cost a second wake-up, or late,
// and cost latency). On Linux a futex word counts the rings, and a ring costs a
// syscall only while the other thread sleeps. The POSIX stand-in never wakes a
// sleeper early (wakes_early() is false): it keeps to its deadline.
class Doorbell {
public:
    static bool wakes_early() noexcept;
    // How often it has rung: pass it to sleep_until() to sleep only if it has
    // not rung since.
    std::uint32_t rung() const noexcept { return word_.load(std::memory_order_acquire); }
    void ring() noexcept;  // any thread; never blocks, never allocates
    // One thread at a time: sleeps until `deadline_ns` (CLOCK_MONOTONIC), or
    // until rung() != seen, whichever comes first.
    void sleep_until(std::int64_t deadline_ns, std::uint32_t seen) noexcept;

private:
    std::atomic<std::uint32_t> word_{0};      // rings so far (a futex word on Linux)
    std::atomic<std::uint32_t> sleeping_{0};  // 1 while a thread waits on word_
};

// Asks for the finest timer slack for the calling thread: the default 50 us
// on Linux would dominate a sampler's jitter at 10 kHz. Does nothing where
// the OS has no such setting.
void set_fine_timer_slack() noexcept;

}  // namespace cuagent::platform
