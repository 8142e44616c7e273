"""Helpers for the scheduling tests: GPUs whose per-SM activity a test writes down exactly
(a scripted engine behind a real Agent on real sockets), decoded views built through the
wire codec, and Pod/NodeList JSON from the official kubernetes client's models."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Optional, Sequence

import numpy as np

from cuagent import protocol
from cuagent.node.agent import Agent, AgentConfig
from cuagent.client import ClusterView, DeviceView, NodeView
from cuagent.topology import CounterInfo, CounterStat, DeviceState, DeviceTopology, PartitionInfo

GPCS, SMS_PER_GPC = 4, 8
UNITS = GPCS * SMS_PER_GPC
MEMORY = 80 * 2**30
COUNTERS = {
    "active": CounterInfo("sm", "ratio", "SM active"),
    "mem_stall": CounterInfo("sm", "ratio", "memory stall"),
    "sm_active": CounterInfo("partition", "ratio", "mean active"),
    "mem_used": CounterInfo("device", "bytes", "memory used"),
}


def topology(dev_id: str = "GPU-test-0", index: int = 0, vendor: str = "nvidia",
             partitions: Optional[list[PartitionInfo]] = None) -> DeviceTopology:
    """A small GPU: 4 GPCs × 4 TPCs × 2 SMs, layout known."""
    sm = np.arange(UNITS)
    return DeviceTopology(
        id=dev_id, index=index, vendor=vendor, model="Test GPU 32SM", backend="test", unit="sm", units=UNITS,
        levels=["gpc", "tpc", "sm"], layout={"gpc": (sm // SMS_PER_GPC).astype(np.uint16),
                                             "tpc": (sm // 2).astype(np.uint16)},
        layout_source="mock", counts={"gpc": GPCS, "tpc": UNITS // 2, "sm": UNITS},
        partitions=partitions or [PartitionInfo("0", "whole", UNITS, MEMORY)], memory_bytes=MEMORY,
        counters=dict(COUNTERS), pci=f"00000000:{0x10 + index:02X}:00.0")


def device_state(topo: DeviceTopology, active: Sequence[float], t_ns: int, seq: int = 1,
                 mem_stall: Optional[Sequence[float]] = None, mem_used: Optional[int] = None) -> DeviceState:
    """One window whose per-SM mean ``active`` is ``active``; states follow PROTOCOL.md's
    default thresholds (idle < 0.05; thrashing when active >= 0.5 and mem_stall >= 0.6)."""
    a = np.asarray(active, np.float32)
    stall = np.zeros_like(a) if mem_stall is None else np.asarray(mem_stall, np.float32)
    states = np.where(a < 0.05, protocol.IDLE, protocol.ACTIVE).astype(np.uint8)
    states[(a >= 0.5) & (stall >= 0.6)] = protocol.THRASHING
    partition = {}
    for p in topo.partitions:
        ids = p.unit_ids if p.unit_ids is not None else np.arange(topo.units)
        partition[p.id] = {"sm_active": float(a[ids].mean())}
    device = {"sm_active": float(a.mean())}
    if mem_used is not None:
        device["mem_used"] = float(mem_used)
    return DeviceState(
        device_id=topo.id, index=topo.index, window_seq=seq, t_ns=t_ns, window_ns=100_000_000, samples=10,
        levels={"sm": {"active": CounterStat(a, a), "mem_stall": CounterStat(stall, stall), "state": states}},
        groups={}, partition=partition, device=device, idle_units=float(np.sum(1.0 - a)))


def decoded(topo: DeviceTopology, st: DeviceState) -> protocol.State:
    """The state as a client decodes it from the wire."""
    import msgpack

    body = msgpack.unpackb(protocol.pack(protocol.encode_state_body(st, topo.counters)), raw=False)
    return protocol.decode_state_body(body, topo)


class ViewBuilder:
    """A ClusterView filled the way the client fills it (decoded topo and state bodies)."""

    def __init__(self) -> None:
        self.view = ClusterView()

    def device(self, node: str, topo: DeviceTopology) -> DeviceView:
        nv = self.view.nodes.setdefault(node, NodeView(node, epoch=1))
        dev = protocol.decode_device(protocol.encode_device(topo))
        dv = nv.devices[topo.id] = DeviceView(node, dev)
        return dv

    def window(self, scorer, node: str, topo: DeviceTopology, active: Sequence[float], t_ns: int, **kw) -> None:
        """Apply one window to the view and fold it into ``scorer`` (as Client + observe do)."""
        dv = self.view.nodes[node].devices[topo.id]
        dv.state = decoded(dv.topology, device_state(dv.topology, active, t_ns, **kw))
        dv.ts = t_ns
        if scorer is not None:
            scorer.fold(node, topo.id, t_ns, dv.state)


# --------------------------------------------------------------------------- scripted agent


class ScriptedEngine:
    """An engine (the duck type Agent drives) whose windows a test scripts: for each device,
    ``activity(t_s) -> (active per SM, mem_stall per SM or None)``."""

    backend = "test"
    window_fd = None  # no descriptor: the agent looks when windows are due

    def drain_window_fd(self) -> None:
        pass

    def __init__(self, devices: list[tuple[DeviceTopology, Callable[[float], tuple]]], window_ms: int = 50) -> None:
        self.devices = devices
        self.window_ns = window_ms * 1_000_000

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def topology(self) -> list[DeviceTopology]:
        return [t for t, _ in self.devices]

    def snapshot(self) -> list[DeviceState]:
        seq = time.time_ns() // self.window_ns
        t_ns = seq * self.window_ns
        out = []
        for topo, activity in self.devices:
            active, stall = activity(t_ns / 1e9)
            out.append(device_state(topo, active, t_ns, int(seq), stall))
        return out

    def events(self) -> list:
        return []

    def stats(self) -> SimpleNamespace:
        return SimpleNamespace(achieved_rate_hz=20.0, drops=0)


class ThreadAgent:
    """A real Agent (real ZeroMQ sockets on ipc) publishing a scripted engine from a thread."""

    def __init__(self, tmp: Path, node: str, engine: ScriptedEngine, **agent_kw) -> None:
        self.feed, self.sync = f"ipc://{tmp}/{node}.feed", f"ipc://{tmp}/{node}.sync"
        self.agent = Agent(engine, AgentConfig(node=node, feed=self.feed, sync=self.sync, publish_interval_ms=50),
                           **agent_kw)
        self.thread = threading.Thread(target=self.agent.run, name=f"agent-{node}", daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"{self.feed},{self.sync}"

    def stop(self) -> None:
        if self.thread.is_alive():
            self.agent.stop()
            self.thread.join(10)
            assert not self.thread.is_alive(), "agent thread did not stop"
            self.agent.close()


def constant(active: Sequence[float], stall: Optional[Sequence[float]] = None) -> Callable[[float], tuple]:
    return lambda _t: (active, stall)


# --------------------------------------------------------------------------- Kubernetes JSON


def pod_json(resources: dict[str, str], annotations: Optional[dict[str, str]] = None, name: str = "trainer",
             limits_only: bool = True, init: Optional[dict[str, str]] = None) -> dict:
    """A Pod as kube-scheduler sends it, built with the official client's models."""
    from kubernetes import client as k8s

    res = k8s.V1ResourceRequirements(limits=resources) if limits_only else \
        k8s.V1ResourceRequirements(limits=resources, requests=resources)
    spec = k8s.V1PodSpec(containers=[k8s.V1Container(name="main", image="train:1", resources=res)],
                         init_containers=None if init is None else [
                             k8s.V1Container(name="init", image="init:1", resources=k8s.V1ResourceRequirements(
                                 limits=init))])
    pod = k8s.V1Pod(api_version="v1", kind="Pod",
                    metadata=k8s.V1ObjectMeta(name=name, namespace="ml", uid="0b1c", annotations=annotations),
                    spec=spec)
    return k8s.ApiClient().sanitize_for_serialization(pod)


def node_list_json(names: Sequence[str]) -> dict:
    from kubernetes import client as k8s

    nodes = k8s.V1NodeList(api_version="v1", kind="NodeList", metadata=k8s.V1ListMeta(resource_version="1"),
                           items=[k8s.V1Node(metadata=k8s.V1ObjectMeta(name=n, labels={"kubernetes.io/hostname": n}),
                                             status=k8s.V1NodeStatus(allocatable={"nvidia.com/gpu": "8"}))
                                  for n in names])
    return k8s.ApiClient().sanitize_for_serialization(nodes)
