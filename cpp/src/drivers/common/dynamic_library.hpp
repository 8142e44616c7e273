// A vendor library opened at run time (libnvidia-ml, librocm_smi64, libcuda),
// so that cuagent builds and imports on machines without it. Every driver
// opens its library through this class: a list of places to try, one lookup
// per symbol (a release that lacks a function loses only what that function
// feeds), and one error line naming every place tried (with the loader's reason
// where it is more than "not found").
#pragma once

#include <initializer_list>
#include <string>
#include <vector>

namespace cuagent::drivers {

class DynamicLibrary {
public:
    DynamicLibrary() = default;
    ~DynamicLibrary();
    DynamicLibrary(const DynamicLibrary&) = delete;
    DynamicLibrary& operator=(const DynamicLibrary&) = delete;

    // Opens the first of `candidates` (sonames searched by the loader, or
    // paths) that loads, with RTLD_NOW | RTLD_LOCAL: symbols are resolved now,
    // so a broken library fails here rather than mid-read, and they stay out of
    // the global namespace, where they could clash with another copy a user's
    // library loaded. On failure returns false and sets `error` to one line:
    // "cannot load <what>: not found: <candidate>, <candidate>; tried <candidate>
    // (<dlerror>); ..." (those that exist but would not load, with the loader's reason).
    bool try_open(const std::vector<std::string>& candidates, const std::string& what, std::string& error);
    // As try_open, but throws std::runtime_error(prefix + error).
    void open(const std::vector<std::string>& candidates, const std::string& what, const std::string& prefix);

    // Looks up `symbol` and stores it in `fn`. An absent symbol leaves `fn`
    // null, is remembered in missing(), and returns false.
    template <typename Fn>
    bool lookup(const char* symbol, Fn& fn) {
        // POSIX guarantees that dlsym's void* converts to a function pointer.
        void* address = find(symbol);
        fn = reinterpret_cast<Fn>(address);
        return address != nullptr;
    }

    // Every looked-up symbol the library does not export, in lookup order.
    const std::vector<std::string>& missing() const { return missing_; }
    // Those of `required` among missing(), joined by ", " ("" when none is).
    std::string lacking(std::initializer_list<const char*> required) const;
    // All of missing(), joined by ", ".
    std::string lacking() const;

    bool is_open() const { return handle_ != nullptr; }
    // The candidate that loaded.
    const std::string& path() const { return path_; }
    // The file the loader took for it (a soname resolved through its search
    // path), found through `symbol`, one of its own exports; "" if unknown.
    std::string file_of(const char* symbol) const;

    // dlclose now (also done by the destructor, unless keep_loaded()).
    void close();
    // Never dlclose this library: unloading a vendor library that registered
    // atexit handlers or thread-local destructors crashes at process exit.
    // (The loader counts references, so opening it again reuses the copy.)
    void keep_loaded() { keep_loaded_ = true; }

private:
    void* find(const char* symbol);

    void* handle_ = nullptr;
    bool keep_loaded_ = false;
    std::string path_;
    std::vector<std::string> missing_;
};

}  // namespace cuagent::drivers
