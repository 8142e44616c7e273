"""deploy/: the example config is one `cuagent run` accepts, and the manifests say what
they promise (hardened unit, DaemonSet ports and limits)."""
from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from cuagent import config as config_mod
from feed_support import ROOT, Proc

DEPLOY = ROOT / "deploy"


def test_example_config_loads_and_builds():
    values = config_mod.load_file(DEPLOY / "cuagent.toml")
    cfg = config_mod.build(values, {"driver": "mock"})
    assert (cfg.feed, cfg.sync) == ("tcp://*:7710", "tcp://*:7711")
    assert cfg.driver == "mock" and cfg.backend_settings["mock_devices"] == ["h100-sxm:training"]
    assert config_mod.build(values, {}).driver == "auto"  # the file itself never picks the mock


def test_agent_runs_from_the_example_config(tmp_path: Path):
    feed, sync = f"ipc://{tmp_path}/feed", f"ipc://{tmp_path}/sync"
    proc = Proc(["run", "--config", str(DEPLOY / "cuagent.toml"), "--driver", "mock", "--node", "deploy-test",
                 "--feed", feed, "--sync", sync], feed, sync, tmp_path / "agent.log")
    try:
        reply = proc.wait_ping()
        assert reply["ok"] is True and reply["node"] == "deploy-test"
    finally:
        assert proc.stop() == 0, proc.log()


def test_systemd_unit_is_hardened():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(DEPLOY / "cuagent.service")
    svc = unit["Service"]
    assert svc["ExecStart"].split()[1:3] == ["run", "--config"]
    assert svc["Restart"] == "on-failure" and svc["NoNewPrivileges"] == "yes"
    assert svc["DynamicUser"] == "yes" and svc["ProtectSystem"] == "strict"
    assert svc["CapabilityBoundingSet"] == ""


def test_daemonset_exposes_feed_and_sync_with_limits():
    yaml = pytest.importorskip("yaml")
    docs = [d for d in yaml.safe_load_all((DEPLOY / "daemonset.yaml").read_text()) if d]
    (ds,) = [d for d in docs if d["kind"] == "DaemonSet"]
    spec = ds["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    assert spec["hostNetwork"] is True
    assert {p["containerPort"] for p in c["ports"]} == {7710, 7711, 7712}
    assert c["resources"]["limits"]["cpu"] and c["resources"]["limits"]["memory"]
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
    (toml_text,) = cm["data"].values()
    values = config_mod.tomllib.loads(toml_text)  # the ConfigMap's file is a valid config too
    assert config_mod.build(values, {}).feed == "tcp://*:7710"


# --------------------------------------------------------------------------- Kubernetes and systemd, checked by their own tools

import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

MANIFESTS = ["daemonset.yaml", "extender.yaml"]


def _validator() -> list[str]:
    pytest.importorskip("kubernetes_validate")
    return [sys.executable, "-c", "import sys; from kubernetes_validate.__main__ import main; sys.exit(main())"]


@pytest.mark.parametrize("name", MANIFESTS)
def test_manifests_validate_strictly_offline(name):
    proc = subprocess.run([*_validator(), "--strict", str(DEPLOY / name)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "passed" in proc.stdout and "did not validate" not in proc.stdout


def test_the_validator_rejects_what_it_should(tmp_path):
    # The manifest this project shipped before: supplementalGroups in the container's
    # securityContext (it belongs to the pod's). --strict must catch that kind of slip.
    bad = (DEPLOY / "daemonset.yaml").read_text().replace(
        "            capabilities: {drop: [ALL]}\n", "            capabilities: {drop: [ALL]}\n            supplementalGroups: [44]\n", 1)
    (tmp_path / "bad.yaml").write_text(bad)
    proc = subprocess.run([*_validator(), "--strict", str(tmp_path / "bad.yaml")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0 and "supplementalGroups" in proc.stdout


def _docs(name: str) -> list[dict]:
    yaml = pytest.importorskip("yaml")
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def test_daemonset_has_fewer_privileges_than_a_privileged_exporter():
    (ds,) = [d for d in _docs("daemonset.yaml") if d["kind"] == "DaemonSet"]
    spec = ds["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    sc = c["securityContext"]
    assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["readOnlyRootFilesystem"] is True
    assert spec["automountServiceAccountToken"] is False
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["NVIDIA_DRIVER_CAPABILITIES"] == "utility"
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert mounts["pod-resources"]["readOnly"] is True
    assert volumes["pod-resources"]["hostPath"]["path"] == "/var/lib/kubelet/pod-resources"
    assert volumes["nfd-features"]["hostPath"]["path"] == "/etc/kubernetes/node-feature-discovery/features.d"
    (cm,) = [d for d in _docs("daemonset.yaml") if d["kind"] == "ConfigMap"]
    cfg = config_mod.build(config_mod.tomllib.loads(next(iter(cm["data"].values()))), {})
    assert cfg.pod_resources_socket == "/var/lib/kubelet/pod-resources/kubelet.sock"
    assert cfg.nfd_features_dir == volumes["nfd-features"]["hostPath"]["path"]


def test_scheduler_config_points_at_the_extender_service():
    (ksc,) = _docs("kube-scheduler-config.yaml")
    assert ksc["apiVersion"] == "kubescheduler.config.k8s.io/v1" and ksc["kind"] == "KubeSchedulerConfiguration"
    (ext,) = ksc["extenders"]
    assert ext["ignorable"] is True and ext["nodeCacheCapable"] is True and ext["weight"] >= 1
    assert ext["prioritizeVerb"] == "prioritize" and "filterVerb" not in ext
    m = re.fullmatch(r"(\d+)(ms|s)", ext["httpTimeout"])
    assert m and int(m.group(1)) * (1 if m.group(2) == "ms" else 1000) <= 1000
    names = {r["name"] for r in ext["managedResources"]}
    assert {"nvidia.com/gpu", "amd.com/gpu"} <= names
    svc = [d for d in _docs("extender.yaml") if d["kind"] == "Service" and d["metadata"]["name"] == "cuagent-extender"]
    (port,) = svc[0]["spec"]["ports"]
    host = f"{svc[0]['metadata']['name']}.{svc[0]['metadata']['namespace']}.svc.cluster.local"
    assert ext["urlPrefix"] == f"http://{host}:{port['port']}"
    (dep,) = [d for d in _docs("extender.yaml") if d["kind"] == "Deployment" and d["metadata"]["name"] == "cuagent-extender"]
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["args"][0] == "extender" and c["args"][c["args"].index("--listen") + 1].endswith(f":{port['port']}")
    from cuagent.cli import build_parser
    build_parser().parse_args(c["args"])  # the Deployment's command line is one cuagent accepts


def _unit_with_real_binary(tmp_path: Path) -> Path:
    """The unit as shipped, with ExecStart pointing at this installation's cuagent
    (verify checks that the binary exists)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed (Debian package systemd)")
    exe = Path(sys.executable).parent / "cuagent"
    if not exe.exists():
        pytest.skip("no cuagent console script beside the interpreter")
    unit = tmp_path / "cuagent.service"
    unit.write_text((DEPLOY / "cuagent.service").read_text().replace("/usr/local/bin/cuagent", str(exe)))
    return unit


def test_systemd_unit_verifies(tmp_path):
    unit = _unit_with_real_binary(tmp_path)
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr


def test_systemd_unit_exposure_is_low(tmp_path):
    unit = _unit_with_real_binary(tmp_path)
    proc = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=40", str(unit)],
                          capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout)
    assert m, proc.stdout + proc.stderr
    assert float(m.group(1)) <= 4.0 and proc.returncode == 0, proc.stdout[-2000:]


def test_systemd_unit_closes_devices_but_gpus():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(DEPLOY / "cuagent.service")
    svc = unit["Service"]
    assert svc["DevicePolicy"] == "closed"
    text = (DEPLOY / "cuagent.service").read_text()
    assert "DeviceAllow=char-nvidia* rw" in text.splitlines()


# --------------------------------------------------------------------------- deploy/cuagent.toml names every setting

_SETTING_LINE = re.compile(r"^(#\s?)?([a-z][a-z0-9_]*) = ")


def _example_lines() -> list[str]:
    return (DEPLOY / "cuagent.toml").read_text().splitlines()


def _uncommented_example() -> str:
    """deploy/cuagent.toml with every commented setting line turned on."""
    known = config_mod.options()
    out = []
    for line in _example_lines():
        m = _SETTING_LINE.match(line)
        out.append(line[len(m.group(1)):] if m and m.group(1) and m.group(2) in known else line)
    return "\n".join(out) + "\n"


def test_example_config_names_every_run_setting():
    """README calls deploy/cuagent.toml every setting: each `cuagent run` option is there, set or
    commented, once; and with all of them turned on it is still a config the agent accepts."""
    named = [m.group(2) for m in map(_SETTING_LINE.match, _example_lines()) if m]
    assert sorted(set(config_mod.options()) - set(named)) == [], "settings missing from deploy/cuagent.toml"
    assert sorted(set(named) - set(config_mod.options())) == [], "lines that are no setting"
    assert len(named) == len(set(named)), "a setting named twice"
    values = config_mod.tomllib.loads(_uncommented_example())
    assert set(values) == set(config_mod.options())
    cfg = config_mod.build(config_mod.check_values(values, "uncommented deploy/cuagent.toml"), {"driver": "mock"})
    assert cfg.metrics_listen == ":7712" and cfg.backend_settings["cupti"] == "auto"


def test_example_config_says_the_order_auto_tries():
    from cuagent.backends import registry

    text = " ".join(line.lstrip("# ") for line in _example_lines())
    assert f"in the order {', '.join(b.name for b in registry.auto_backends())}," in text


def _unit_lines() -> list[str]:
    return (DEPLOY / "cuagent.service").read_text().splitlines()


def _unit_value(key: str) -> str:
    (value,) = [line.split("=", 1)[1] for line in _unit_lines() if line.startswith(f"{key}=")]
    return value


def test_example_paths_are_ones_the_systemd_unit_lets_the_agent_use():
    """The unit runs a dynamic user under ProtectSystem=strict: it writes only its
    CacheDirectory and RuntimeDirectory, and reads a root-only secret only as a credential
    (LoadCredential=, commented until keys exist)."""
    values = config_mod.tomllib.loads(_uncommented_example())
    assert values["nvml_probe_cache"].startswith(f"/var/cache/{_unit_value('CacheDirectory')}/")
    assert values["profiling_socket"].startswith(f"/run/{_unit_value('RuntimeDirectory')}/")
    (credential,) = [line.split("=", 1)[1] for line in _unit_lines() if line.startswith("#LoadCredential=")]
    name, source = credential.split(":", 1)
    assert values["curve_secret_key"] == f"/run/credentials/cuagent.service/{name}"
    assert source.startswith(f"/etc/{_unit_value('ConfigurationDirectory')}/")
    assert values["curve_allow"].startswith(f"/etc/{_unit_value('ConfigurationDirectory')}/")
    readme = (ROOT / "README.md").read_text()
    paths = re.findall(r"--nvml-probe-cache (\S+?)`", readme)
    assert paths, "README shows --nvml-probe-cache"
    for path in paths:
        assert path.startswith(f"/var/cache/{_unit_value('CacheDirectory')}/"), path


def test_systemd_unit_verifies_with_its_credential_turned_on(tmp_path):
    unit = _unit_with_real_binary(tmp_path)
    unit.write_text(unit.read_text().replace("#LoadCredential=", "LoadCredential="))
    assert "\nLoadCredential=" in unit.read_text()
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
