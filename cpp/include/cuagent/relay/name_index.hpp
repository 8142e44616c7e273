// The relay table's index of topics by name, looked up once per forwarded message. Open
// addressing: a power-of-two array of (hash, pointer) slots, probed linearly and kept at most
// half full, so that a lookup reads one slot and then the object it points to (which holds its
// own name, compared once the hashes agree). A node-based std::unordered_map read a bucket, a
// node and the key's own buffer, three cache misses per message over tens of thousands of
// topics (perf: 8-12 % of the relay's CPU), and needed the name copied into a std::string to
// be looked up. Erasing shifts the rest of the probe run back (no tombstones), so nodes
// forgotten and new ones added never slow lookups down.
//
// Not thread-safe (the table's mutex guards it). The index owns nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>
#include <utility>
#include <vector>

namespace cuagent::relay {

// T: anything with a `name` (std::string) that stays put while indexed.
template <class T>
class NameIndex {
public:
    T* find(std::string_view name) const noexcept {
        if (slots_.empty()) return nullptr;
        const std::uint64_t h = hash_of(name);
        for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
            const Slot& s = slots_[i];
            if (s.item == nullptr) return nullptr;
            if (s.hash == h && s.item->name == name) return s.item;
        }
    }

    // `item`'s name must not be indexed yet.
    void insert(T* item) {
        if (2 * (size_ + 1) > slots_.size()) grow();
        place(Slot{hash_of(item->name), item});
        ++size_;
    }

    // Whether `item` was indexed (and is no longer).
    bool erase(const T* item) noexcept {
        if (slots_.empty()) return false;
        std::size_t i = hash_of(item->name) & mask_;
        while (slots_[i].item != item) {
            if (slots_[i].item == nullptr) return false;
            i = (i + 1) & mask_;
        }
        // Backward shift: each later entry of the run moves into the hole unless its home
        // slot lies cyclically in (hole, entry], where a lookup still reaches it.
        for (std::size_t j = (i + 1) & mask_; slots_[j].item != nullptr; j = (j + 1) & mask_) {
            const std::size_t home = slots_[j].hash & mask_;
            const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
            if (stays) continue;
            slots_[i] = slots_[j];
            i = j;
        }
        slots_[i] = Slot{};
        --size_;
        return true;
    }

    std::size_t size() const noexcept { return size_; }

    template <class F>
    void for_each(F&& f) const {
        for (const Slot& s : slots_)
            if (s.item != nullptr) f(*s.item);
    }

private:
    struct Slot {
        std::uint64_t hash = 0;
        T* item = nullptr;  // null: empty
    };

    static std::uint64_t hash_of(std::string_view name) noexcept { return std::hash<std::string_view>{}(name); }

    void place(Slot slot) noexcept {
        std::size_t i = slot.hash & mask_;
        while (slots_[i].item != nullptr) i = (i + 1) & mask_;
        slots_[i] = slot;
    }

    void grow() {
        std::vector<Slot> old(slots_.empty() ? 64 : 2 * slots_.size());
        old.swap(slots_);
        mask_ = slots_.size() - 1;
        for (const Slot& s : old)
            if (s.item != nullptr) place(s);
    }

    std::vector<Slot> slots_;
    std::size_t size_ = 0;
    std::size_t mask_ = 0;
};

}  // namespace cuagent::relay
