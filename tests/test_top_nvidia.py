"""`cuagent top` for NVIDIA devices, drawn from a real agent on the fake libnvidia-ml (and the
fake libcupti): the probed GPC layout without per-GPC activity, or the MIG instances with
their own counters; the kHz band of CUPTI and its pause; processes; counters; and the compact
form for many GPUs. The renderer is fed the client's messages over real sockets and read back
as text, without a terminal."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console

import cupti_fake
from feed_support import WAIT_S, _env, start_real_agent, wait_until
from test_nvml_sm_layout import h100_observations

from cuagent import _core, wire
from cuagent.client import Client
from cuagent.exporters import top
from cuagent.exporters.top_nvidia import NvidiaHistory, full_lines

FAKES = Path(__file__).resolve().parent / "fakes"
UUID0 = "GPU-fa4e0000-0000-0000-0000-000000000000"
WIDTH = 80


@pytest.fixture(scope="module")
def fake_cupti(tmp_path_factory):
    if cupti_fake.compiler() is None:
        pytest.skip("no C compiler for the fake libcupti")
    return cupti_fake.build(tmp_path_factory.mktemp("fake_cupti"))


@pytest.fixture
def following():
    """Start agents and follow them with a client whose updates feed a history."""
    procs, clients = [], []

    def start(tmp, name, driver_args, script, launcher=None):
        proc = start_real_agent(tmp, name, driver_args, env={"FAKE_NVML_SCRIPT": str(script)}, launcher=launcher)
        procs.append(proc)
        client = Client([proc.endpoint])
        clients.append(client)
        history = NvidiaHistory()
        client.on_update(history.observe)
        return proc, client, history

    yield start
    for client in clients:
        client.close()
    for proc in procs:
        assert proc.stop() == 0, proc.log()


def follow(client, predicate, what):
    wait_until(predicate, step=lambda: client.poll(0.05), what=what)


def rendered(client, history, width=WIDTH, height=None, selectors=()):
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    console.print(top.render(client, top.FeedRates(), history, width, height, selectors))
    return console.export_text()


def panel_of(text: str, device: str) -> str:
    """The panel (border to border) whose title names ``device`` (its index or id start)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("╭") and f"/ {device} " in line)
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("╰"))
    return "\n".join(lines[start:end + 1])


def device(client, node="gpu-t", index=0):
    return next(d for d in client.view.nodes[node].devices.values() if d.topology.index == index)


def windows_with_band(history, client, n):
    dv = device(client)
    return sum(b is not None for b in history.windows(dv.node, dv.id)) >= n


def probe_cache(tmp: Path) -> Path:
    """The per-UUID layout cache of the SM probe (sm_layout.hpp), from the H100's grouping."""
    layout = _core.group_sms(132, h100_observations())
    lines = [f"132 {layout['gpcs']} {layout['tpcs']}"]
    lines += [f"{g} {t}" for g, t in zip(layout["gpc"], layout["tpc"])]
    lines += ["max " + " ".join(map(str, layout["gpc_max_cluster"]))]
    cache = tmp / "probe-cache"
    cache.mkdir()
    (cache / f"{UUID0}.sm-layout").write_text("\n".join(lines) + "\n")
    return cache


def profiling(sock: Path, *args: str) -> None:
    r = subprocess.run([sys.executable, "-m", "cuagent.cli", "profiling", *args, "--socket", str(sock)],
                       capture_output=True, text=True, timeout=WAIT_S, env=_env())
    assert r.returncode == 0, r.stderr


def test_probed_layout_band_processes_counters_and_cupti_pause(following, fake_nvml, fake_cupti, tmp_path):
    pids = (4242, 4343)  # not running here: the slow path names them from /proc or leaves them unnamed
    script = fake_nvml.script(f"devices 2\nset 0 sm_active 0.62\nset 0 tensor_active 0.3\nnvlink 0 0 1\n"
                              f"process 0 {pids[1]} 12 5 4294967296\nprocess 0 {pids[0]} 81 25 1073741824\n")
    sock = tmp_path / "profiling.sock"
    launcher = [str(FAKES / "nvml_probe_agent.py"), str(probe_cache(tmp_path))]
    driver = ["--driver", "nvml", "--nvml-library", str(fake_nvml.library), "--cupti", "on",
              "--cupti-library", str(fake_cupti),
              "--profiling-socket", str(sock)]
    proc, client, history = following(tmp_path, "gpu-t", driver, script, launcher=launcher)
    follow(client, lambda: "gpu-t" in client.view.nodes and windows_with_band(history, client, 5)
           and "sm_active" in device(client).state.device, "five windows with the kHz band")
    dv = device(client)
    assert dv.topology.layout_source == "probe" and top.top_nvidia.is_nvidia_panel(dv)
    # Every line of the panel fits an 80-column terminal (inside the panel's border).
    body = full_lines(dv, history, WIDTH - 4)
    assert all(line.cell_len <= WIDTH - 4 for line in body)
    text = panel_of(rendered(client, history), "0")

    # (a) The GPC layout as probed: 8 GPC-level groups (62 TPCs, 124 SMs), and the 4 TPCs
    # (SMs 124-131) the probe saw only in clusters of 2 shown as not placed.
    assert "GPC layout (probe): 8 GPCs · 62 TPCs · 124 SMs" in text, text
    cells = re.findall(r"g(\d+) (\d+)TPC (\d+)SM", text)
    assert sorted(int(sms) for _, _, sms in cells) == [8, 16, 16, 16, 16, 16, 18, 18], cells
    assert all(int(sms) == 2 * int(tpcs) for _, tpcs, sms in cells)
    assert "not placed in a GPC: SMs 124-131" in text and "4 TPCs only ever in clusters of 2" in text
    # No activity painted on the groups: the layout rows carry no bars or ratios.
    for line in text.splitlines():
        if re.search(r"g\d+ \d+TPC", line):
            assert not re.search(r"[▁▂▃▄▅▆▇█▕]|\d\.\d\d", line), line
    assert "no per-GPC/SM activity on NVIDIA" in text
    sm_active = dv.state.device["sm_active"]
    assert f"device-wide:  sm_active {sm_active:.2f} ▕" in text

    # (b) The band: busiest / mean / idlest SM per window (fake CUPTI: 0.9 / 0.5 / 0.1), a
    # column per window, then the peak and the samples of the latest window.
    assert "kHz band across SMs (CUPTI)" in text
    rows = {m.group(1): (float(m.group(2)), m.group(3))
            for m in re.finditer(r"│\s+(max|mean|min) (\d\.\d\d) ([▁▂▃▄▅▆▇█·]+)", text)}
    assert rows["max"][0] == pytest.approx(0.9) and rows["mean"][0] == pytest.approx(0.5)
    assert rows["min"][0] == pytest.approx(0.1)
    assert rows["max"][1][-1] == "▇" and rows["mean"][1][-1] == "▅" and rows["min"][1][-1] == "▂"
    assert len(rows["mean"][1]) >= 5
    samples = int(dv.state.device["pm_samples"])
    assert "peak 0.50" in text and f"{samples} samples/window" in text

    # (c) Processes, busiest SM share first.
    procs = re.findall(r"│\s+(\d+) .*?(\d+)%\s+(\S+GiB)", text)
    assert [(int(p), int(sm), mem) for p, sm, mem in procs] == [(pids[0], 81, "1.0GiB"), (pids[1], 12, "4.0GiB")]

    # (d) The device counters.
    d = dv.state.device
    for field in (f"power {d['power']:.0f}W", f"temp {d['temp']:.0f}C", f"sm {d['sm_clock'] / 1e6:.0f}MHz",
                  f"memory {d['mem_used'] / 2**30:.1f}GiB/{dv.topology.memory_bytes / 2**30:.1f}GiB",
                  "pcie tx/rx", "nvlink tx/rx", f"tensor {d['tensor_active']:.2f}"):
        assert field in text, (field, text)

    # The operator pauses CUPTI: the agent says so (profiling_paused), the counters go, the
    # panel names the reason; the band keeps the windows it had, the paused ones absent.
    profiling(sock, "pause", "ncu", "session")
    follow(client, lambda: history.pause_reason(dv.node, dv.id) == "ncu session"
           and device(client).state is not None and "pm_sm_active" not in device(client).state.device,
           "a window without the CUPTI counters after profiling_paused")
    paused = panel_of(rendered(client, history), "0")
    assert "CUPTI paused: ncu session" in paused, paused
    assert re.search(r"mean\s+–\s+[▁▂▃▄▅▆▇█]+·+", paused), paused
    assert "power " in paused  # NVML goes on
    # A view that joins now never sees the event: the topo (re-published at the pause) says why.
    late, late_history = Client([client.endpoints[0]]), NvidiaHistory()
    late.on_update(late_history.observe)
    try:
        follow(late, lambda: "gpu-t" in late.view.nodes and device(late).state is not None, "a late view's first window")
        assert device(late).profiling_paused == "ncu session"
        assert "CUPTI paused: ncu session" in panel_of(rendered(late, late_history), "0")
    finally:
        late.close()
    profiling(sock, "resume")
    follow(client, lambda: device(client).state is not None and "pm_sm_active" in device(client).state.device
           and history.pause_reason(dv.node, dv.id) is None and device(client).profiling_paused is None,
           "the kHz counters back, and the topo without the pause")
    assert "CUPTI paused" not in panel_of(rendered(client, history), "0")


def test_mig_partitions_each_with_their_own_counters(following, fake_nvml, fake_cupti, tmp_path):
    script = fake_nvml.script("devices 1\nset 0 sm_active 0.6\nmig 0 1 3g.40gb 60 40320 0 4 1\n"
                              "mig 0 2 2g.20gb 32 20096 4 2 1\nprocess 0 4242 40 10 2147483648\n")
    driver = ["--driver", "nvml", "--nvml-library", str(fake_nvml.library), "--cupti", "auto",
              "--cupti-library", str(fake_cupti)]
    proc, client, history = following(tmp_path, "gpu-t", driver, script)
    follow(client, lambda: "gpu-t" in client.view.nodes and device(client).state is not None
           and all("sm_active" in v for v in device(client).state.partition.values()), "partition counters")
    dv = device(client)
    text = panel_of(rendered(client, history), "0")
    assert "MIG: 2 instances hold 92 of 132 SMs (40 in none)" in text, text
    for pid, profile, sms, share, mem in (("1", "3g.40gb", 60, 45, "39.4GiB"), ("2", "2g.20gb", 32, 24, "19.6GiB")):
        values = dv.state.partition[pid]
        line = next(line for line in text.splitlines() if f"p{pid} {profile}" in line)
        assert re.search(rf"p{pid} {re.escape(profile)}\s+{sms} SM\s+{share}% {mem}", line), line
        assert f"sm_active {values['sm_active']:.2f} ▕" in text
    assert "GPC layout" not in text  # MIG on: the instances are the layout
    # MIG devices are left to NVML: no CUPTI, and said so.
    assert "kHz band: no CUPTI (MIG on" in text
    # A MIG process has no SM share in NVML: shown as such, not as 0 %.
    assert re.search(r"4242 .*\s–\s+2\.0GiB", text), text
    assert all(line.cell_len <= WIDTH - 4 for line in full_lines(dv, history, WIDTH - 4))


def test_eight_gpus_go_compact_and_device_selects_full_panels(following, fake_nvml, tmp_path):
    script = fake_nvml.script("devices 8\n" + "".join(f"set {i} sm_active 0.{i + 1}\n" for i in range(8)))
    driver = ["--driver", "nvml", "--nvml-library", str(fake_nvml.library), "--cupti", "off"]
    proc, client, history = following(tmp_path, "gpu-t", driver, script)
    follow(client, lambda: "gpu-t" in client.view.nodes and len(client.view.nodes["gpu-t"].devices) == 8
           and all(d.state is not None and "sm_active" in d.state.device
                   for d in client.view.nodes["gpu-t"].devices.values()), "eight devices with sm_active")
    # 8 full panels need far more than 40 rows: each device in three lines.
    text = rendered(client, history, WIDTH, 40)
    assert "╭" not in text
    heads = [line for line in text.splitlines() if line.startswith("gpu-t/")]
    assert [int(h.split("/")[1].split()[0]) for h in heads] == list(range(8))
    for i, head in enumerate(heads):
        assert f"sm_active {device(client, index=i).state.device['sm_active']:.2f}" in head, head
    assert "compact: 8 devices (terminal too short); --device ID for a full panel" in text
    assert len(text.splitlines()) <= 40 and all(cell_len(line) <= WIDTH for line in text.splitlines())
    assert text.count("no CUPTI") == 8
    # --device 3: its panel in full, the others compact.
    chosen = rendered(client, history, WIDTH, 40, ["3"])
    assert chosen.count("╭") == 1 and "/ 3 GPU-fa4e0000" in panel_of(chosen, "3")
    assert "kHz band: no CUPTI" in panel_of(chosen, "3")
    assert sum(line.startswith("gpu-t/") for line in chosen.splitlines()) == 7
    # A tall terminal has room for all of them.
    assert rendered(client, history, WIDTH, 1000).count("╭") == 8
    assert "--device nope: no such device" in rendered(client, history, WIDTH, 40, ["nope"])


def test_top_command_prints_the_nvidia_panel_without_a_terminal(following, fake_nvml, fake_cupti, tmp_path):
    script = fake_nvml.script("devices 1\n")
    driver = ["--driver", "nvml", "--nvml-library", str(fake_nvml.library), "--cupti", "on",
              "--cupti-library", str(fake_cupti)]
    proc, client, history = following(tmp_path, "gpu-t", driver, script)
    r = subprocess.run([sys.executable, "-m", "cuagent.cli", "top", proc.endpoint, "--plain", "--duration", "2.5"],
                       capture_output=True, text=True, timeout=WAIT_S + 10, env=dict(_env(), COLUMNS="80"))
    assert r.returncode == 0, r.stderr
    assert f"gpu-t/{UUID0} NVIDIA H100 80GB HBM3: idle_units" in r.stdout, r.stdout
    assert "  GPC layout: unknown (not probed): 132 SMs" in r.stdout
    assert "  kHz band across SMs (CUPTI)" in r.stdout and re.search(r" mean 0\.50 [▁▂▃▄▅▆▇█·]+", r.stdout)
    assert "  processes: none" in r.stdout and "power 76W" in r.stdout


def test_a_window_with_counters_just_after_the_pause_does_not_end_it():
    """The last window before a pause may still hold kHz samples and arrive after the event:
    the pause ends with a resume event, or with counters back after a window without them."""
    history = NvidiaHistory()

    def window(**device):
        history.record("n", "g", wire.State(100_000_000, 10, {}, {}, device, None))

    band = {"pm_sm_active": 0.5, "pm_sm_active_min": 0.1, "pm_sm_active_max": 0.9}
    window(**band)
    history.event("n", "g", "profiling_paused", "nsys")
    window(**band)
    assert history.pause_reason("n", "g") == "nsys"
    window(power=70.0)
    assert history.pause_reason("n", "g") == "nsys"
    window(**band)  # back without a resume event seen (events are not in snapshots)
    assert history.pause_reason("n", "g") is None
    history.event("n", "g", "profiling_paused", "busy: another profiler")
    history.event("n", "g", "profiling_resumed", "")
    assert history.pause_reason("n", "g") is None
    assert [b is not None for b in history.windows("n", "g")] == [True, True, False, True]
