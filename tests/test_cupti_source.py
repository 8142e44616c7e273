"""The CUPTI PM-sampling source's state machine, against the fake libcupti.

Call order and struct sizes, a full counter-data image, the OTHER stop reason,
overflow, counters not permitted or busy, CUPTI losing its initialisation, a
device lost mid-run, operator pause/resume, and NVML going on throughout.
"""
from __future__ import annotations

import os

import pytest

import cupti_fake

pytest.importorskip("cuagent._core")
if cupti_fake.compiler() is None:
    pytest.skip("no C compiler for the fake libcupti", allow_module_level=True)

INSUFFICIENT_PRIVILEGES = 35
HARDWARE_BUSY = 26
NOT_INITIALIZED = 15
INVALID_DEVICE = 2


@pytest.fixture(scope="module")
def fake_cupti(tmp_path_factory):
    return cupti_fake.build(tmp_path_factory.mktemp("fake_cupti"))


def test_call_order_struct_sizes_and_one_deinitialize(fake_cupti):
    out = cupti_fake.run(fake_cupti, """
        src = source(devices=[0])
        assert wait(lambda: src.status()[0]["samples"] >= 20)
        st = src.status()[0]
        del src  # stops sampling, joins the decode thread, deinitialises
        print(json.dumps({"calls": calls(), "bad": fake.fake_cupti_bad_structs(),
                          "init": fake.fake_cupti_init_count(), "deinit": fake.fake_cupti_deinit_count(),
                          "hosts": fake.fake_cupti_host_objects(), "enabled": fake.fake_cupti_enabled(),
                          "state": st}))
    """)
    assert out["bad"] == 0  # every structSize and pPriv as the 12.9 headers want
    assert out["init"] == 1 and out["deinit"] == 1
    assert out["hosts"] == 0 and out["enabled"] == 0  # everything given back
    calls = out["calls"]
    start = calls.index("cuptiPmSamplingEnable")
    assert calls[:2] == ["cuptiProfilerInitialize", "cuptiDeviceGetChipName"]
    assert calls[start - 7:start + 5] == [
        "cuptiPmSamplingGetCounterAvailability", "cuptiPmSamplingGetCounterAvailability",
        "cuptiProfilerHostInitialize", "cuptiProfilerHostConfigAddMetrics",
        "cuptiProfilerHostGetConfigImageSize", "cuptiProfilerHostGetConfigImage",
        "cuptiProfilerHostGetNumOfPasses", "cuptiPmSamplingEnable", "cuptiPmSamplingSetConfig",
        "cuptiPmSamplingGetCounterDataSize", "cuptiPmSamplingCounterDataImageInitialize", "cuptiPmSamplingStart"]
    assert calls[start + 5] == "cuptiPmSamplingDecodeData"
    stop = calls.index("cuptiPmSamplingStop")
    assert calls[stop + 1] == "cuptiPmSamplingDecodeData"  # the last samples are decoded
    assert calls[-3:] == ["cuptiPmSamplingDisable", "cuptiProfilerHostDeinitialize", "cuptiProfilerDeInitialize"]
    assert out["state"]["state"] == "sampling" and out["state"]["chip"] == "GH100"


def test_full_counter_data_is_reinitialised_and_sampling_goes_on(fake_cupti):
    out = cupti_fake.run(fake_cupti, """
        src = source(devices=[0], rate_hz=1000)  # an image holds 250 samples
        assert wait(lambda: src.status()[0]["data_full"] >= 2)
        n = src.status()[0]["samples"]
        assert wait(lambda: src.status()[0]["samples"] > n + 100)
        print(json.dumps(src.status()[0]))
    """)
    assert out["state"] == "sampling" and out["samples"] > 500 and out["data_full"] >= 2


def test_stop_reason_other_still_delivers_samples(fake_cupti):
    out = cupti_fake.run(fake_cupti, """
        fake.fake_cupti_set_stop_reason(0)
        src = source(devices=[0])
        ok = wait(lambda: src.status()[0]["samples"] >= 50)
        print(json.dumps({"ok": ok, "st": src.status()[0]}))
    """)
    assert out["ok"] and out["st"]["state"] == "sampling"


def test_overflow_is_counted_and_sampling_goes_on(fake_cupti):
    out = cupti_fake.run(fake_cupti, """
        fake.fake_cupti_set_overflow(1)
        src = source(devices=[0])
        ok = wait(lambda: src.status()[0]["overflows"] >= 3 and src.status()[0]["samples"] > 10)
        print(json.dumps({"ok": ok, "st": src.status()[0]}))
    """)
    assert out["ok"] and out["st"]["state"] == "sampling"


@pytest.mark.parametrize("code,words", [(INSUFFICIENT_PRIVILEGES, ["not permitted", "CAP_PERFMON",
                                                                  "NVreg_RestrictProfilingToAdminUsers=0"]),
                                        (HARDWARE_BUSY, ["busy", "ncu"])])
def test_refused_counters_pause_then_resume_with_events(fake_cupti, code, words):
    out = cupti_fake.run(fake_cupti, f"""
        fail("cuptiPmSamplingEnable", {code})
        src = source(devices=[0, 1])
        assert wait(lambda: all(s["state"] == "retrying" for s in src.status()))
        # Keeps retrying with back-off, never sampling meanwhile.
        n = calls().count("cuptiPmSamplingEnable")
        assert wait(lambda: calls().count("cuptiPmSamplingEnable") >= n + 2)
        during = src.status()
        fail("cuptiPmSamplingEnable", 0, 0)
        assert wait(lambda: all(s["state"] == "sampling" and s["samples"] > 0 for s in src.status()))
        print(json.dumps({{"during": during, "events": src.drain_events()}}))
    """)
    for s in out["during"]:
        assert s["samples"] == 0
        for w in words:
            assert w in s["reason"]
    kinds = [(d, k) for d, k, _ in out["events"]]
    assert kinds.count((0, "profiling_paused")) == 1 and kinds.count((1, "profiling_paused")) == 1
    assert (0, "profiling_resumed") in kinds and (1, "profiling_resumed") in kinds
    assert kinds.index((0, "profiling_paused")) < kinds.index((0, "profiling_resumed"))


def test_not_initialized_initialises_again(fake_cupti):
    out = cupti_fake.run(fake_cupti, """
        src = source(devices=[0])
        assert wait(lambda: src.status()[0]["samples"] > 10)
        fail("cuptiPmSamplingDecodeData", 15, 1)
        assert wait(lambda: fake.fake_cupti_init_count() == 2)
        n = src.status()[0]["samples"]
        assert wait(lambda: src.status()[0]["state"] == "sampling" and src.status()[0]["samples"] > n + 10)
        print(json.dumps({"events": src.drain_events()}))
    """)
    assert [k for _, k, _ in out["events"]] == ["profiling_paused", "profiling_resumed"]
    assert "CUPTI_ERROR_NOT_INITIALIZED" in out["events"][0][2]


def test_device_lost_mid_run_pauses_it_alone(fake_cupti):
    out = cupti_fake.run(fake_cupti, """
        src = source(devices=[0, 1])
        assert wait(lambda: all(s["samples"] > 10 for s in src.status()))
        fail("cuptiPmSamplingDecodeData", 2, 1)  # the first device decoded next is gone
        assert wait(lambda: any(s["state"] == "retrying" for s in src.status()))
        lost = [s for s in src.status() if s["state"] == "retrying"]
        assert wait(lambda: all(s["state"] == "sampling" for s in src.status()))
        print(json.dumps({"lost": lost, "events": src.drain_events(), "enabled": fake.fake_cupti_enabled()}))
    """)
    assert len(out["lost"]) == 1 and out["lost"][0]["reason"].startswith("device lost")
    assert [k for _, k, _ in out["events"]] == ["profiling_paused", "profiling_resumed"]
    assert out["enabled"] == 2


def test_pause_releases_the_counters_and_resume_retakes_them(fake_cupti):
    out = cupti_fake.run(fake_cupti, """
        src = source(devices=[0, 1])
        assert wait(lambda: all(s["samples"] > 10 for s in src.status()))
        src.pause("operator: ncu session")
        assert wait(lambda: fake.fake_cupti_enabled() == 0)
        paused = src.status()
        n = [s["samples"] for s in paused]
        time.sleep(0.1)
        still = [s["samples"] for s in src.status()]
        src.resume()
        assert wait(lambda: fake.fake_cupti_enabled() == 2 and all(s["samples"] > k for s, k in zip(src.status(), n)))
        print(json.dumps({"paused": paused, "n": n, "still": still, "events": src.drain_events()}))
    """)
    assert all(s["state"] == "paused" and s["reason"] == "operator: ncu session" for s in out["paused"])
    assert out["n"] == out["still"]
    ev = out["events"]
    assert [(d, k) for d, k, _ in ev].count((0, "profiling_paused")) == 1
    assert (0, "operator: ncu session") in [(d, r) for d, k, r in ev if k == "profiling_paused"]


def test_libnvperf_host_is_taken_beside_libcupti_found_by_the_loader(fake_cupti, tmp_path):
    # libcupti found through the loader's search path (a soname, not a path): its own
    # libnvperf_host.so is loaded, not the one in a directory earlier on the search path
    # (a CUDA toolkit's).
    wheel, toolkit = tmp_path / "wheel", tmp_path / "toolkit"
    wheel.mkdir()
    (wheel / "libcupti.so.12").write_bytes(fake_cupti.read_bytes())
    ours = cupti_fake.build_nvperf_host(wheel)
    cupti_fake.build_nvperf_host(toolkit)
    env = {**os.environ, "LD_LIBRARY_PATH": f"{toolkit}:{wheel}", "FAKE_CUPTI_LOAD_NVPERF_HOST": "1"}
    out = cupti_fake.run(fake_cupti, """
        src = _core.make_cupti_source(library=["libcupti.so.12"], devices=[0])
        fake = ctypes.CDLL("libcupti.so.12")  # the copy the source loaded
        fake.fake_cupti_nvperf_host.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        print(json.dumps({"library": src.library_path, "pinned": src.nvperf_host_path, "loaded": nvperf_host()}))
    """, env=env, load_fake=False)
    assert out["library"] == "libcupti.so.12"
    assert out["loaded"] == str(ours) and out["pinned"] == str(ours)


def test_options_out_of_range_are_refused(fake_cupti):
    out = cupti_fake.run(fake_cupti, """
        errors = []
        for kw in ({"rate_hz": 50}, {"rate_hz": 25000}, {"devices": []}, {"devices": [99]},
                   {"decode_interval_ns": 500_000}):
            try:
                source(**kw)
            except (ValueError, RuntimeError) as e:
                errors.append(str(e))
        print(json.dumps(errors))
    """)
    assert len(out) == 5
    assert "100..20000" in out[0] and "100..20000" in out[1]
    assert "device 99" in out[3]
    assert "1..1000 ms" in out[4]
