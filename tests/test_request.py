"""Reading a Request from a Pod as kube-scheduler sends it (JSON from the official
kubernetes client's models)."""

from __future__ import annotations

import pytest

from cuagent.scheduling.request import Request, RequestError, parse_quantity, pod_request

pytest.importorskip("kubernetes")
from sched_support import pod_json  # noqa: E402


def test_whole_gpus_from_limits_or_requests():
    assert pod_request(pod_json({"nvidia.com/gpu": "2", "cpu": "4"})) == Request(gpus=2, vendor="nvidia")
    assert pod_request(pod_json({"amd.com/gpu": "1"}, limits_only=False)) == Request(gpus=1, vendor="amd")
    assert pod_request(pod_json({"cpu": "4", "memory": "8Gi"})) is None  # no GPU: no opinion


def test_init_containers_count_as_kube_scheduler_counts_them():
    # max(sum of app containers, largest init container)
    assert pod_request(pod_json({"nvidia.com/gpu": "1"}, init={"nvidia.com/gpu": "4"})).gpus == 4
    assert pod_request(pod_json({"nvidia.com/gpu": "2"}, init={"nvidia.com/gpu": "1"})).gpus == 2


def test_mig_shared_and_annotations():
    r = pod_request(pod_json({"nvidia.com/mig-1g.10gb": "2"}))
    assert (r.mig_profile, r.count, r.vendor) == ("1g.10gb", 2, "nvidia")
    assert pod_request(pod_json({"nvidia.com/gpu.shared": "1"})).sharing
    r = pod_request(pod_json({"nvidia.com/gpu": "1"}, {"cuagent.io/sm-demand": "32", "cuagent.io/gpu-memory": "20Gi",
                                                        "cuagent.io/shared": "true"}))
    assert (r.units, r.memory_bytes, r.shared) == (32, 20 * 2**30, True)
    r = pod_request(pod_json({"nvidia.com/gpu": "1"}, {"cuagent.io/gpu-fraction": "0.25"}))
    assert r.gpus == 0.25 and r.count == 1 and r.sharing


@pytest.mark.parametrize("annotations, match", [
    ({"cuagent.io/sm-demand": "many"}, "sm-demand"),
    ({"cuagent.io/gpu-fraction": "1.5"}, "gpu-fraction"),
    ({"cuagent.io/gpu-memory": "lots"}, "gpu-memory"),
    ({"cuagent.io/shared": "yes"}, "shared"),
])
def test_bad_annotations_name_the_annotation(annotations, match):
    with pytest.raises(RequestError, match=match):
        pod_request(pod_json({"nvidia.com/gpu": "1"}, annotations))


def test_quantities():
    assert parse_quantity("20Gi") == 20 * 2**30
    assert parse_quantity("4G") == 4e9
    assert parse_quantity("1e3") == 1000
    assert parse_quantity("500m") == 0.5
    assert parse_quantity(3) == 3
    for bad in ("", "1x", "-1", True, None):
        with pytest.raises(RequestError):
            parse_quantity(bad)
