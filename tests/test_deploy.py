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
    assert {p["containerPort"] for p in c["ports"]} == {7710, 7711}
    assert c["resources"]["limits"]["cpu"] and c["resources"]["limits"]["memory"]
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
    (toml_text,) = cm["data"].values()
    values = config_mod.tomllib.loads(toml_text)  # the ConfigMap's file is a valid config too
    assert config_mod.build(values, {}).feed == "tcp://*:7710"
