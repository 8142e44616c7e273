#include "nvml_probe_cache.hpp"

#include <fstream>
#include <cstdio>
#include <sstream>

namespace cuagent {

bool probe_layout_cached(const std::string& uuid, const std::string& pci_bus_id, const NvmlOptions& options,
                         SmLayout& layout, std::string& why) {
    const std::string path =
        options.probe_cache_dir.empty() ? "" : options.probe_cache_dir + "/" + uuid + ".sm-layout";
    if (!path.empty()) {
        std::ifstream in(path);
        if (in) {
            std::stringstream text;
            text << in.rdbuf();
            if (parse_sm_layout(text.str(), layout)) return true;
        }
    }
    SmProbeOptions probe;
    probe.cuda_library = options.cuda_library;
    if (!probe_sm_layout(pci_bus_id, probe, layout, why)) return false;
    if (!path.empty()) {
        // Write then rename, so a crash never leaves a half-written cache.
        const std::string tmp = path + ".tmp";
        std::ofstream out(tmp);
        out << format_sm_layout(layout);
        out.close();
        if (out) std::rename(tmp.c_str(), path.c_str());
    }
    return true;
}

}  // namespace cuagent
