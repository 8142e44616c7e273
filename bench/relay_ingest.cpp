// RelayTable::ingest alone, in one thread, without libzmq: ns per message for the bench's
// traffic (2,000 nodes x 8 GPUs, state frames of 66 + 60 + ~400 bytes, every message in a
// buffer of its own as libzmq hands them over), so that the table's own cost per message can be
// compared between two trees without the noise of a shared machine's scheduling. Build (any tree
// with this API; no CMake, no Python):
//
//     g++ -O2 -std=c++17 -Icpp/include bench/relay_ingest.cpp cpp/src/relay/relay_table.cpp
//         cpp/src/relay/feed_message.cpp cpp/src/relay/msgpack_scan.cpp -o /tmp/relay_ingest
//     /tmp/relay_ingest
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "cuagent/relay/relay_table.hpp"

using namespace cuagent::relay;

namespace {

constexpr int kNodes = 2000, kDevices = 8, kRounds = 8, kRepeats = 5;

void put_str(std::string& out, const std::string& s) {
    out += static_cast<char>(0xd9);  // str8
    out += static_cast<char>(s.size());
    out += s;
}

void put_u64(std::string& out, std::uint64_t v) {
    out += static_cast<char>(0xcf);
    for (int i = 7; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

std::string header(const std::string& node, std::uint64_t epoch, std::uint64_t seq, std::uint64_t ts) {
    std::string h(1, static_cast<char>(0x86));
    put_str(h, "v"), h += '\x01';
    put_str(h, "node"), put_str(h, node);
    put_str(h, "epoch"), put_u64(h, epoch);
    put_str(h, "seq"), put_u64(h, seq);
    put_str(h, "ts"), put_u64(h, ts);
    put_str(h, "gen"), h += '\x01';
    return h;
}

// About the NVML agent's state body (~400 bytes); the table never decodes it.
std::string state_body(std::uint64_t seq) {
    std::string b(1, static_cast<char>(0x83));
    put_str(b, "seq"), put_u64(b, seq);
    for (const char* key : {"levels", "counters"}) {
        put_str(b, key);
        b += static_cast<char>(0xc4), b += static_cast<char>(180);  // bin8
        b.append(180, '\x07');
    }
    return b;
}

std::string topo_body(const std::string& node) {
    std::string b(1, static_cast<char>(0x81));
    put_str(b, "devices");
    b += static_cast<char>(0xdc), b += '\0', b += static_cast<char>(kDevices);
    for (int d = 0; d < kDevices; ++d) {
        b += static_cast<char>(0x82);
        put_str(b, "id"), put_str(b, "GPU-" + node + "-" + std::to_string(d));
        put_str(b, "status"), put_str(b, "ok");
    }
    return b;
}

struct Message {
    std::string topic, header, body;
};

FeedFrames frames_of(const Message& m) {
    auto v = [](const std::string& s) { return FrameView{reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}; };
    return FeedFrames{v(m.topic), v(m.header), v(m.body), 3};
}

}  // namespace

int main() {
    std::vector<Message> topos, states;
    for (int n = 0; n < kNodes; ++n) {
        char name[32];
        std::snprintf(name, sizeof name, "gpu-node-%05d", n);
        topos.push_back({std::string("cua1/topo/") + name + "/", header(name, 1000 + n, 1, 1), topo_body(name)});
    }
    for (int r = 0; r < kRounds; ++r)
        for (int n = 0; n < kNodes; ++n) {
            char name[32];
            std::snprintf(name, sizeof name, "gpu-node-%05d", n);
            for (int d = 0; d < kDevices; ++d) {
                const std::string device = "GPU-" + std::string(name) + "-" + std::to_string(d);
                const std::uint64_t seq = static_cast<std::uint64_t>(r) + 1;
                states.push_back({std::string("cua1/state/") + name + "/" + device + "/",
                                  header(name, 1000 + n, seq, 100 + seq), state_body(seq)});
            }
        }
    std::vector<double> ns;
    for (int rep = 0; rep < kRepeats; ++rep) {
        RelayTable table(0, "bench-relay");
        for (const auto& m : topos) table.ingest(frames_of(m), 0);
        const auto t0 = std::chrono::steady_clock::now();
        std::uint64_t forwarded = 0;
        for (const auto& m : states) forwarded += table.ingest(frames_of(m), 1) == Verdict::Forward;
        const auto t1 = std::chrono::steady_clock::now();
        const TableStats st = table.stats();
        if (forwarded != states.size() || st.malformed != 0 || st.duplicates != 0) {
            std::fprintf(stderr, "unexpected: forwarded %llu malformed %llu duplicates %llu\n",
                         (unsigned long long)forwarded, (unsigned long long)st.malformed,
                         (unsigned long long)st.duplicates);
            return 1;
        }
        ns.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(states.size()));
    }
    std::sort(ns.begin(), ns.end());
    std::printf("RelayTable::ingest: %zu state messages over %d topics, %d repeats: min %.0f ns, median %.0f ns per "
                "message\n",
                states.size(), kNodes * kDevices, kRepeats, ns.front(), ns[ns.size() / 2]);
    return 0;
}
