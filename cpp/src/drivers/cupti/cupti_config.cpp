#include "cupti/cupti_config.hpp"

namespace cuagent::cupti {

HostConfig::HostConfig(const Library& lib, const std::string& chip, const std::uint8_t* availability,
                       const std::vector<const char*>& metrics)
    : lib_(lib) {
    auto init = CUAGENT_CUPTI_PARAMS(HostInitializeParams, pHostObject);
    init.profilerType = kPmSampling;
    init.pChipName = chip.c_str();
    init.pCounterAvailabilityImage = availability;
    if (fail("cuptiProfilerHostInitialize", lib_.HostInitialize(&init))) return;
    host_ = init.pHostObject;

    auto add = CUAGENT_CUPTI_PARAMS(HostConfigAddMetricsParams, numMetrics);
    add.pHostObject = host_;
    std::vector<const char*> names(metrics);
    add.ppMetricNames = names.data();
    add.numMetrics = names.size();
    if (fail("cuptiProfilerHostConfigAddMetrics", lib_.HostConfigAddMetrics(&add))) return;

    auto size = CUAGENT_CUPTI_PARAMS(HostGetConfigImageSizeParams, configImageSize);
    size.pHostObject = host_;
    if (fail("cuptiProfilerHostGetConfigImageSize", lib_.HostGetConfigImageSize(&size))) return;
    image_.resize(size.configImageSize);
    auto get = CUAGENT_CUPTI_PARAMS(HostGetConfigImageParams, pConfigImage);
    get.pHostObject = host_;
    get.configImageSize = image_.size();
    get.pConfigImage = image_.data();
    if (fail("cuptiProfilerHostGetConfigImage", lib_.HostGetConfigImage(&get))) return;

    auto passes = CUAGENT_CUPTI_PARAMS(HostGetNumOfPassesParams, numOfPasses);
    passes.configImageSize = image_.size();
    passes.pConfigImage = image_.data();
    if (fail("cuptiProfilerHostGetNumOfPasses", lib_.HostGetNumOfPasses(&passes))) return;
    passes_ = passes.numOfPasses;
    // PM sampling collects one pass only; more would need replays it cannot do.
    if (passes_ != 1)
        error_ = "the metrics need " + std::to_string(passes_) + " passes on " + chip + "; PM sampling takes 1";
}

HostConfig::~HostConfig() {
    if (host_ == nullptr) return;
    auto deinit = CUAGENT_CUPTI_PARAMS(HostDeinitializeParams, pHostObject);
    deinit.pHostObject = host_;
    lib_.HostDeinitialize(&deinit);
}

bool HostConfig::fail(const char* step, Result r) {
    if (r == kSuccess) return false;
    result_ = r;
    error_ = std::string(step) + ": " + lib_.error_string(r);
    return true;
}

OfflineCheck check_offline(const Library& lib, const std::string& chip, const std::vector<const char*>& metrics) {
    OfflineCheck out;
    for (const char* m : metrics) {
        HostConfig one(lib, chip, nullptr, {m});
        out.metrics.emplace_back(m, one.ok() || one.passes() > 1);
    }
    HostConfig all(lib, chip, nullptr, metrics);
    out.passes = all.passes();
    out.error = all.error();
    return out;
}

}  // namespace cuagent::cupti
