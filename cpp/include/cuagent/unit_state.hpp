// Element states (PROTOCOL.md §3.2) and the thresholds that decide them.
#pragma once

#include <cstdint>

namespace cuagent {

enum UnitState : std::uint8_t { kIdle = 0, kActive = 1, kSaturated = 2, kThrashing = 3, kUnmeasured = 0xFF };
// kUnmeasured: the element's `active` is absent this window (not measured yet, or the
// backend gave none): no state is claimed for it, and it counts in no state.

// Defaults from PROTOCOL.md §3.2. `hysteresis` widens the band an element must
// cross to leave its current state, so a value hovering at a threshold does not
// flap between states on consecutive windows: an idle element stays idle until
// active >= idle_active + hysteresis; a saturated one stays saturated until
// occupancy < saturated_occupancy - hysteresis; a thrashing one stays thrashing
// while active >= thrashing_active - hysteresis and mem_stall >=
// thrashing_mem_stall - hysteresis.
struct StateThresholds {
    float idle_active = 0.05f;
    float saturated_occupancy = 0.9f;
    float thrashing_active = 0.5f;
    float thrashing_mem_stall = 0.6f;
    float hysteresis = 0.05f;
};

// Next state of one element from its window means. NaN means "not measured":
// a NaN `active` keeps the current state (no data is no evidence of change: it
// is what hysteresis starts from when data comes back; the window itself
// publishes kUnmeasured); a NaN occupancy or mem_stall can never make an element
// saturated/thrashing. From kUnmeasured (no history) no hysteresis applies.
inline std::uint8_t next_unit_state(std::uint8_t current, float active, float occupancy,
                                    float mem_stall, const StateThresholds& t) noexcept {
    if (active != active) return current;
    const float h = t.hysteresis;
    const bool was_thrashing = current == kThrashing;
    // Comparisons with NaN are false, so a missing counter never triggers a state.
    if (active >= t.thrashing_active - (was_thrashing ? h : 0.0f) &&
        mem_stall >= t.thrashing_mem_stall - (was_thrashing ? h : 0.0f))
        return kThrashing;
    if (occupancy >= t.saturated_occupancy - (current == kSaturated ? h : 0.0f)) return kSaturated;
    if (active < t.idle_active + (current == kIdle ? h : 0.0f)) return kIdle;
    return kActive;
}

}  // namespace cuagent
