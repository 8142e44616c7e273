// The few functions of libzmq's stable C ABI (4.x) the relay's forwarder calls, taken at run
// time from the libzmq already loaded into the process: the one pyzmq uses, so that the
// forwarder works on pyzmq's own sockets (their `underlying` addresses). No zmq.h is needed
// to build: the declarations below are the ABI's (zmq_msg_t is 64 opaque bytes aligned like a
// pointer; zmq_pollitem_t is {socket, fd, events, revents} on POSIX).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace cuagent::relay {

struct ZmqMsg {
    alignas(void*) unsigned char opaque[64];
};

struct ZmqPollItem {
    void* socket;
    int fd;
    short events;
    short revents;
};

constexpr int kZmqDontWait = 1;
constexpr int kZmqSndMore = 2;
constexpr short kZmqPollIn = 1;
constexpr int kZmqETerm = 156384712 + 53;  // ZMQ_HAUSNUMERO + 53

struct ZmqApi {
    int (*msg_init)(ZmqMsg*) = nullptr;
    int (*msg_close)(ZmqMsg*) = nullptr;
    void* (*msg_data)(ZmqMsg*) = nullptr;
    std::size_t (*msg_size)(const ZmqMsg*) = nullptr;
    int (*msg_more)(const ZmqMsg*) = nullptr;
    int (*msg_recv)(ZmqMsg*, void* socket, int flags) = nullptr;
    int (*msg_send)(ZmqMsg*, void* socket, int flags) = nullptr;
    int (*poll)(ZmqPollItem* items, int count, long timeout_ms) = nullptr;
    int (*errno_of)() = nullptr;
    void (*version)(int* major, int* minor, int* patch) = nullptr;
    std::string path;  // the library file
    int major = 0, minor = 0, patch = 0;
};

// The libzmq loaded in this process. `anchor`: a loaded object (pyzmq's extension module)
// whose own libzmq is wanted: the one its zmq_msg_recv resolves to, found through it. Without
// an anchor, the only loaded object whose path names libzmq. Null, with the reason in `why`,
// when there is none (pyzmq built with a static libzmq whose symbols it does not export), more
// than one without an anchor, a function missing, or a major version other than 4. Never
// loads a library: the one found stays loaded for the life of the process.
std::shared_ptr<const ZmqApi> find_loaded_libzmq(const std::string& anchor, std::string& why);

}  // namespace cuagent::relay
