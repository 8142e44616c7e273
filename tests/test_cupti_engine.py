"""NVML and the CUPTI source on one device: one engine device, counters from both.

CUPTI's kHz counters merge into the NVML device's windows; while CUPTI is
paused (the operator, or a profiler holding the counters) they are absent,
never stale, and NVML's counters go on unaffected.
"""
from __future__ import annotations

import pathlib

import pytest

import cupti_fake

pytest.importorskip("cuagent._core")
if cupti_fake.compiler() is None:
    pytest.skip("no C compiler for the fake libcupti", allow_module_level=True)


@pytest.fixture(scope="module")
def fake_cupti(tmp_path_factory):
    return cupti_fake.build(tmp_path_factory.mktemp("fake_cupti"))


def test_one_device_with_counters_from_nvml_and_cupti(fake_cupti, fake_nvml):
    script = fake_nvml.script("devices 1\n")
    out = cupti_fake.run(fake_cupti, f"""
        fake.fake_cupti_set_active(0.4, 0.95, 0.05)
        nvml, _ = _core.make_nvml_driver(library={str(fake_nvml.library)!r})
        cupti = source(devices=[0])
        engine = _core.Engine(nvml, rate_hz=1000, window_ns=100_000_000, sources=[(0, cupti, 0)])
        names = [c.name for c in engine.device(0).counters]
        engine.start()
        def window():
            return engine.latest(0) or {{"device": {{}}, "seq": 0}}
        assert wait(lambda: window()["device"].get("pm_samples", 0) >= 50 and "power" in window()["device"])
        sampling = window()
        cupti.pause("operator")
        assert wait(lambda: fake.fake_cupti_enabled() == 0)
        seq = window()["seq"]
        assert wait(lambda: window()["seq"] >= seq + 3)
        paused = window()
        cupti.resume()
        assert wait(lambda: "pm_sm_active" in window()["device"])
        engine.stop()
        print(json.dumps({{"units": engine.device(0).units, "names": names, "sampling": sampling, "paused": paused}}))
    """, env=fake_nvml.env(script))
    names = out["names"]
    assert "power" in names and "pm_sm_active" in names and names.index("power") < names.index("pm_sm_active")
    dev = out["sampling"]["device"]
    assert dev["pm_sm_active"] == pytest.approx(0.4, abs=1e-3)
    assert dev["pm_sm_active_peak"] == pytest.approx(0.4, abs=1e-3)
    assert dev["pm_sm_active_max"] == pytest.approx(0.95, abs=1e-3)
    assert dev["pm_sm_active_min"] == pytest.approx(0.05, abs=1e-3)
    assert dev["pm_tensor_active"] == pytest.approx(0.25)
    assert dev["pm_nvlink_rx"] == pytest.approx(1e9, rel=1e-3)
    assert dev["pm_gpc_clock"] == pytest.approx(1.5e9)
    # About 100 kHz samples per 100 ms window, none counted in a window not its own.
    assert 50 <= dev["pm_samples"] <= 101
    # idle_units from the kHz mean: (1 - 0.4) x SMs.
    assert out["sampling"]["idle_units"] == pytest.approx(0.6 * out["units"], rel=1e-3)
    paused = out["paused"]["device"]
    assert not any(k.startswith("pm_") for k in paused)  # absent, never stale
    assert "power" in paused and "mem_used" in paused  # NVML unaffected


def test_python_engine_cupti_option_control_socket_and_cli(fake_cupti, fake_nvml, tmp_path):
    script = fake_nvml.script("devices 2\n")
    sock = tmp_path / "profiling.sock"
    out = cupti_fake.run(fake_cupti, f"""
        import os, stat, subprocess
        from cuagent import Engine
        from cuagent import profiling
        engine = Engine(driver="nvml", library={str(fake_nvml.library)!r}, cupti="on", cupti_library=LIB,
                        profiling_socket={str(sock)!r}, rate_hz=1000, window_ms=100)
        engine.start()
        def dev(i):
            s = engine.snapshot()[i]
            return s.device if s is not None else {{}}
        assert wait(lambda: all("pm_sm_active" in dev(i) for i in range(2)))
        mode = stat.S_IMODE(os.stat({str(sock)!r}).st_mode)
        cli = [sys.executable, "-m", "cuagent.cli", "profiling"]
        paused = subprocess.run(cli + ["pause", "nsys", "session", "--socket", {str(sock)!r}],
                                capture_output=True, text=True, timeout=30)
        assert wait(lambda: fake.fake_cupti_enabled() == 0)
        time.sleep(0.35)
        while_paused = [dev(i) for i in range(2)]
        events = [(e.type, e.device_id, e.detail) for e in engine.events()]
        status = profiling.request({str(sock)!r}, "status")
        bad = subprocess.run(cli + ["frobnicate", "--socket", {str(sock)!r}], capture_output=True, text=True,
                             timeout=30)
        resumed = subprocess.run(cli + ["resume", "--socket", {str(sock)!r}], capture_output=True, text=True,
                                 timeout=30)
        assert wait(lambda: all("pm_sm_active" in dev(i) for i in range(2)))
        events += [(e.type, e.device_id, e.detail) for e in engine.events()]
        ids = [t.id for t in engine.topology()]
        engine.stop()
        print(json.dumps({{"mode": mode, "paused_rc": paused.returncode, "while_paused": while_paused,
                          "events": events, "status": status, "bad": [bad.returncode, bad.stderr],
                          "resumed_rc": resumed.returncode, "ids": ids}}))
    """, env=fake_nvml.env(script))
    assert out["mode"] == 0o600
    assert out["paused_rc"] == 0 and out["resumed_rc"] == 0
    for dev in out["while_paused"]:
        assert "power" in dev and not any(k.startswith("pm_") for k in dev)
    paused = [e for e in out["events"] if e[0] == "profiling_paused"]
    assert sorted(e[1] for e in paused) == sorted(out["ids"]) and all(e[2] == "nsys session" for e in paused)
    assert sorted(e[1] for e in out["events"] if e[0] == "profiling_resumed") == sorted(out["ids"])
    (src,) = out["status"]["sources"]
    assert src["paused"] and [d["state"] for d in src["devices"]] == ["paused", "paused"]
    assert out["bad"][0] == 2 and "invalid choice: 'frobnicate'" in out["bad"][1]


def test_cupti_auto_without_a_usable_library_goes_on_with_nvml_alone(fake_nvml, tmp_path):
    script = fake_nvml.script("devices 1\n")
    out = cupti_fake.run(pathlib.Path("/nonexistent"), f"""
        from cuagent import Engine
        engine = Engine(driver="nvml", library={str(fake_nvml.library)!r}, cupti_library="/nonexistent/libcupti.so",
                        rate_hz=100, window_ms=100)
        print(json.dumps({{"profiling": engine.profiling is not None,
                          "names": list(engine.topology()[0].counters)}}))
    """, env=fake_nvml.env(script), load_fake=False)
    assert out["profiling"] is False
    assert "power" in out["names"] and not any(n.startswith("pm_") for n in out["names"])


def test_cuda_indices_follow_pci_order_mig_and_visible_devices_stay_on_nvml(fake_cupti, fake_nvml):
    # NVML index 0 sits on the higher PCI bus: CUDA (PCI_BUS_ID order) calls it 1.
    script = fake_nvml.script("devices 3\nset 0 pci 0000:c1:00.0\nset 1 pci 0000:41:00.0\nset 2 pci 0000:81:00.0\n"
                              "mig 2 1 3g.40gb 60 40320 0 4 1\n")
    out = cupti_fake.run(fake_cupti, f"""
        import os
        from cuagent import profiling
        nvml, _ = _core.make_nvml_driver(library={str(fake_nvml.library)!r})
        sources, src = profiling.attach(nvml, "on", 1000.0, LIB)
        mapping = [(e, k) for e, _, k in sources]
        cuda = src.status()
        engine_devices, cuda_indices, notes = profiling._cuda_indices(nvml)
        os.environ["CUDA_VISIBLE_DEVICES"] = "0"
        try:
            profiling.attach(nvml, "on", 1000.0, LIB)
            refused = ""
        except RuntimeError as e:
            refused = str(e)
        auto = profiling.attach(nvml, "auto", 1000.0, LIB)
        print(json.dumps({{"mapping": mapping, "devices": len(cuda), "order": os.environ.get("CUDA_DEVICE_ORDER"),
                          "refused": refused, "auto": auto[1] is None,
                          "cuda": [engine_devices, cuda_indices], "notes": notes}}))
    """, env=fake_nvml.env(script))
    # Engine device 2 has MIG on: left to NVML. 0 -> CUDA 2 (c1), 1 -> CUDA 0 (41).
    assert out["mapping"] == [[0, 0], [1, 1]] and out["devices"] == 2
    assert out["cuda"] == [[0, 1], [2, 0]]
    assert len(out["notes"]) == 1 and "MIG is on" in out["notes"][0]
    assert out["order"] == "PCI_BUS_ID"
    assert "CUDA_VISIBLE_DEVICES" in out["refused"] and out["auto"]


@pytest.mark.parametrize("window_ms", [50, 100, 250])
def test_each_window_holds_exactly_the_samples_taken_in_it(fake_cupti, fake_nvml, window_ms):
    # 4 ms samples starting 1 ms past every multiple of 4 ms of Unix time: every window edge
    # (a multiple of 2 ms) falls inside a sample, whose middle is 1 ms from the edge, so a
    # sample is counted in the window its middle lies in, whatever the window's length.
    script = fake_nvml.script("devices 1\n")
    out = cupti_fake.run(fake_cupti, f"""
        from cuagent import Engine
        fake.fake_cupti_set_phase(1_000_000)
        engine = Engine(driver="nvml", library={str(fake_nvml.library)!r}, cupti="on", cupti_library=LIB,
                        cupti_rate_hz=250, rate_hz=1000, window_ms={window_ms})
        engine.start()
        windows = {{}}
        def collect():
            s = engine.snapshot()[0]
            if s is not None and "pm_samples" in s.device:
                windows[s.t_ns] = [s.window_ns, s.device["pm_samples"]]
            return len(windows) >= 8
        assert wait(collect, timeout=60)
        first = fake.fake_cupti_first_start_unix(0)
        late = engine.profiling.status()[0]["late"]
        engine.stop()
        print(json.dumps({{"windows": windows, "first": first, "late": late}}))
    """, env=fake_nvml.env(script))
    period, first = 4_000_000, out["first"]
    assert first > 0 and first % period == 1_000_000

    def taken(start: int, end: int) -> int:  # samples from the first whose middle lies in [start, end)
        middles = [first + k * period + period // 2 for k in range((end - first) // period + 2)]
        return sum(start <= m < end for m in middles)

    counts = {int(t_end): (w, n) for t_end, (w, n) in out["windows"].items()}
    assert len(counts) >= 8
    held, expected = 0, 0
    for t_end, (w, n) in counts.items():
        assert w == window_ms * 1_000_000
        # Each window holds the samples taken in it, but for one: GPU time is mapped to the
        # host's by the least decode lag seen so far, and when that shrinks (a decode that came
        # sooner) a sample at the edge maps into the window before (bench/RESULTS.md, "Window
        # edges"); a starved decode thread's sample past its window's wait is in none (late).
        assert abs(n - taken(t_end - w, t_end)) <= 1, f"window ending {t_end}"
        held, expected = held + int(n), expected + taken(t_end - w, t_end)
    # No sample counted twice, none lost but the late ones (one may cross the first or last edge).
    assert expected - out["late"] - 1 <= held <= expected + 1, (held, expected, out["late"])
