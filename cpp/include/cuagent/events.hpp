// Events raised on the sampling path (a device lost, back, a read error),
// carried to Python through a fixed-size SPSC ring so the sampler never waits.
#pragma once

#include <cstdint>

namespace cuagent {

enum class EventType : std::uint8_t { DeviceLost, DeviceBack, BackendError };

inline const char* event_type_name(EventType t) noexcept {
    switch (t) {
        case EventType::DeviceLost: return "device_lost";
        case EventType::DeviceBack: return "device_back";
        case EventType::BackendError: return "backend_error";
    }
    return "unknown";
}

struct EngineEvent {
    std::int64_t t_ns = 0;  // CLOCK_MONOTONIC
    std::uint32_t device = 0;
    EventType type = EventType::BackendError;
    char detail[115] = {};  // NUL-terminated; from the driver where it gave one
};

}  // namespace cuagent
