"""The nvml driver against the fake libnvidia-ml (no GPU needed).

Each test runs in a fresh subprocess: the fake's state lives in the loaded
library, and the environment script is read at its first nvmlInit.
"""
from __future__ import annotations

import textwrap

from isolated import last_json, run_python
import pytest

# Runs inside the subprocess: builds the driver and prints JSON on the last line.
PRELUDE = """
import json, math, sys, time
from cuagent import _core
from cuagent.backends import nvml
LIB = sys.argv[1]
def describe(d):
    out = []
    for i in range(d.device_count):
        x = d.device(i)
        out.append({"id": x.id, "index": x.index, "model": x.model, "pci": x.pci, "numa": x.numa,
                    "units": x.units, "levels": list(x.levels), "counts": list(x.counts),
                    "layout_source": x.layout_source, "memory_bytes": x.memory_bytes,
                    "partitions": [{"id": p.id, "kind": p.kind, "units": p.units,
                                    "memory_bytes": p.memory_bytes, "profile": p.profile}
                                   for p in x.partitions],
                    "counters": {c.name: [c.level, c.unit] for c in x.counters},
                    "links": [[l.peer, l.type, l.count, l.path] for l in x.links]})
    return out
def values(d, i, t):
    status, v, detail = _core.driver_read(d, i, t)
    # one float per device counter; partition counters have one per partition
    out = {}
    for c in d.device(i).counters:
        vals = [None if math.isnan(float(x)) else float(x) for x in v[c.name]]
        out[c.name] = vals if c.level == "partition" and len(vals) > 1 else vals[0]
    return status, out, detail
"""


def run(fake, script: str, body: str, timeout: float = 60.0):
    path = fake.script(script)
    code = PRELUDE + textwrap.dedent(body)
    return last_json(run_python(code, fake.library, env=fake.env(path), timeout=timeout, what="nvml driver run"))


def test_one_device_description(fake_nvml):
    out = run(fake_nvml, "set 0 numa 1\n", """
        d = nvml.make_driver(None, 0, library=LIB)
        print(json.dumps({"name": d.name, "devices": describe(d),
                          "interval": d.min_read_interval_ns(0)}))
    """)
    assert out["name"] == "nvml"
    assert out["interval"] == 100_000_000
    (dev,) = out["devices"]
    assert dev["id"] == "GPU-fa4e0000-0000-0000-0000-000000000000"
    assert dev["model"] == "NVIDIA H100 80GB HBM3"
    assert dev["pci"] == "00000000:18:00.0" and dev["numa"] == 1
    assert dev["memory_bytes"] == 85520809984
    # Without the probe the grouping is unknown: the SM level alone, nothing invented.
    assert dev["units"] == 132 and dev["levels"] == ["sm"]
    assert dev["counts"] == [132] and dev["layout_source"] == "none"
    assert dev["partitions"] == [{"id": "0", "kind": "whole", "units": 132,
                                  "memory_bytes": 85520809984, "profile": ""}]
    c = dev["counters"]
    for name in ("sm_active", "sm_occupancy", "tensor_active", "dram_active", "gr_active"):
        assert c[name] == ["device", "ratio"]
    assert c["power"] == ["device", "W"] and c["temp"] == ["device", "C"]
    assert c["sm_clock"] == ["device", "Hz"] and c["mem_used"] == ["device", "bytes"]
    assert c["throttle"] == ["device", "mask"] and c["ecc_uncorrected"] == ["device", "count"]
    assert c["pcie_tx"] == ["device", "B/s"] and c["nvlink_rx"] == ["device", "B/s"]


def test_values_in_protocol_units_and_gpm_after_a_refresh(fake_nvml):
    script = ("set 0 power_w 642.024\nset 0 temp_c 67\nset 0 sm_clock_hz 1260000000\n"
              "set 0 throttle_mask 4\nset 0 sm_active 0.92\nset 0 tensor_active 0.89\n"
              "set 0 sm_occupancy 0.136\nset 0 pcie_tx_mib_s 2\nset 0 mem_used 1563230208\n"
              "set 0 util_gpu 0.96\n")
    out = run(fake_nvml, script, """
        d = nvml.make_driver(None, 0, library=LIB)
        t = time.monotonic_ns()
        first = values(d, 0, t)
        time.sleep(0.25)   # the fake's GPM counters advance at 100 ms refreshes
        second = values(d, 0, t + 250_000_000)
        print(json.dumps([first, second]))
    """)
    (s1, v1, _), (s2, v2, _) = out
    assert s1 == "ok" and s2 == "ok"
    # First read: one GPM sample only, no interval yet -> absent, not zero.
    assert v1["sm_active"] is None and v1["power"] == pytest.approx(642.024, rel=1e-6)
    assert v2["sm_active"] == pytest.approx(0.92, rel=1e-5)
    assert v2["tensor_active"] == pytest.approx(0.89, rel=1e-5)
    assert v2["sm_occupancy"] == pytest.approx(0.136, rel=1e-5)
    assert v2["pcie_tx"] == pytest.approx(2 * 1048576, rel=1e-5)
    assert v2["temp"] == 67 and v2["sm_clock"] == 1.26e9 and v2["throttle"] == 4
    assert v2["mem_used"] == 1563230208 and v2["gpu_util"] == pytest.approx(0.96)


def test_gpm_pairs_closer_than_a_refresh_are_not_used(fake_nvml):
    """Reads 50 ms apart (engine jitter, or a faster caller) must not publish GPM zeros."""
    out = run(fake_nvml, "set 0 sm_active 0.5\n", """
        d = nvml.make_driver(None, 0, library=LIB)
        t = time.monotonic_ns()
        seen = []
        for k in range(8):
            seen.append(values(d, 0, t + k * 50_000_000)[1]["sm_active"])
            time.sleep(0.05)
        print(json.dumps(seen))
    """)
    assert out[0] is None and out[1] is None  # no pair 100 ms apart yet
    assert all(v == pytest.approx(0.5) for v in out[2:]), out


def test_eight_devices_and_links(fake_nvml):
    script = "devices 8\n" + "".join(f"nvlink {a} {b} {b}\n" for a in range(8) for b in range(8) if a != b)
    script += "topo 0 1 10\n"
    out = run(fake_nvml, script, """
        d = nvml.make_driver(None, 0, library=LIB)
        print(json.dumps(describe(d)))
    """)
    assert len(out) == 8
    assert len({d["id"] for d in out}) == 8 and [d["index"] for d in out] == list(range(8))
    links = {l[0]: l for l in out[0]["links"]}
    assert len(links) == 7 and all(l[1] == "nvlink" and l[2] == 1 for l in links.values())
    assert links[out[1]["id"]][3] == "PIX" and links[out[2]["id"]][3] == "NODE"
    assert out[4]["numa"] == 1


def test_device_subset(fake_nvml):
    out = run(fake_nvml, "devices 4\n", """
        d = nvml.make_driver([2, 3], 0, library=LIB)
        print(json.dumps([x["index"] for x in describe(d)]))
    """)
    assert out == [2, 3]


def test_bad_device_index_is_a_clear_error(fake_nvml):
    out = run(fake_nvml, "devices 2\n", """
        try:
            nvml.make_driver([5], 0, library=LIB)
        except ValueError as e:
            print(json.dumps(str(e)))
    """)
    assert "device index 5" in out and "2 NVIDIA devices" in out


def test_mig_partitions_and_per_instance_gpm(fake_nvml):
    script = ("mig 0 1 3g.40gb 60 40320 0 4 1\nmig 0 2 2g.20gb 32 20096 4 2 1\n"
              "set 0 sm_active 0.8\n")
    out = run(fake_nvml, script, """
        d = nvml.make_driver(None, 0, library=LIB)
        t = time.monotonic_ns()
        values(d, 0, t)
        time.sleep(0.25)
        print(json.dumps({"devices": describe(d), "values": values(d, 0, t + 250_000_000)}))
    """)
    (dev,) = out["devices"]
    assert [(p["id"], p["kind"], p["units"], p["profile"]) for p in dev["partitions"]] == [
        ("1", "mig", 60, "MIG 3g.40gb"), ("2", "mig", 32, "MIG 2g.20gb")]
    assert dev["partitions"][0]["memory_bytes"] == 40320 * 1048576
    assert dev["counters"]["sm_active"] == ["partition", "ratio"]
    assert dev["counters"]["pcie_tx"] == ["device", "B/s"]
    status, v, _ = out["values"]
    assert status == "ok"
    # The fake scales instance i's activity by 1/(i+1): distinct values per instance.
    assert v["sm_active"] == pytest.approx([0.8, 0.4])


def test_gpm_missing_leaves_those_counters_out(fake_nvml_variant, caplog):
    fake = fake_nvml_variant("no_gpm")
    out = run(fake, "", """
        import logging
        logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="LOG %(message)s")
        d = nvml.make_driver(None, 0, library=LIB)
        status, v, _ = values(d, 0, time.monotonic_ns())
        print(json.dumps({"counters": describe(d)[0]["counters"], "status": status, "power": v["power"]}))
    """)
    assert "sm_active" not in out["counters"] and "pcie_tx" not in out["counters"]
    assert out["status"] == "ok" and out["power"] == pytest.approx(76.357)


def test_missing_symbol_drops_only_its_counter_and_old_names_still_work(fake_nvml_variant):
    out = run(fake_nvml_variant("no_power"), "", """
        d = nvml.make_driver(None, 0, library=LIB)
        print(json.dumps(describe(d)[0]["counters"]))
    """)
    assert "power" not in out and "temp" in out and "sm_active" in out
    out = run(fake_nvml_variant("old_driver"), "set 0 throttle_mask 4\n", """
        d = nvml.make_driver(None, 0, library=LIB)
        print(json.dumps(values(d, 0, time.monotonic_ns())[1]["throttle"]))
    """)
    assert out == 4  # read through nvmlDeviceGetCurrentClocksThrottleReasons


def test_missing_library_is_one_clear_error(fake_nvml, tmp_path):
    out = run(fake_nvml, "", f"""
        try:
            nvml.make_driver(None, 0, library="{tmp_path}/libnvidia-ml.so.1")
        except RuntimeError as e:
            print(json.dumps(str(e)))
    """)
    assert "cannot load" in out and f"not found: {tmp_path}/libnvidia-ml.so.1" in out


def test_broken_library_is_one_clear_error(fake_nvml_variant):
    out = run(fake_nvml_variant("broken"), "", """
        try:
            nvml.make_driver(None, 0, library=LIB)
        except RuntimeError as e:
            print(json.dumps(str(e)))
    """)
    assert "lacks nvmlInit_v2" in out


def test_counter_error_blanks_only_that_counter_then_stops_asking(fake_nvml):
    out = run(fake_nvml, "fail * nvmlDeviceGetTemperature 3 1\n", """
        import ctypes
        lib = ctypes.CDLL(LIB); lib.fake_nvml_calls.restype = ctypes.c_long
        d = nvml.make_driver(None, 0, library=LIB, unsupported_limit=3)
        t = time.monotonic_ns()
        reads = [values(d, 0, t + k * 100_000_000) for k in range(6)]
        calls = lib.fake_nvml_calls(b"nvmlDeviceGetTemperature")
        print(json.dumps({"reads": reads, "calls": calls}))
    """)
    reads = out["reads"]
    assert all(s == "ok" for s, _, _ in reads)
    assert all(v["temp"] is None for _, v, _ in reads)
    assert all(v["power"] is not None for _, v, _ in reads)
    # 1 call at describe (succeeded) + 3 failing reads, then no more calls.
    assert out["calls"] == 4


def test_gpu_lost_mid_run(fake_nvml):
    # Describing takes ~40 device calls, each read ~11: lost a few reads in.
    out = run(fake_nvml, "devices 2\nlost 1 calls 80\n", """
        d = nvml.make_driver(None, 0, library=LIB)
        t = time.monotonic_ns()
        seq = []
        for k in range(12):
            seq.append([_core.driver_read(d, i, t + k * 100_000_000)[0] for i in range(2)])
        print(json.dumps({"seq": seq, "detail": _core.driver_read(d, 1, t + 10**9)[2]}))
    """)
    seq = out["seq"]
    assert all(a == "ok" for a, _ in seq)  # the other device goes on
    states = [b for _, b in seq]
    assert "lost" in states and states[0] == "ok"
    assert states[states.index("lost"):] == ["lost"] * (len(states) - states.index("lost"))
    assert "GPU is lost" in out["detail"]


def test_unknown_on_every_call_reads_as_lost(fake_nvml):
    funcs = ["nvmlGpmSampleGet", "nvmlDeviceGetMemoryInfo_v2", "nvmlDeviceGetPowerUsage",
             "nvmlDeviceGetTemperature", "nvmlDeviceGetClockInfo",
             "nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetUtilizationRates",
             "nvmlDeviceGetTotalEccErrors"]
    # Calls made while describing the device succeed; every call after fails UNKNOWN.
    script = "".join(f"fail * {f} 999 4\n" for f in funcs)
    out = run(fake_nvml, script, """
        d = nvml.make_driver(None, 0, library=LIB)
        t = time.monotonic_ns()
        print(json.dumps([_core.driver_read(d, 0, t + k * 100_000_000)[0] for k in range(8)]))
    """)
    assert out[-1] == "lost"


def test_a_whole_gpus_sm_count_comes_from_nvmls_core_count_or_a_whole_word_model_name():
    from cuagent import _core

    # CUDA cores over the FP32 cores per SM of the compute capability.
    assert _core.nvidia_sm_count_from_cores(16896, 9, 0) == 132  # H100 SXM
    assert _core.nvidia_sm_count_from_cores(14592, 9, 0) == 114  # H100 PCIe
    assert _core.nvidia_sm_count_from_cores(6912, 8, 0) == 108  # A100: 64 per SM
    assert _core.nvidia_sm_count_from_cores(10752, 8, 6) == 84  # A40
    assert _core.nvidia_sm_count_from_cores(18944, 10, 0) == 0  # a capability not tabulated: not guessed
    assert _core.nvidia_sm_count_from_cores(100, 9, 0) == 0  # no whole number of SMs
    # Model names match as whole words (were substrings: A10G took A10's 72, RTX A1000 the A100's 108).
    assert _core.nvidia_sm_count_for_model("NVIDIA A10G") == 80
    assert _core.nvidia_sm_count_for_model("NVIDIA A10") == 72
    assert _core.nvidia_sm_count_for_model("NVIDIA RTX A1000") == 0
    assert _core.nvidia_sm_count_for_model("NVIDIA T400 4GB") == 0
    assert _core.nvidia_sm_count_for_model("NVIDIA H100 PCIe") == 114
    assert _core.nvidia_sm_count_for_model("NVIDIA GH200 480GB") == 132


def test_a_gpu_whose_sm_count_nothing_gives_is_left_out_and_said(fake_nvml):
    # Device 0: a model not in the table, its count from NVML's cores. Device 1: cores not
    # reported, the table names it. Device 2: neither (a future part): left out with a warning;
    # its topo would have had units 0, which every client rejects with the whole node's topo.
    script = ("devices 3\n"
              "set 0 name NVIDIA Future X\nset 0 cores 20480\nset 0 cc 9.0\n"
              "set 1 name NVIDIA A10G\nset 1 cores 0\nset 1 cc 8.6\n"
              "set 2 name NVIDIA B200\nset 2 cores 18944\nset 2 cc 10.0\n")
    out = run(fake_nvml, script, """
        import logging
        said = []
        class Keep(logging.Handler):
            def emit(self, record):
                said.append([record.levelname, record.getMessage()])
        logging.getLogger("cuagent.backends.nvml").addHandler(Keep())
        logging.getLogger("cuagent.backends.nvml").setLevel(logging.INFO)
        d = nvml.make_driver(None, 0, library=LIB)
        print(json.dumps({"devices": describe(d), "said": said}))
    """)
    assert [(d["index"], d["model"], d["units"], d["counts"]) for d in out["devices"]] == [
        (0, "NVIDIA Future X", 160, [160]), (1, "NVIDIA A10G", 80, [80])]
    warnings = [m for level, m in out["said"] if level == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith(
        "nvml: GPU-fa4e0000-0000-0000-0000-000000000002 (NVIDIA B200, device 2): not published: its SM count is "
        "unknown (18944 cores at compute capability 10.0 make no known number of SMs; 'NVIDIA B200' is not in the "
        "model table)"), out["said"]


def test_a_gpm_answer_the_library_leaves_unwritten_is_absent(fake_nvml):
    """The request's per-metric answers are reset before each call: one the library does not
    write is absent (was: 0.0, which for sm_active reads as an idle GPU)."""
    out = run(fake_nvml, "set 0 sm_active 0.7\nset 0 tensor_active 0.3\ngpm_untouched 2\n", """
        d = nvml.make_driver(None, 0, library=LIB)
        t = time.monotonic_ns()
        values(d, 0, t)
        time.sleep(0.25)
        print(json.dumps(values(d, 0, t + 250_000_000)[1]))
    """)
    assert out["sm_active"] is None  # metric 2 (SM activity): untouched
    assert out["tensor_active"] == pytest.approx(0.3, rel=1e-5)
