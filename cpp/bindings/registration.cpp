#include "registration.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace cuagent::bindings {
namespace {

struct Entry {
    const char* name;
    int order;
    RegisterFn fn;
};

// Filled by static initialisers while the extension is loaded, before PyInit__core runs;
// a fixed array, so registering never allocates or throws during static initialisation.
constexpr std::size_t kMaxAreas = 64;
Entry g_entries[kMaxAreas];
std::size_t g_count = 0;
bool g_overflow = false;

}  // namespace

Registration::Registration(const char* name, int order, RegisterFn fn) noexcept {
    if (g_count < kMaxAreas) g_entries[g_count++] = Entry{name, order, fn};
    else g_overflow = true;
}

void register_all(pybind11::module_& m) {
    if (g_overflow) throw std::runtime_error("cuagent._core: more binding areas than kMaxAreas");
    Entry* end = g_entries + g_count;
    std::sort(g_entries, end, [](const Entry& a, const Entry& b) {
        if (a.order != b.order) return a.order < b.order;
        return std::strcmp(a.name, b.name) < 0;
    });
    for (Entry* e = g_entries; e != end; ++e) e->fn(m);
}

}  // namespace cuagent::bindings
