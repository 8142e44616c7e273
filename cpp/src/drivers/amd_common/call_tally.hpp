// What one read's library calls did, for both AMD drivers (rocm_smi, amdsmi):
// how many were made, how many succeeded, how many failed the way a vanished
// device fails, and the first failure. Every call failing that way means the
// device is lost; other failures are a failed read. Each library has its own
// status enum and its own list of "gone" statuses; success is 0 in both.
#pragma once

#include <cstddef>
#include <cstdio>

#include "cuagent/driver.hpp"

namespace cuagent::amd {

template <typename Status, bool (*Gone)(Status)>
class CallTally {
public:
    // Counts one call's status; true when it succeeded.
    bool ok(const char* call, Status s) noexcept {
        ++attempted_;
        if (s == Status{}) {
            ++succeeded_;
            return true;
        }
        if (Gone(s)) ++vanished_;
        if (first_call_ == nullptr) {
            first_call_ = call;
            first_status_ = s;
        }
        return false;
    }

    // The read's verdict: Ok when a call succeeded (or none was made), else
    // Lost when every call failed as a vanished device does, else Error; a
    // failed read names its first failing call and status_text(status) in
    // `detail`.
    template <typename StatusText>
    ReadStatus verdict(char* detail, std::size_t detail_size, StatusText status_text) const noexcept {
        if (attempted_ == 0 || succeeded_ > 0) return ReadStatus::Ok;
        if (detail != nullptr && detail_size > 0)
            std::snprintf(detail, detail_size, "%s: %s", first_call_, status_text(first_status_));
        return vanished_ == attempted_ ? ReadStatus::Lost : ReadStatus::Error;
    }

private:
    unsigned attempted_ = 0;
    unsigned succeeded_ = 0;
    unsigned vanished_ = 0;
    const char* first_call_ = nullptr;
    Status first_status_{};
};

}  // namespace cuagent::amd
