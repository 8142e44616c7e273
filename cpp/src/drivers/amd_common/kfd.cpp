#include "kfd.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

namespace cuagent::amd {

namespace fs = std::filesystem;

namespace {

std::map<std::string, std::uint64_t> read_properties(const fs::path& file) {
    std::ifstream in(file);
    if (!in) throw std::runtime_error("cannot read " + file.string());
    std::map<std::string, std::uint64_t> props;
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::string key, value;
        if (!(fields >> key >> value)) continue;
        // KFD prints unsigned decimals; a value that does not parse is kept
        // out rather than read as 0.
        errno = 0;
        char* end = nullptr;
        const unsigned long long parsed = std::strtoull(value.c_str(), &end, 10);
        if (errno == 0 && end != nullptr && *end == '\0') props[key] = parsed;
    }
    return props;
}

std::uint64_t get(const std::map<std::string, std::uint64_t>& props, const char* key,
                  std::uint64_t fallback) {
    auto it = props.find(key);
    return it == props.end() ? fallback : it->second;
}

[[noreturn]] void bad_node(const fs::path& file, const std::string& why) {
    throw std::runtime_error("KFD node " + file.string() + ": " + why);
}

std::uint32_t ratio(const fs::path& file, const std::map<std::string, std::uint64_t>& props,
                    const char* numerator, const char* denominator) {
    const std::uint64_t n = get(props, numerator, 0);
    const std::uint64_t d = get(props, denominator, 0);
    if (d == 0 || n == 0 || n % d != 0) {
        bad_node(file, std::string(numerator) + "=" + std::to_string(n) + " is not a positive multiple of " +
                           denominator + "=" + std::to_string(d));
    }
    return static_cast<std::uint32_t>(n / d);
}

std::vector<KfdNode> gpu_nodes(const std::string& root) {
    const fs::path nodes_dir = fs::path(root) / "topology" / "nodes";
    std::error_code ec;
    if (!fs::is_directory(nodes_dir, ec)) return {};

    std::vector<KfdNode> nodes;
    for (const auto& entry : fs::directory_iterator(nodes_dir, ec)) {
        const std::string name = entry.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
        const fs::path file = entry.path() / "properties";
        if (!fs::exists(file, ec)) continue;
        const auto props = read_properties(file);
        if (get(props, "simd_count", 0) == 0) continue;  // a CPU node

        KfdNode node;
        node.node = static_cast<unsigned>(std::stoul(name));
        node.domain = static_cast<std::uint32_t>(get(props, "domain", 0));
        node.location_id = static_cast<std::uint32_t>(get(props, "location_id", 0));
        node.unique_id = get(props, "unique_id", 0);
        node.device_id = static_cast<std::uint32_t>(get(props, "device_id", 0));
        node.cus = ratio(file, props, "simd_count", "simd_per_cu");
        node.shader_engines = ratio(file, props, "array_count", "simd_arrays_per_engine");
        node.xccs = static_cast<std::uint32_t>(get(props, "num_xcc", 1));
        if (node.xccs == 0) node.xccs = 1;
        if (node.cus % node.xccs != 0 || node.shader_engines % node.xccs != 0) {
            bad_node(file, std::to_string(node.cus) + " CUs and " + std::to_string(node.shader_engines) +
                               " shader engines do not divide among num_xcc=" + std::to_string(node.xccs));
        }
        nodes.push_back(node);
    }
    std::sort(nodes.begin(), nodes.end(),
              [](const KfdNode& a, const KfdNode& b) { return a.node < b.node; });
    return nodes;
}

}  // namespace

std::vector<KfdNode> read_kfd_gpu_nodes(const char* backend, const std::string& root) {
    try {
        return gpu_nodes(root);
    } catch (const std::runtime_error& e) {
        throw std::runtime_error(std::string(backend) + ": " + e.what());
    }
}

std::vector<KfdNode> nodes_of_gpu(const std::vector<KfdNode>& nodes, const std::optional<PciLocation>& at) {
    std::vector<KfdNode> out;
    if (!at) return out;
    for (const auto& n : nodes)
        if (n.domain == at->domain && n.bus_device() == at->bus_device) out.push_back(n);
    std::stable_sort(out.begin(), out.end(),
                     [](const KfdNode& a, const KfdNode& b) { return a.partition_key() < b.partition_key(); });
    return out;
}

}  // namespace cuagent::amd
