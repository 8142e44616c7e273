// The contract between a vendor backend and the engine.
//
// A driver is built on the slow path (it may allocate, dlopen, probe, throw),
// describes its devices once, and is then read once per device per due tick:
// on the engine's sampler thread, or, for a device whose reads may block, on a
// reader thread of that device's own. So read() may run concurrently for
// *different* devices; the reads of one device never overlap. read() must not
// allocate, lock, throw or touch Python: it writes into the preallocated sample
// it is given.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "cuagent/topology.hpp"

namespace cuagent {

enum class ReadStatus : std::uint8_t {
    Ok,      // sample filled (absent values left NaN)
    Error,   // this read failed; the device is still there (sample dropped, counted)
    Lost,    // the device is gone (fell off the bus); the engine stops reading it
             // and retries about once a second, emitting device_back on success
};

class Driver {
public:
    virtual ~Driver() = default;

    // Backend name: "mock", "nvml", "rocm_smi".
    virtual std::string name() const = 0;
    virtual std::size_t device_count() const = 0;
    virtual const DeviceDescription& device(std::size_t index) const = 0;

    // Shortest useful interval between reads of this device, in ns: its
    // hardware refresh period (NVML and GPM refresh every 100 ms). 0 means every
    // engine tick. The engine reads each device no more often than this.
    virtual std::int64_t min_read_interval_ns(std::size_t /*index*/) const { return 0; }

    // Whether a read of this device can stall for longer than a tick: it waits
    // on the kernel driver or the hardware (NVML and ROCm SMI calls can hang on
    // a sick GPU), or on an injected stall. Such a device is read on a thread
    // of its own, so that a stalled read costs only that device's counters and
    // windows while every other device keeps its ticks. A driver whose reads
    // are bounded computation or buffer copies says false and is read inline
    // on the sampler thread (cheaper: no second wake-up per read).
    virtual bool read_may_block(std::size_t /*index*/) const { return true; }

    // Called on every thread that reads this driver (the sampler, a device's
    // reader) before its first read and after its last (e.g. to set up
    // per-thread vendor state). No allocation rules here.
    virtual void on_sampler_start() {}
    virtual void on_sampler_stop() {}

    // Fill one sample of `device` taken at `now_ns` (CLOCK_MONOTONIC) into
    // `values`, laid out by SampleLayout(device(index)). Every value is NaN on
    // entry: leave a value NaN when the hardware gave none. Hot path: no
    // allocation, no lock, no exception, no Python.
    //
    // If `detail` is non-null and the status is not Ok, the driver may write a
    // short NUL-terminated reason (at most detail_size bytes) for the event log.
    virtual ReadStatus read(std::size_t index, std::int64_t now_ns, float* values,
                            char* detail, std::size_t detail_size) noexcept = 0;

    // ---- Sources that stamp their own samples --------------------------------
    // Hardware that samples by itself and hands its samples over later, in
    // batches (CUPTI PM sampling: the GPU fills a buffer that a decode thread
    // reads), cannot be read on a tick: what a tick finds was taken earlier,
    // and a sample taken just before a window's end arrives after it. Such a
    // source (only as an ExtraSource, never as the engine's driver) is never
    // read(): the engine's aggregator takes its samples as they come, each
    // stamped with when it was taken, puts each in the window that time falls
    // in, and holds a window open until the source has given everything taken
    // before the window's end (complete_before_ns), at most max_delay_ns.
    virtual bool stamps_own_samples(std::size_t /*index*/) const { return false; }

    // The window grid of the engine this driver serves, told before its
    // threads start (at every start): windows are [origin + k * window,
    // origin + (k + 1) * window) in CLOCK_MONOTONIC. No engine thread runs
    // meanwhile, so a stamping source may also drop what an earlier run left
    // untaken here.
    virtual void on_engine_start(std::int64_t /*window_ns*/, std::int64_t /*origin_ns*/) {}

    // The next sample ready, in time order: its values (this source's own
    // layout, NaN where absent) and when it was taken (CLOCK_MONOTONIC);
    // false when none is ready. Aggregator thread only. Hot path: no
    // allocation, no lock, no wait.
    virtual bool take_sample(std::size_t /*index*/, std::int64_t* /*t_ns*/, float* /*values*/) noexcept {
        return false;
    }
    // Every sample this source will give with a time before the returned one
    // is ready for take_sample (load this first: acquire). INT64_MAX while it
    // owes none (paused, not sampling). Any thread.
    virtual std::int64_t complete_before_ns(std::size_t /*index*/) const noexcept { return INT64_MAX; }
    // How long past a window's end that window may wait for this source.
    virtual std::int64_t max_delay_ns(std::size_t /*index*/) const { return 0; }
};

}  // namespace cuagent
