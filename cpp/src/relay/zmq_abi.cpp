#include "cuagent/relay/zmq_abi.hpp"

#include <dlfcn.h>
#include <link.h>

#include <string>
#include <vector>

namespace cuagent::relay {

namespace {

int collect_libzmq(dl_phdr_info* info, std::size_t, void* data) {
    auto* found = static_cast<std::vector<std::string>*>(data);
    const std::string name = info->dlpi_name ? info->dlpi_name : "";
    const auto slash = name.rfind('/');
    if (name.find("libzmq", slash == std::string::npos ? 0 : slash) != std::string::npos) found->push_back(name);
    return 0;
}

template <typename Fn>
bool take(void* handle, const char* name, Fn& fn, std::string& why) {
    fn = reinterpret_cast<Fn>(dlsym(handle, name));
    if (fn == nullptr) why = std::string("libzmq lacks ") + name;
    return fn != nullptr;
}

}  // namespace

std::shared_ptr<const ZmqApi> find_loaded_libzmq(const std::string& anchor, std::string& why) {
    std::string path;
    if (!anchor.empty()) {
        void* h = dlopen(anchor.c_str(), RTLD_NOLOAD | RTLD_NOW);
        if (h == nullptr) {
            why = "pyzmq's module " + anchor + " is not loaded";
            return nullptr;
        }
        void* sym = dlsym(h, "zmq_msg_recv");
        Dl_info info{};
        if (sym != nullptr && dladdr(sym, &info) != 0 && info.dli_fname != nullptr) path = info.dli_fname;
        dlclose(h);
        if (path.empty()) {
            why = "pyzmq's libzmq exports no zmq_msg_recv (a static build?)";
            return nullptr;
        }
    } else {
        std::vector<std::string> found;
        dl_iterate_phdr(collect_libzmq, &found);
        if (found.size() != 1) {
            why = found.empty() ? "no libzmq is loaded in this process" : "several libzmq are loaded: " + found[0] +
                                                                              ", " + found[1];
            return nullptr;
        }
        path = found[0];
    }
    // RTLD_NOLOAD: only ever the copy already there. The reference taken is never dropped.
    void* handle = dlopen(path.c_str(), RTLD_NOLOAD | RTLD_NOW);
    if (handle == nullptr) {
        why = "cannot open the loaded " + path;
        return nullptr;
    }
    auto api = std::make_shared<ZmqApi>();
    api->path = path;
    if (!take(handle, "zmq_msg_init", api->msg_init, why) || !take(handle, "zmq_msg_close", api->msg_close, why) ||
        !take(handle, "zmq_msg_data", api->msg_data, why) ||
        !take(handle, "zmq_msg_size", api->msg_size, why) || !take(handle, "zmq_msg_more", api->msg_more, why) ||
        !take(handle, "zmq_msg_recv", api->msg_recv, why) || !take(handle, "zmq_msg_send", api->msg_send, why) ||
        !take(handle, "zmq_poll", api->poll, why) || !take(handle, "zmq_errno", api->errno_of, why) ||
        !take(handle, "zmq_version", api->version, why))
        return nullptr;
    api->version(&api->major, &api->minor, &api->patch);
    if (api->major != 4) {
        why = "libzmq " + std::to_string(api->major) + "." + std::to_string(api->minor) +
              ": the forwarder knows the 4.x ABI only";
        return nullptr;
    }
    return api;
}

}  // namespace cuagent::relay
