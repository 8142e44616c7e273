"""The backend registry: --driver, the flags, the TOML keys, `auto` and the slow path all come
from it, and a backend installed from outside this repository (an entry point in the
`cuagent.backends` group) runs through `cuagent run` like the built-in ones."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cuagent import config as config_mod
from cuagent.backends import mock as mock_backend
from cuagent.backends import registry
from feed_support import CheckedFeed, Proc, _env

# A third-party distribution: one module and its dist-info, found on PYTHONPATH as an installed
# package would be on site-packages. Its backend wraps the mock driver under options of its own
# and has a slow path that lists a process on every device.
PLUGIN = textwrap.dedent('''
    from cuagent.backends import mock
    from cuagent.backends.registry import Backend, Option
    from cuagent.slow_path import SlowPath


    def make_driver(devices, seed, count=2, scenario="idle"):
        return mock.make_driver(None, seed, count=count, preset="a100-sxm", scenario=scenario)


    class Jobs(SlowPath):
        def processes(self, device_index, now):
            return [{"pid": 4242, "name": f"fake-job-{device_index}"}]


    BACKEND = Backend(
        name="fakegpu",
        make_driver=make_driver,
        options=(
            Option("fakegpu_count", int, 2, "how many devices", min=1, max=8, param="count"),
            Option("fakegpu_scenario", str, "idle", "their workload", choices=("idle", "training"),
                   param="scenario"),
        ),
        slow_path=lambda options, process_interval_s, topology_poll_s: Jobs(),
        help="a backend from outside the cuagent package",
    )
''')


def _distribution(site: Path, name: str, module: str, source: str, entry: str) -> None:
    (site / f"{module}.py").write_text(source)
    info = site / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\n{entry}\n")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    _distribution(site, "cuagent_fakegpu", "cuagent_fakegpu", PLUGIN, "fakegpu = cuagent_fakegpu:BACKEND")
    return site


def _env_with(site: Path) -> dict[str, str]:
    env = _env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH", "")) if p)
    return env


def cli(site: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cuagent.cli", *args], capture_output=True, text=True,
                          timeout=30, env=_env_with(site))


def test_a_backend_from_outside_the_package_runs_through_cuagent_run(site: Path, tmp_path: Path):
    feed, sync = f"ipc://{tmp_path}/f", f"ipc://{tmp_path}/s"
    config = tmp_path / "agent.toml"
    config.write_text('fakegpu_scenario = "training"\n')  # its option as a TOML key, its other as a flag
    proc = Proc(["run", "--config", str(config), "--driver", "fakegpu", "--fakegpu-count", "3", "--node", "plug",
                 "--feed", feed, "--sync", sync, "--rate-hz", "200", "--publish-interval-ms", "50"],
                feed, sync, tmp_path / "agent.log", env=_env_with(site))
    try:
        proc.wait_ping()
        watched = CheckedFeed(proc)
        try:
            watched.wait(lambda f: len({m[2] for m in f.of("state")}) == 3, "a state of each of the 3 devices")
            (topo,) = watched.of("topo")[:1]
            assert [d["units"] for d in topo[4]["devices"]] == [108, 108, 108]  # a100-sxm, count 3
            states = watched.of("state")
            assert all(m[4]["processes"] == [{"pid": 4242, "name": f"fake-job-{m[2][-1]}"}] for m in states)
            assert max(m[4]["idle_units"] for m in states) < 108  # "training", from the file
        finally:
            watched.close()
    finally:
        assert proc.stop() == 0, proc.log()


def test_its_options_are_flags_and_keys_with_their_bounds(site: Path, tmp_path: Path):
    r = cli(site, "run", "--help")
    assert r.returncode == 0 and "--driver {auto,amdsmi,mock,nvml,rocm_smi,fakegpu}" in r.stdout
    assert "--driver fakegpu:" in r.stdout and "--fakegpu-count FAKEGPU_COUNT" in r.stdout
    r = cli(site, "run", "--driver", "fakegpu", "--fakegpu-count", "9")
    assert r.returncode == 2 and r.stderr.splitlines() == [
        "cuagent run: error: argument --fakegpu-count: 9 is out of range: expected an integer from 1 to 8 "
        "(see cuagent run --help)"]
    bad = tmp_path / "bad.toml"
    bad.write_text('fakegpu_scenario = "melting"\n')
    r = cli(site, "run", "--config", str(bad))
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1
    assert 'fakegpu_scenario = "melting" is not one of idle, training' in r.stderr


def test_auto_never_picks_a_backend_that_did_not_ask_for_it(site: Path):
    r = subprocess.run([sys.executable, "-c", "from cuagent.backends import registry; "
                        "print([b.name for b in registry.auto_backends()], registry.names())"],
                       capture_output=True, text=True, timeout=30, env=_env_with(site))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("] ")[0] + "]" == "['nvml', 'amdsmi', 'rocm_smi']"
    assert "'fakegpu'" in r.stdout.split("] ")[1]


def test_a_broken_or_clashing_backend_is_left_out_and_says_why(site: Path, tmp_path: Path):
    _distribution(site, "cuagent_broken", "cuagent_broken", "import no_such_module\n",
                  "broken = cuagent_broken:BACKEND")
    _distribution(site, "cuagent_clash", "cuagent_clash", textwrap.dedent('''
        from cuagent.backends import mock
        from cuagent.backends.registry import Backend, Option
        BACKEND = Backend(name="clash", make_driver=mock.make_driver, options=(Option("seed", int, 0),))
    '''), "clash = cuagent_clash:BACKEND")
    feed, sync = f"ipc://{tmp_path}/f", f"ipc://{tmp_path}/s"
    r = cli(site, "run", "--driver", "mock", "--feed", feed, "--sync", sync, "--duration", "0.5")
    assert r.returncode == 0, r.stderr  # the others still work
    assert "backend broken left out: entry point cuagent.backends:broken: No module named 'no_such_module'" \
        in r.stderr
    assert "backend clash left out: its option(s) ['seed'] are settings of the agent" in r.stderr
    r = cli(site, "run", "--driver", "broken")
    assert r.returncode == 2 and "argument --driver: 'broken': that backend could not be loaded: entry point " \
        "cuagent.backends:broken: No module named 'no_such_module'" in r.stderr.splitlines()[-1]


def test_built_in_backends_come_from_their_modules():
    built_in = registry.all_backends()
    assert list(built_in)[:4] == ["amdsmi", "mock", "nvml", "rocm_smi"]
    assert config_mod.drivers()[:5] == ("auto", "amdsmi", "mock", "nvml", "rocm_smi")
    # Each option belongs to one backend, or to several that share its one declaration (the
    # AMD backends' kfd_root), and is a setting of cuagent run.
    owners: dict[str, set[str]] = {}
    for b in built_in.values():
        for o in b.options:
            owners.setdefault(o.name, set()).add(b.name)
    assert owners == {"mock_devices": {"mock"}, "mock_faults": {"mock"}, "nvml_library": {"nvml"},
                      "nvml_sm_layout": {"nvml"}, "nvml_probe_cache": {"nvml"},
                      "cupti": {"nvml"}, "cupti_rate_hz": {"nvml"}, "cupti_library": {"nvml"}, "profiling_socket": {"nvml"},
                      "rocm_smi_library": {"rocm_smi"}, "amdsmi_library": {"amdsmi"},
                      "kfd_root": {"amdsmi", "rocm_smi"}}
    assert built_in["amdsmi"].options[1] is built_in["rocm_smi"].options[1]  # shared by declaration
    assert set(owners) <= set(config_mod.options())
    cfg = config_mod.build({"nvml_library": "/opt/libnvidia-ml.so.1", "kfd_root": "/tmp/kfd"}, {"driver": "nvml"})
    assert cfg.driver_args("nvml") == (None, {"library": "/opt/libnvidia-ml.so.1"})
    assert cfg.driver_args("rocm_smi") == (None, {"kfd_root": "/tmp/kfd"})


def test_backends_share_a_setting_only_by_sharing_its_declaration():
    from cuagent.backends._amd import KFD_ROOT
    from cuagent.backends.registry import Backend, Option, _Registry

    reg = _Registry()
    reg._loaded = True  # only what this test adds
    reg.register(Backend(name="amd_a", make_driver=mock_backend.make_driver, options=(KFD_ROOT,)))
    reg.register(Backend(name="amd_b", make_driver=mock_backend.make_driver, options=(KFD_ROOT,)))
    assert list(reg.all()) == ["amd_a", "amd_b"]
    lookalike = Option("kfd_root", str, None, "another kfd_root")
    with pytest.raises(ValueError, match=r"option\(s\) \['kfd_root'\] already belong to backend 'amd_[ab]'"):
        reg.register(Backend(name="amd_c", make_driver=mock_backend.make_driver, options=(lookalike,)))


@pytest.mark.parametrize("driver, flag, key", [("amdsmi", "--amdsmi-library", "amdsmi_library"),
                                               ("rocm_smi", "--rocm-smi-library", "rocm_smi_library")])
def test_a_missing_vendor_library_names_the_flag_that_points_at_it(tmp_path: Path, driver, flag, key):
    """The C++ drivers say `pass library=<path>`, their factory's keyword; on the command line
    that is the backend's flag (and its key in the --config file)."""
    r = subprocess.run([sys.executable, "-m", "cuagent.cli", "run", "--driver", driver, flag,
                        str(tmp_path / "missing.so"), "--feed", f"ipc://{tmp_path}/f", "--sync", f"ipc://{tmp_path}/s"],
                       capture_output=True, text=True, timeout=30, env=_env())
    (line,) = r.stderr.splitlines()
    assert r.returncode == 2 and "missing.so" in line, line
    assert f"pass {flag} PATH (or {key} in the --config file)" in line and "library=" not in line, line
