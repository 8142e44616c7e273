#include "cuagent/drivers/sm_layout.hpp"

#include <algorithm>
#include <numeric>
#include <sstream>
#include <stdexcept>

namespace cuagent {
namespace {

// Union-find over SM ids.
class Components {
public:
    explicit Components(std::uint32_t n) : parent_(n) { std::iota(parent_.begin(), parent_.end(), 0u); }
    std::uint32_t find(std::uint32_t x) {
        while (parent_[x] != x) x = parent_[x] = parent_[parent_[x]];
        return x;
    }
    void join(std::uint32_t a, std::uint32_t b) {
        a = find(a);
        b = find(b);
        // The smaller id becomes the root, so a group is named by its first SM.
        if (a < b) parent_[b] = a;
        else if (b < a) parent_[a] = b;
    }

private:
    std::vector<std::uint32_t> parent_;
};

// Dense group numbers in order of each group's smallest SM.
std::vector<std::uint16_t> number_groups(Components& c, std::uint32_t units, std::uint32_t& groups) {
    std::vector<std::int32_t> id_of_root(units, -1);
    std::vector<std::uint16_t> out(units);
    groups = 0;
    for (std::uint32_t sm = 0; sm < units; ++sm) {
        const std::uint32_t root = c.find(sm);
        if (id_of_root[root] < 0) id_of_root[root] = static_cast<std::int32_t>(groups++);
        out[sm] = static_cast<std::uint16_t>(id_of_root[root]);
    }
    return out;
}

std::string sm_list(const std::vector<std::uint32_t>& sms) {
    std::string s;
    for (std::size_t i = 0; i < sms.size(); ++i) s += (i ? "," : "") + std::to_string(sms[i]);
    return s;
}

}  // namespace

SmLayout group_sms(std::uint32_t units, const std::vector<ClusterObservation>& observations) {
    if (units == 0 || units > 65535) throw std::invalid_argument("group_sms: units must be 1..65535");
    Components gpc(units), tpc(units);
    std::vector<std::uint32_t> max_cluster(units, 0);
    for (const auto& o : observations) {
        for (std::uint16_t sm : o.sms)
            if (sm >= units)
                throw std::invalid_argument("group_sms: observation names SM " + std::to_string(sm) +
                                            " but the device has " + std::to_string(units));
        for (std::size_t i = 0; i < o.sms.size(); ++i) {
            max_cluster[o.sms[i]] = std::max(max_cluster[o.sms[i]], o.cluster_size);
            if (i == 0) continue;
            gpc.join(o.sms[0], o.sms[i]);
            if (o.cluster_size == 2) tpc.join(o.sms[0], o.sms[i]);
        }
    }
    SmLayout out;
    out.units = units;
    out.gpc = number_groups(gpc, units, out.gpcs);
    out.tpc = number_groups(tpc, units, out.tpcs);

    // A TPC is two SMs; a cluster-of-2 component that grew larger means
    // pairs were not stable, so the TPC level is not what we measured.
    std::vector<std::uint32_t> tpc_size(out.tpcs, 0);
    for (auto t : out.tpc) ++tpc_size[t];
    if (std::any_of(tpc_size.begin(), tpc_size.end(), [](std::uint32_t s) { return s > 2; }))
        out.notes.push_back("clusters of 2 did not always pair the same SMs: tpc groups are the "
                            "unions of those pairs, larger than a real TPC");

    out.gpc_max_cluster.assign(out.gpcs, 0);
    for (std::uint32_t sm = 0; sm < units; ++sm)
        out.gpc_max_cluster[out.gpc[sm]] = std::max(out.gpc_max_cluster[out.gpc[sm]], max_cluster[sm]);

    // Say which SMs the probe could not place in a full GPC.
    std::uint32_t largest = 0;
    for (auto m : out.gpc_max_cluster) largest = std::max(largest, m);
    std::vector<std::uint32_t> never, small;
    for (std::uint32_t sm = 0; sm < units; ++sm) {
        if (max_cluster[sm] == 0) never.push_back(sm);
        else if (out.gpc_max_cluster[out.gpc[sm]] <= 2 && largest > 2) small.push_back(sm);
    }
    if (!never.empty())
        out.notes.push_back("SMs " + sm_list(never) + " never ran a probe block: each is its own group");
    if (!small.empty())
        out.notes.push_back("SMs " + sm_list(small) +
                            " only ever ran clusters of 2: the probe cannot place them in a GPC; "
                            "each of their TPCs is its own group");
    return out;
}

std::string format_sm_layout(const SmLayout& layout) {
    std::ostringstream s;
    s << layout.units << ' ' << layout.gpcs << ' ' << layout.tpcs << '\n';
    for (std::uint32_t sm = 0; sm < layout.units; ++sm) s << layout.gpc[sm] << ' ' << layout.tpc[sm] << '\n';
    s << "max";
    for (auto m : layout.gpc_max_cluster) s << ' ' << m;
    s << '\n';
    for (const auto& n : layout.notes) s << "note " << n << '\n';
    return s.str();
}

bool parse_sm_layout(const std::string& text, SmLayout& layout) {
    std::istringstream s(text);
    SmLayout out;
    if (!(s >> out.units >> out.gpcs >> out.tpcs) || out.units == 0 || out.units > 65535) return false;
    out.gpc.resize(out.units);
    out.tpc.resize(out.units);
    for (std::uint32_t sm = 0; sm < out.units; ++sm) {
        unsigned g = 0, t = 0;
        if (!(s >> g >> t) || g >= out.gpcs || t >= out.tpcs) return false;
        out.gpc[sm] = static_cast<std::uint16_t>(g);
        out.tpc[sm] = static_cast<std::uint16_t>(t);
    }
    std::string word;
    if (!(s >> word) || word != "max") return false;
    out.gpc_max_cluster.resize(out.gpcs);
    for (auto& m : out.gpc_max_cluster)
        if (!(s >> m)) return false;
    std::string line;
    std::getline(s, line);
    while (std::getline(s, line))
        if (line.rfind("note ", 0) == 0) out.notes.push_back(line.substr(5));
    layout = std::move(out);
    return true;
}

}  // namespace cuagent
