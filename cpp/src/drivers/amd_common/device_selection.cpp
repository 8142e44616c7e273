#include "device_selection.hpp"

#include <stdexcept>

namespace cuagent::amd {

DeviceSelection::DeviceSelection(const std::vector<std::string>& names)
    : names_(names), matched_(names.size(), false) {}

bool DeviceSelection::picks(std::size_t index, const std::string& id) {
    if (names_.empty()) return true;
    const std::string number = std::to_string(index);
    bool picked = false;
    for (std::size_t i = 0; i < names_.size(); ++i) {
        if (names_[i] == id || names_[i] == number) picked = matched_[i] = true;
    }
    return picked;
}

void DeviceSelection::require_all_matched(const char* backend, std::size_t found) const {
    for (std::size_t i = 0; i < names_.size(); ++i) {
        if (!matched_[i]) {
            throw std::invalid_argument(std::string(backend) + ": no AMD device '" + names_[i] + "' (" +
                                        std::to_string(found) +
                                        " found; give an index or an id like amd-<unique id>)");
        }
    }
}

}  // namespace cuagent::amd
