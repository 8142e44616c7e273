// NameIndex (the relay table's topic index) against std::unordered_map: random inserts,
// lookups and erasures, many of them in long probe runs (a few distinct hash homes are
// likely at 64 slots), growing and shrinking back, so that erasure's backward shift is
// checked on every shape of run, wrapping past the end of the array included.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "check.hpp"
#include "cuagent/relay/name_index.hpp"

using cuagent::relay::NameIndex;

namespace {

struct Item {
    std::string name;
};

}  // namespace

int main() {
    std::mt19937_64 rng(7);
    NameIndex<Item> index;
    std::unordered_map<std::string, std::unique_ptr<Item>> truth;
    std::uint64_t finds = 0, erased = 0;
    for (int round = 0; round < 200'000; ++round) {
        // Few names at first, then many, then few again: the index grows, and its runs empty.
        const std::uint64_t span = round < 100'000 ? 40 + round / 50 : 2000;
        const std::string name = "cua1/state/n" + std::to_string(rng() % span) + "/d/";
        const int op = static_cast<int>(rng() % (round < 150'000 ? 3 : 4));
        auto it = truth.find(name);
        if (op == 0 && it == truth.end()) {
            auto item = std::make_unique<Item>(Item{name});
            index.insert(item.get());
            truth.emplace(name, std::move(item));
        } else if (op >= 2 && it != truth.end()) {
            CHECK(index.erase(it->second.get()), "%s: not erased", name.c_str());
            truth.erase(it);
            ++erased;
        } else {
            Item* found = index.find(name);
            CHECK(found == (it == truth.end() ? nullptr : it->second.get()), "%s: found %p", name.c_str(),
                  static_cast<void*>(found));
            ++finds;
        }
        CHECK(index.size() == truth.size(), "size %zu, expected %zu", index.size(), truth.size());
    }
    std::size_t seen = 0;
    index.for_each([&](const Item& item) {
        CHECK(truth.count(item.name) && truth[item.name].get() == &item, "%s: not indexed", item.name.c_str());
        ++seen;
    });
    CHECK(seen == truth.size(), "for_each saw %zu of %zu", seen, truth.size());
    for (const auto& [name, item] : truth) CHECK(index.find(name) == item.get(), "%s: lost", name.c_str());
    std::printf("check_name_index: %llu finds, %llu erased, %zu left: consistent, passed\n",
                (unsigned long long)finds, (unsigned long long)erased, truth.size());
    return 0;
}
