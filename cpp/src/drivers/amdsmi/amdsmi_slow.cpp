// The amdsmi backend's slow path: processes and partition modes per device,
// asked by the agent between windows, never by the sampler. It discovers the
// devices as the driver does (same options, same physical indices) and shares
// the driver's library instance.
#include <algorithm>
#include <cstring>
#include <map>
#include <stdexcept>

#include "amdsmi_device.hpp"
#include "amdsmi_library.hpp"
#include "cuagent/drivers/amdsmi.hpp"

namespace cuagent {

namespace {

using namespace amdsmi;

class SlowQueries final : public AmdSmiSlowQueries {
public:
    explicit SlowQueries(const AmdSmiOptions& options)
        : library_(Library::acquire(options.library)), gpus_(discover(*library_, options, nullptr)) {}

    std::vector<std::uint32_t> devices() const override {
        std::vector<std::uint32_t> out;
        for (const auto& g : gpus_) out.push_back(g.desc.index);
        return out;
    }

    std::uint32_t partitions(std::uint32_t index) const override {
        std::string error;
        const Gpu* gpu = find(index, error);
        if (gpu == nullptr) throw std::out_of_range(error);
        return static_cast<std::uint32_t>(gpu->processors.size());
    }

    bool processes(std::uint32_t index, std::vector<AmdSmiProcess>& out, std::string& error) override {
        out.clear();
        const Gpu* gpu = find(index, error);
        if (gpu == nullptr) return false;
        const ProcessListFn list = library_->fn().process_list;
        if (list == nullptr) {
            error = "amdsmi_get_gpu_process_list is not exported by " + library_->path();
            return false;
        }
        if (!library_->structs_known()) {
            error = "amdsmi_proc_info_t of AMD SMI " + library_->version() + " is unverified";
            return false;
        }
        // A process on several partitions shows once per partition processor:
        // one entry per pid, summed.
        std::map<std::uint32_t, AmdSmiProcess> by_pid;
        for (const Handle h : gpu->processors) {
            Status status = kOutOfResources;
            std::uint32_t count = 0;
            for (int attempt = 0; attempt < 4 && status == kOutOfResources; ++attempt) {
                // Room for a few more than last time; OUT_OF_RESOURCES says the
                // list outgrew it (count then holds how many there are). The
                // library writes `count` entries back to back; one more entry
                // past them is slack (see Out<T>).
                entries_.resize(std::max<std::size_t>({entries_.size(), static_cast<std::size_t>(count) + 17, 65}));
                count = static_cast<std::uint32_t>(entries_.size() - 1);
                status = list(h, &count, entries_.data());
            }
            if (status != kSuccess) {
                error = std::string("amdsmi_get_gpu_process_list: ") + library_->status_text(status);
                return false;
            }
            for (std::uint32_t i = 0; i < count && i + 1 < entries_.size(); ++i) {
                const ProcInfo& p = entries_[i];
                AmdSmiProcess& entry = by_pid[p.pid];
                entry.pid = p.pid;
                if (entry.name.empty()) entry.name.assign(p.name, strnlen(p.name, kStringLength));
                entry.vram_bytes += p.memory_usage.vram_mem;
                entry.gfx_ns += p.engine_usage.gfx;
            }
        }
        for (auto& [pid, p] : by_pid) out.push_back(std::move(p));
        return true;
    }

    std::pair<std::string, std::string> partition_modes(std::uint32_t index) override {
        std::string error;
        const Gpu* gpu = find(index, error);
        if (gpu == nullptr) throw std::out_of_range(error);
        return {text(library_->fn().compute_partition, gpu->processors.front()),
                text(library_->fn().memory_partition, gpu->processors.front())};
    }

private:
    const Gpu* find(std::uint32_t index, std::string& error) const {
        for (const auto& g : gpus_)
            if (g.desc.index == index) return &g;
        error = "amdsmi: no device " + std::to_string(index);
        return nullptr;
    }

    static std::string text(PartitionFn fn, Handle h) {
        if (fn == nullptr) return {};
        char buffer[kStringLength] = {};
        if (fn(h, buffer, sizeof buffer) != kSuccess) return {};
        buffer[sizeof buffer - 1] = '\0';
        return amd::partition_token(buffer);
    }

    std::shared_ptr<Library> library_;
    std::vector<Gpu> gpus_;
    // The process list's buffer, kept between calls. Its stride is the
    // library's only while the ABI is the verified one (structs_known()).
    std::vector<ProcInfo> entries_;
};

}  // namespace

std::unique_ptr<AmdSmiSlowQueries> make_amdsmi_slow_queries(const AmdSmiOptions& options) {
    return std::make_unique<SlowQueries>(options);
}

}  // namespace cuagent
