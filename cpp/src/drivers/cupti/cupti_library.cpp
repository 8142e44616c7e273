#include "cupti/cupti_library.hpp"

#include <sys/stat.h>

#include <cstdlib>
#include <stdexcept>

namespace cuagent::cupti {

namespace {
std::string directory_of(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? std::string() : path.substr(0, slash + 1);
}
bool exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}
}  // namespace

Library::Library(const std::vector<std::string>& candidates) {
    lib_.open(candidates, "libcupti", "CUPTI PM sampling unavailable: ");
    // Unloading CUPTI with its threads and atexit handlers crashes at exit.
    lib_.keep_loaded();
    // libcupti loads libnvperf_host.so only when its host API is first used
    // (not at load time), so loading the one in libcupti's own directory now,
    // by path, is early enough, wherever libcupti was found: a path given, a
    // pip wheel, a CUDA install, or the loader's search path (see the header).
    const std::string dir = directory_of(lib_.file_of("cuptiProfilerInitialize"));
    if (!dir.empty() && exists(dir + "libnvperf_host.so")) {
        std::string ignored;
        if (nvperf_host_.try_open({dir + "libnvperf_host.so"}, "libnvperf_host", ignored))
            nvperf_host_path_ = dir + "libnvperf_host.so";
    }
    nvperf_host_.keep_loaded();
#define CUAGENT_CUPTI_LOOKUP(member, name, ret, params) lib_.lookup(#name, member);
    CUAGENT_CUPTI_FUNCTIONS(CUAGENT_CUPTI_LOOKUP)
#undef CUAGENT_CUPTI_LOOKUP
    // Every one but the result string is needed (PM sampling came in 12.6).
    const std::string lacking = lib_.lacking();
    if (!lacking.empty() && lacking != "cuptiGetResultString")
        throw std::runtime_error("CUPTI PM sampling unavailable: " + lib_.path() +
                                 " lacks " + lacking + " (CUPTI 12.6 or later needed, 12.8+ advised)");
}

std::string Library::error_string(Result r) const {
    const char* s = nullptr;
    if (GetResultString && GetResultString(r, &s) == kSuccess && s) return s;
    return "CUPTI error " + std::to_string(r);
}

std::vector<std::string> default_candidates(const std::vector<std::string>& python_paths) {
    std::vector<std::string> out;
    for (const auto& p : python_paths) {
        for (const char* sub : {"/nvidia/cuda_cupti/lib/libcupti.so.12", "/nvidia/cu13/lib/libcupti.so.13",
                                "/nvidia/cuda_cupti/lib/libcupti.so.13"}) {
            const std::string path = p + sub;
            if (exists(path)) out.push_back(path);
        }
    }
    if (const char* home = std::getenv("CUDA_HOME")) {
        const std::string path = std::string(home) + "/extras/CUPTI/lib64/libcupti.so";
        if (exists(path)) out.push_back(path);
    }
    for (const char* path : {"/usr/local/cuda/extras/CUPTI/lib64/libcupti.so"})
        if (exists(path)) out.push_back(path);
    // By soname: CUDA 12's, then 13's (a system CUDA 13 install names it so), then unversioned.
    out.push_back("libcupti.so.12");
    out.push_back("libcupti.so.13");
    out.push_back("libcupti.so");
    return out;
}

}  // namespace cuagent::cupti
