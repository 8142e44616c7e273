// Which physical GPUs a --devices list picks, for both AMD drivers'
// discovery (rocm_smi, amdsmi): each name is an index ("0") or an id
// ("amd-<unique id>"); an empty list picks every GPU. A name that picks no
// GPU is an error once discovery has seen them all.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace cuagent::amd {

class DeviceSelection {
public:
    explicit DeviceSelection(const std::vector<std::string>& names);

    // Whether the GPU at physical `index` with `id` is picked; notes which
    // names picked it.
    bool picks(std::size_t index, const std::string& id);

    // Throws std::invalid_argument naming the first name that picked no GPU,
    // prefixed with `backend` and saying how many GPUs were `found`.
    void require_all_matched(const char* backend, std::size_t found) const;

private:
    std::vector<std::string> names_;
    std::vector<bool> matched_;  // per name
};

}  // namespace cuagent::amd
