"""Pod attribution against a real gRPC server on a Unix socket that implements the
published podresources/v1 proto (compiled here from the repository's .proto with
grpc_tools.protoc, independently of the run-time descriptors the agent uses)."""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path
from types import SimpleNamespace

import pytest

grpc = pytest.importorskip("grpc")
protoc = pytest.importorskip("grpc_tools.protoc")

from cuagent.client import Client  # noqa: E402
from cuagent.scheduling import podresources  # noqa: E402
from cuagent.scheduling.podresources import Assignment, PodAttribution, attribute  # noqa: E402
from feed_support import ROOT, WAIT_S, CheckedFeed, start_agent, wait_until  # noqa: E402

PROTO = ROOT / "python" / "cuagent" / "scheduling" / "podresources_v1.proto"


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    """The protoc-generated messages of the published proto."""
    out = tmp_path_factory.mktemp("podresources-proto")
    (out / "podresources_v1.proto").write_text(PROTO.read_text())
    assert protoc.main(["protoc", f"-I{out}", f"--python_out={out}", str(out / "podresources_v1.proto")]) == 0
    spec = importlib.util.spec_from_file_location("podresources_v1_pb2", out / "podresources_v1_pb2.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Kubelet:
    """A kubelet-like PodResources server: List answers ``pods`` = [(ns, pod, [(container,
    resource, [device ids])])], with CPU, memory and DRA fields filled too."""

    def __init__(self, pb, path: Path, pods) -> None:
        self.pb, self.path, self.pods, self.calls = pb, path, pods, 0
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        handler = grpc.unary_unary_rpc_method_handler(
            self._list, request_deserializer=pb.ListPodResourcesRequest.FromString,
            response_serializer=pb.ListPodResourcesResponse.SerializeToString)
        self.server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("v1.PodResourcesLister",
                                                                                   {"List": handler})])
        assert self.server.add_insecure_port(f"unix://{path}")
        self.server.start()

    def _list(self, request, context):
        self.calls += 1
        pb = self.pb
        resp = pb.ListPodResourcesResponse()
        for ns, name, containers in self.pods:
            pod = resp.pod_resources.add(name=name, namespace=ns)
            for cname, resource, ids in containers:
                c = pod.containers.add(name=cname, cpu_ids=[2, 3])
                c.devices.add(resource_name=resource, device_ids=ids,
                              topology=pb.TopologyInfo(nodes=[pb.NUMANode(ID=0)]))
                c.memory.add(memory_type="memory", size=2**30)
                c.dynamic_resources.add(claim_name="claim", claim_namespace=ns, claim_resources=[
                    pb.ClaimResource(driver_name="gpu.example.com", pool_name="p", device_name="gpu-9",
                                     cdi_devices=[pb.CDIDevice(name="example.com/gpu=9")])])
        return resp

    def stop(self) -> None:
        self.server.stop(0).wait(5)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


PODS = [("ml", "trainer-0", [("main", "nvidia.com/gpu", ["GPU-a", "GPU-b"])]),
        ("ml", "infer", [("server", "nvidia.com/gpu.shared", ["GPU-b::1", "GPU-b::2"]),
                         ("sidecar", "example.com/thing", ["thing-7"])]),
        ("dev", "notebook", [("nb", "nvidia.com/mig-1g.10gb", ["MIG-GPU-c/3/0", "MIG-7e57"])])]


WHOLE, MIG = [SimpleNamespace(kind="whole")], [SimpleNamespace(kind="mig"), SimpleNamespace(kind="mig")]


def devices():
    return [SimpleNamespace(id="GPU-a", index=0, vendor="nvidia", pci="00000000:C1:00.0", partitions=WHOLE),
            SimpleNamespace(id="GPU-b", index=1, vendor="nvidia", pci="00000000:C2:00.0", partitions=WHOLE),
            SimpleNamespace(id="GPU-c", index=2, vendor="nvidia", pci=None, partitions=MIG)]


def test_run_time_descriptors_agree_with_the_published_proto(pb):
    ours = podresources.message_classes()
    for name, cls in ours.items():
        theirs = {f.name: f for f in getattr(pb, name).DESCRIPTOR.fields}
        for f in cls.DESCRIPTOR.fields:
            t = theirs[f.name]
            assert (f.number, f.type, f.is_repeated) == (t.number, t.type, t.is_repeated), (name, f.name)
            if f.message_type is not None:
                assert f.message_type.name == t.message_type.name


def test_list_against_a_kubelet_server(pb, tmp_path):
    kubelet = Kubelet(pb, tmp_path / "kubelet.sock", PODS)
    try:
        got = podresources.list_pod_resources(str(tmp_path / "kubelet.sock"))
    finally:
        kubelet.stop()
    assert Assignment("ml", "trainer-0", "main", "nvidia.com/gpu", "GPU-b") in got
    assert Assignment("dev", "notebook", "nb", "nvidia.com/mig-1g.10gb", "MIG-GPU-c/3/0") in got
    assert len(got) == 7


def test_device_ids_map_to_devices_and_partitions(caplog):
    assignments = [Assignment(ns, pod, c, res, i) for ns, pod, cs in PODS for c, res, ids in cs for i in ids]
    assignments += [Assignment("x", "amd", "c", "amd.com/gpu", "0000:c2:00.0"),
                    Assignment("x", "idx", "c", "nvidia.com/gpu", "2")]
    unmatched: dict[str, podresources.Unmatched] = {}
    out = attribute(assignments, devices(), mig_resolver=lambda u: ("GPU-c", "5") if u == "MIG-7e57" else None,
                    unmatched=unmatched)
    assert out["GPU-a"] == [{"namespace": "ml", "pod": "trainer-0", "container": "main", "resource": "nvidia.com/gpu"}]
    assert {(e["pod"], e["container"]) for e in out["GPU-b"]} == {("amd", "c"), ("infer", "server"), ("trainer-0", "main")}
    assert len(out["GPU-b"]) == 3  # two replicas of one GPU for one container: one entry
    assert [(e["pod"], e.get("partition")) for e in out["GPU-c"]] == [("notebook", "3"), ("notebook", "5"), ("idx", None)]
    assert set(unmatched) == {"thing-7"}  # another plugin's device (example.com/thing): no GPU's
    assert attribute([], devices()) == {"GPU-a": [], "GPU-b": [], "GPU-c": []}


def test_an_id_that_matches_no_device_leaves_pods_unknown_where_it_could_belong():
    """Not `pods: []` ("no container holds it") for a device a container may hold: absent."""
    nb = dict(namespace="dev", pod="notebook", container="nb")
    mig_id = Assignment(**nb, resource="nvidia.com/mig-1g.10gb", device_id="MIG-5e0c0000-0000-0000-0000-000000000001")
    # The audit's case: a MIG id, no resolver (pynvml missing), one GPU.
    gpu = SimpleNamespace(id="GPU-aaaa", index=0, vendor="nvidia", pci="00000000:C1:00.0", partitions=WHOLE)
    assert attribute([mig_id], [gpu]) == {"GPU-aaaa": None}
    amd = SimpleNamespace(id="amd-0", index=0, vendor="amd", pci="0000:c3:00.0", partitions=WHOLE)
    devs = [*devices(), amd]
    # A MIG id belongs to a GPU with MIG on: without a resolver, or one that does not list it
    # yet (NVML is read again at most every 30 s after a reconfiguration), GPU-c's pods are unknown.
    for resolver in (None, lambda _u: None):
        unmatched: dict[str, podresources.Unmatched] = {}
        out = attribute([mig_id], devs, mig_resolver=resolver, unmatched=unmatched)
        assert out == {"GPU-a": [], "GPU-b": [], "GPU-c": None, "amd-0": []}
        assert "MIG" in unmatched[mig_id.device_id].reason and unmatched[mig_id.device_id].devices == ("GPU-c",)
    # Resolved to a GPU this agent does not serve: no device of its is concerned.
    assert attribute([mig_id], devs, mig_resolver=lambda _u: ("GPU-elsewhere", "1")) == \
        {"GPU-a": [], "GPU-b": [], "GPU-c": [], "amd-0": []}
    # An id of unknown form under a GPU resource: any device of that vendor may be the one.
    odd = Assignment(**nb, resource="nvidia.com/gpu", device_id="nv-odd-7")
    assert attribute([odd], devs) == {"GPU-a": None, "GPU-b": None, "GPU-c": None, "amd-0": []}
    odd_amd = Assignment(**nb, resource="amd.com/gpu", device_id="amd-odd-7")
    assert attribute([odd_amd], devs) == {"GPU-a": [], "GPU-b": [], "GPU-c": [], "amd-0": None}
    # A GPU named by a UUID none of these have, another plugin's device: no one's here.
    other = [Assignment(**nb, resource="nvidia.com/gpu", device_id="GPU-elsewhere"),
             Assignment(**nb, resource="rdma/hca", device_id="mlx5_0")]
    assert attribute(other, devs) == {"GPU-a": [], "GPU-b": [], "GPU-c": [], "amd-0": []}
    # Whatever else matched still stands beside an unknown device.
    held = Assignment(**nb, resource="nvidia.com/gpu", device_id="GPU-a")
    assert attribute([held, mig_id], devs)["GPU-a"] == [{**nb, "resource": "nvidia.com/gpu"}]


def test_poller_without_socket_then_with_then_gone(pb, tmp_path, caplog):
    path = tmp_path / "kubelet.sock"
    att = PodAttribution(str(path), interval_s=0.05, timeout_s=1.0)
    kubelet = None
    try:
        with caplog.at_level(logging.INFO, logger="cuagent.podresources"):
            att.start()  # inside: its first look (and the one log line) comes at once
            time.sleep(0.5)  # ten looks at a missing socket
            assert att.pods(devices()) is None and att.polls == 0
            assert sum("no kubelet PodResources socket" in r.getMessage() for r in caplog.records) == 1
            kubelet = Kubelet(pb, path, PODS)
            wait_until(lambda: att.pods(devices()) is not None, what="attribution once the socket exists")
            assert att.pods(devices())["GPU-a"][0]["pod"] == "trainer-0"
            kubelet.stop()  # the kubelet goes away with its socket
            wait_until(lambda: att.pods(devices()) is None, what="attribution gone with the socket")
            calls_when_gone = att.polls
            time.sleep(0.5)
            assert att.polls <= calls_when_gone + 1  # no retry storm against a missing socket
            kubelet = Kubelet(pb, path, PODS[:1])  # a restarted kubelet at the same path
            wait_until(lambda: att.pods(devices()) is not None and att.pods(devices())["GPU-b"][0]["pod"] == "trainer-0"
                       and len(att.pods(devices())["GPU-b"]) == 1, what="attribution from the new kubelet")
    finally:
        att.close()
        if kubelet is not None:
            kubelet.stop()


def test_the_poller_says_which_id_it_could_not_match_and_why(pb, tmp_path, caplog):
    path = tmp_path / "kubelet.sock"
    mig = "MIG-5e0c0000-0000-0000-0000-000000000001"
    kubelet = Kubelet(pb, path, [("dev", "notebook", [("nb", "nvidia.com/mig-1g.10gb", [mig])]),
                                 ("ml", "trainer-0", [("main", "nvidia.com/gpu", ["GPU-a"])])])
    att = PodAttribution(str(path), interval_s=0.05, timeout_s=1.0)
    try:
        with caplog.at_level(logging.INFO, logger="cuagent.podresources"):
            att.start()
            wait_until(lambda: att.pods(devices()) is not None, what="attribution")
            polls = att.polls
            wait_until(lambda: att.polls >= polls + 3 and att.pods(devices()) is not None, what="more polls")
        pods = att.pods(devices())
        assert pods["GPU-c"] is None and pods["GPU-a"][0]["pod"] == "trainer-0" and pods["GPU-b"] == []
        said = [r for r in caplog.records if mig in r.getMessage()]
        assert len(said) == 1 and said[0].levelno == logging.WARNING  # once, not per poll
        assert "GPU-c" in said[0].getMessage() and "no NVML" in said[0].getMessage()
    finally:
        att.close()
        kubelet.stop()


def test_a_socket_that_answers_nothing_backs_off(tmp_path, caplog):
    import socket

    path = tmp_path / "kubelet.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))  # exists, but nobody listens: every connect is refused
    att = PodAttribution(str(path), interval_s=0.05, timeout_s=0.5).start()
    try:
        with caplog.at_level(logging.WARNING, logger="cuagent.podresources"):
            wait_until(lambda: att.failures >= 2, what="two failed calls")
            time.sleep(1.0)
        assert att.pods(devices()) is None
        assert att.failures <= 5  # 0.1 s, 0.2 s, 0.4 s, 0.8 s ... not every 50 ms
        assert sum("failed" in r.getMessage() for r in caplog.records) == 1
    finally:
        att.close()
        dead.close()


def test_agent_publishes_pods_and_top_shows_them(pb, tmp_path):
    sock = tmp_path / "kubelet.sock"
    kubelet = Kubelet(pb, sock, [("ml", "trainer-0", [("main", "nvidia.com/gpu", ["mock-0"])])])
    agent = start_agent(tmp_path, "k8s-node", "h100-sxm:idle,h100-sxm:idle", "--pod-resources-socket", str(sock))
    plain = start_agent(tmp_path, "bare-node", "h100-sxm:idle", "--pod-resources-socket", str(tmp_path / "none.sock"))
    client = Client([agent.endpoint, plain.endpoint])
    try:
        def attributed() -> bool:
            client.poll(0.1)
            nv = client.view.nodes.get("k8s-node")
            return nv is not None and all(d.state is not None and d.state.pods is not None for d in nv.devices.values())
        wait_until(attributed, what="state.pods from the agent", step=lambda: None)
        devs = client.view.nodes["k8s-node"].devices
        assert devs["mock-0"].state.pods == [{"namespace": "ml", "pod": "trainer-0", "container": "main",
                                              "resource": "nvidia.com/gpu"}]
        assert devs["mock-1"].state.pods == []  # known: nobody holds it
        wait_until(lambda: client.poll(0.1) is not None and "bare-node" in client.view.nodes and all(
            d.state is not None for d in client.view.nodes["bare-node"].devices.values()), what="bare node",
            step=lambda: None)
        assert client.view.nodes["bare-node"].devices["mock-0"].state.pods is None  # absent: no socket
        assert "no kubelet PodResources socket" in plain.log()
        checked = CheckedFeed(agent)  # the pods key as PROTOCOL.md §3.2 states it
        try:
            checked.wait(lambda f: any(m[4].get("pods") for m in f.of("state")), "a checked state with pods")
        finally:
            checked.close()
        top = subprocess.run([sys.executable, "-m", "cuagent.cli", "top", agent.endpoint, "--plain", "--duration", "2.5"],
                             capture_output=True, text=True, timeout=WAIT_S)
        assert "pods: ml/trainer-0/main" in top.stdout and "pods: none" in top.stdout, top.stdout + top.stderr
    finally:
        client.close()
        agent.stop()
        plain.stop()
        kubelet.stop()


def test_nvml_mig_resolver(fake_nvml):
    fake_nvml.load(fake_nvml.script("mig 0 1 3g.40gb 60 40320 0 4 1\nmig 0 2 2g.20gb 32 20096 4 2 1\n"))
    resolve = podresources.nvml_mig_resolver(str(fake_nvml.library))
    gpu = "GPU-fa4e0000-0000-0000-0000-000000000000"
    assert resolve("MIG-fa4e0000-0000-0000-0000-000000000000-2") == (gpu, "2")
    assert resolve("MIG-unknown") is None
