"""Node Feature Discovery feature file: labels from the topology, the file format nfd-worker
reads (expiry directive, name=value lines), atomic replacement, and the agent writing it."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import pytest

from cuagent.scheduling import nfd
from cuagent.topology import PartitionInfo
from feed_support import wait_until
from sched_support import topology

P = nfd.PREFIX


def parse(text: str) -> tuple[dt.datetime, dict[str, str]]:
    """Read a feature file as nfd-worker does: directives, comments, name=value lines."""
    expiry, labels = None, {}
    for line in text.splitlines():
        if line.startswith("# +expiry-time="):
            expiry = dt.datetime.strptime(line.split("=", 1)[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
        elif line.startswith("#") or not line.strip():
            continue
        else:
            k, v = line.split("=", 1)
            labels[k] = v
    assert expiry is not None
    return expiry, labels


LABEL_NAME = re.compile(r"[a-z0-9.-]+/[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")


def test_labels_state_only_what_every_device_agrees_on():
    labels = nfd.labels([topology("GPU-0", 0), topology("GPU-1", 1)])
    assert labels == {P + "vendor": "nvidia", P + "devices": "2", P + "unit": "sm", P + "units": "32",
                      P + "gpc-count": "4", P + "tpc-count": "16", P + "layout-source": "mock",
                      P + "partition-mode": "whole", P + "model": "Test-GPU-32SM"}
    for k, v in labels.items():
        assert LABEL_NAME.fullmatch(k) and LABEL_VALUE.fullmatch(v), (k, v)
    mig = topology("GPU-2", 2, partitions=[PartitionInfo("1", "mig", 16, 0, "MIG 3g.40gb")])
    mixed = nfd.labels([topology("GPU-0", 0), mig])
    assert P + "partition-mode" not in mixed and mixed[P + "devices"] == "2"
    assert nfd.labels([mig])[P + "partition-mode"] == "mig"
    assert nfd.labels([]) == {}


def test_file_is_replaced_atomically_and_carries_an_expiry(tmp_path):
    now = [1_800_000_000.0]
    ff = nfd.FeatureFile(str(tmp_path), ttl_s=600, clock=lambda: now[0])
    assert ff.update([topology()])
    expiry, labels = parse((tmp_path / "cuagent").read_text())
    assert expiry == dt.datetime.fromtimestamp(now[0] + 600, dt.timezone.utc)
    assert labels[P + "units"] == "32"
    assert [p.name for p in tmp_path.iterdir()] == ["cuagent"]  # no temporary file left
    inode = os.stat(tmp_path / "cuagent").st_ino
    assert not ff.update([topology()])  # nothing changed, far from expiry: no write
    now[0] += 301
    assert ff.update([topology()])  # half the lifetime gone: renewed
    assert os.stat(tmp_path / "cuagent").st_ino != inode  # a new file renamed over the old one
    assert ff.update([topology(), topology("GPU-1", 1)])  # labels changed: rewritten at once
    assert parse((tmp_path / "cuagent").read_text())[1][P + "devices"] == "2"


def test_unwritable_directory_is_one_warning_not_an_error(tmp_path, caplog):
    ff = nfd.FeatureFile(str(tmp_path / "missing"))
    assert not ff.update([topology()]) and not ff.update([topology()])
    assert sum("cannot write the NFD feature file" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("text, value", [("NVIDIA H100 80GB HBM3", "NVIDIA-H100-80GB-HBM3"), ("--", None),
                                         ("x" * 80, "x" * 63), ("AMD Instinct MI300X (gfx942)", "AMD-Instinct-MI300X-gfx942")])
def test_label_values(text, value):
    assert nfd.label_value(text) == value


def test_agent_writes_the_feature_file(tmp_path: Path):
    from feed_support import start_agent

    features = tmp_path / "features.d"
    features.mkdir()
    agent = start_agent(tmp_path, "nfd-node", "mi300x:idle", "--nfd-features-dir", str(features))
    try:
        wait_until(lambda: (features / "cuagent").exists(), what="the feature file")
        _expiry, labels = parse((features / "cuagent").read_text())
    finally:
        agent.stop()
    assert labels[P + "vendor"] == "mock" and labels[P + "unit"] == "cu" and labels[P + "units"] == "304"
    assert labels[P + "xcd-count"] == "8" and labels[P + "layout-source"] == "mock"
