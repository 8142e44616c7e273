// Host side of PM sampling: a host object for one chip and the config image
// for the metrics. Needs no GPU (tests run it on the real library offline).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cupti/cupti_library.hpp"

namespace cuagent::cupti {

class HostConfig {
public:
    // Builds the config image of `metrics` for `chip` ("GH100"); the counter
    // availability image may be null (offline). On failure ok() is false and
    // error() says which step failed and why.
    HostConfig(const Library& lib, const std::string& chip, const std::uint8_t* availability,
               const std::vector<const char*>& metrics);
    ~HostConfig();
    HostConfig(const HostConfig&) = delete;
    HostConfig& operator=(const HostConfig&) = delete;

    bool ok() const { return error_.empty(); }
    const std::string& error() const { return error_; }
    Result result() const { return result_; }
    HostObject* host() const { return host_; }
    // Kept alive for as long as sampling runs with it (SetConfig keeps a pointer).
    const std::vector<std::uint8_t>& image() const { return image_; }
    std::size_t passes() const { return passes_; }

private:
    bool fail(const char* step, Result r);

    const Library& lib_;
    HostObject* host_ = nullptr;
    std::vector<std::uint8_t> image_;
    std::size_t passes_ = 0;
    Result result_ = kSuccess;
    std::string error_;
};

// For each of `metrics`: whether the host library accepts it for `chip`
// (each added alone to a fresh host object); then the passes of them all.
struct OfflineCheck {
    std::vector<std::pair<std::string, bool>> metrics;
    std::size_t passes = 0;
    std::string error;  // why the whole set failed, or ""
};
OfflineCheck check_offline(const Library& lib, const std::string& chip, const std::vector<const char*>& metrics);

}  // namespace cuagent::cupti
