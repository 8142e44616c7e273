"""SM grouping from cluster co-residency, checked on observations synthesised
from the layout measured on a real H100 (tests/data/h100-sxm-layout.json)."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from cuagent import _core  # noqa: E402 — a missing extension fails the suite, never skips it

LAYOUT = json.loads((Path(__file__).parent / "data" / "h100-sxm-layout.json").read_text())


def h100_observations(seed: int = 1, launches: int = 30):
    """Clusters as the H100 schedules them: size 2 on a TPC, larger ones inside one GPC
    (the 8-SM group only up to 8, SMs 124-131 only clusters of 2)."""
    rng = random.Random(seed)
    gpcs = [list(g) for g in LAYOUT["gpc_groups_cluster16"]] + [list(LAYOUT["group_max_cluster_8"])]
    obs = []
    for _ in range(launches):
        for k in range(66):
            obs.append((2, [2 * k, 2 * k + 1]))
        for size in range(3, 17):
            for g in gpcs:
                if size > len(g) or (len(g) == 8 and size > 8):
                    continue
                obs.append((size, rng.sample(g, size)))
    rng.shuffle(obs)
    return obs


def test_h100_groups_match_the_measurement():
    layout = _core.group_sms(132, h100_observations())
    gpc, tpc = layout["gpc"], layout["tpc"]
    assert layout["tpcs"] == 66
    assert all(tpc[2 * k] == tpc[2 * k + 1] for k in range(66))
    # Every measured GPC is one group, and distinct GPCs are distinct groups.
    groups = [set(g) for g in LAYOUT["gpc_groups_cluster16"]] + [set(LAYOUT["group_max_cluster_8"])]
    ids = [{gpc[s] for s in g} for g in groups]
    assert all(len(i) == 1 for i in ids) and len({next(iter(i)) for i in ids}) == 8
    # SMs 124-131 are never guessed into a GPC: each TPC is its own group.
    unplaced = LAYOUT["never_in_cluster_above_2"]
    own = {gpc[s] for s in unplaced}
    assert len(own) == 4 and not own & {next(iter(i)) for i in ids}
    assert layout["gpcs"] == 12
    assert any("124,125,126,127,128,129,130,131" in n for n in layout["notes"])
    # Group ids follow each group's first SM (deterministic).
    assert gpc[0] == 0


def test_grouping_does_not_depend_on_order():
    a = _core.group_sms(132, h100_observations(seed=1))
    b = _core.group_sms(132, list(reversed(h100_observations(seed=2))))
    assert a["gpc"] == b["gpc"] and a["tpc"] == b["tpc"]


def test_unseen_sms_are_reported_not_placed():
    layout = _core.group_sms(4, [(2, [0, 1])])
    assert layout["gpc"] == [0, 0, 1, 2]
    assert any("2,3 never ran" in n for n in layout["notes"])


def test_bad_sm_id_is_rejected():
    with pytest.raises(ValueError, match="SM 9"):
        _core.group_sms(4, [(2, [0, 9])])


def test_probe_without_libcuda_says_why(tmp_path):
    layout, why = _core.probe_sm_layout("00000000:18:00.0", cuda_library=str(tmp_path / "libcuda.so.1"))
    assert layout is None and "cannot load" in why and "libcuda.so.1" in why


def test_driver_skips_probe_with_a_log_line(fake_nvml, tmp_path):
    import subprocess, sys
    code = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(message)s')\n"
        "from cuagent.backends import nvml\n"
        f"d = nvml.make_driver(None, 0, library={str(fake_nvml.library)!r}, probe_layout=True,\n"
        f"    cuda_library={str(tmp_path / 'libcuda.so.1')!r}, probe_cache_dir={str(tmp_path / 'cache')!r})\n"
        "print('SOURCE', d.device(0).layout_source)\n")
    proc = subprocess.run([sys.executable, "-c", code], env=fake_nvml.env(None), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "SM layout probe skipped: cannot load" in proc.stdout
    assert "SOURCE none" in proc.stdout


def test_driver_uses_the_cached_probe_layout(fake_nvml, tmp_path):
    """A layout measured once is reused by UUID (cache file format: see sm_layout.hpp)."""
    import subprocess, sys
    layout = _core.group_sms(132, h100_observations())
    cache = tmp_path / "cache"
    cache.mkdir()
    lines = [f"132 {layout['gpcs']} {layout['tpcs']}"]
    lines += [f"{g} {t}" for g, t in zip(layout["gpc"], layout["tpc"])]
    lines += ["max " + " ".join(map(str, layout["gpc_max_cluster"]))]
    (cache / "GPU-fa4e0000-0000-0000-0000-000000000000.sm-layout").write_text("\n".join(lines) + "\n")
    code = (
        "from cuagent.backends import nvml\n"
        f"d = nvml.make_driver(None, 0, library={str(fake_nvml.library)!r}, probe_layout=True,\n"
        f"    cuda_library='/nonexistent/libcuda.so.1', probe_cache_dir={str(cache)!r})\n"
        "x = d.device(0)\n"
        "print(x.layout_source, list(x.counts), list(x.layout[0][:4]), list(x.layout[1][:4]))\n")
    proc = subprocess.run([sys.executable, "-c", code], env=fake_nvml.env(None), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] == "probe"
    assert "[12, 66, 132]" in proc.stdout
