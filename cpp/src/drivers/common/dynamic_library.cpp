#include "dynamic_library.hpp"

#include <dlfcn.h>

#include <stdexcept>

namespace cuagent::drivers {

namespace {
// glibc's dlerror() for a name the loader finds nowhere, or a path that does not exist.
constexpr const char* kAbsent = "cannot open shared object file: No such file or directory";
}  // namespace

DynamicLibrary::~DynamicLibrary() {
    if (!keep_loaded_) close();
}

bool DynamicLibrary::try_open(const std::vector<std::string>& candidates, const std::string& what,
                              std::string& error) {
    close();
    // Candidates that do not exist are named together, in order; any other failure (a
    // library that exists but does not load) keeps the loader's own reason.
    std::string absent, tried;
    for (const auto& candidate : candidates) {
        handle_ = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (handle_ != nullptr) {
            path_ = candidate;
            return true;
        }
        const char* why = dlerror();
        const std::string reason = why ? why : "unknown dlopen error";
        if (reason == candidate + ": " + kAbsent) {
            absent += (absent.empty() ? "" : ", ") + candidate;
        } else {
            tried += (tried.empty() ? "" : "; ") + candidate + " (" + reason + ")";
        }
    }
    error = "cannot load " + what + ": ";
    if (candidates.empty()) error += "tried nothing (no candidate given)";
    if (!absent.empty()) error += "not found: " + absent;
    if (!tried.empty()) error += std::string(absent.empty() ? "" : "; ") + "tried " + tried;
    return false;
}

void DynamicLibrary::open(const std::vector<std::string>& candidates, const std::string& what,
                          const std::string& prefix) {
    std::string error;
    if (!try_open(candidates, what, error)) throw std::runtime_error(prefix + error);
}

std::string DynamicLibrary::file_of(const char* symbol) const {
    void* address = handle_ != nullptr ? dlsym(handle_, symbol) : nullptr;
    Dl_info info{};
    if (address == nullptr || dladdr(address, &info) == 0 || info.dli_fname == nullptr) return "";
    return info.dli_fname;
}

void* DynamicLibrary::find(const char* symbol) {
    void* address = handle_ != nullptr ? dlsym(handle_, symbol) : nullptr;
    if (address == nullptr) missing_.emplace_back(symbol);
    return address;
}

std::string DynamicLibrary::lacking(std::initializer_list<const char*> required) const {
    std::string out;
    for (const char* name : required)
        for (const auto& m : missing_)
            if (m == name) {
                out += (out.empty() ? "" : ", ") + m;
                break;
            }
    return out;
}

std::string DynamicLibrary::lacking() const {
    std::string out;
    for (const auto& m : missing_) out += (out.empty() ? "" : ", ") + m;
    return out;
}

void DynamicLibrary::close() {
    if (handle_ != nullptr) dlclose(handle_);
    handle_ = nullptr;
}

}  // namespace cuagent::drivers
