"""The simulated feed P2 reads: a :class:`~cuagent.client.ClusterView` of the simulated H100s,
filled through the wire codec exactly as a :class:`~cuagent.client.Client` fills it, and the
extender's :class:`~cuagent.scheduling.Scorer` following it.

What a GPU's window says: with time slicing, a kernel spreads over every SM, so each SM is
active for the GPU's demand share ``min(1, total demand ÷ 132)`` of the window (idle GPCs
therefore only show on idle GPUs); ``mem_used`` is what its pods hold; ``mem_stall`` is the
share of active time the slowdown model says was lost to interference (so an SM thrashes when
the model says the pods slow each other by 60 % or more).

When: the simulator integrates each GPU's activity between placement decisions and, at a
decision, publishes one window per GPU of the candidate nodes covering the time since that
GPU's previous window (its mean). A GPU whose load has not changed for five horizons is not
re-published (its horizon has converged; folding the same window again changes nothing but
its age), so the scorer's staleness limit is set beyond the trace (staleness is a transport
matter the simulator does not model).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import numpy as np

from .. import protocol
from ..client import ClusterView, DeviceView, NodeView
from ..scheduling import Request, Scorer
from ..scheduling.scorer import Ranking
from ..topology import CounterStat
from .cluster import Cluster
from .policies import Ask

T0_NS = 1_700_000_000_000_000_000  # simulated time 0 on the wire (headers carry Unix ns)
WINDOW_NS = 60_000_000_000
MEM_QUANTUM = 256 * 2**20  # mem_used is published to 256 MiB


class Feed:
    """``scorer_factory(view, **options)`` builds the scorer (default the extender's
    :class:`Scorer`); ``horizon_s`` its horizon."""

    def __init__(self, cluster: Cluster, topology: protocol.Device, horizon_s: float = 300.0,
                 scorer_factory: Callable[..., Scorer] = Scorer) -> None:
        self.cluster = cluster
        self.topology = topology
        self.horizon_s = horizon_s
        self.view = ClusterView()
        self.gpu_of: dict[str, int] = {}
        for node in range(cluster.nodes):
            name = cluster.node_name(node)
            nv = self.view.nodes[name] = NodeView(name, epoch=1)
            first = node * cluster.gpus_per_node
            for i in range(int(cluster.node_size[node])):
                g = first + i
                dev = dataclasses.replace(topology, id=cluster.device_name(g), index=i)
                nv.devices[dev.id] = DeviceView(name, dev)
                self.gpu_of[dev.id] = g
        self.scorer = scorer_factory(self.view, horizon_s=horizon_s, max_age_s=1e9)
        n = cluster.gpus
        self.acc_u = np.zeros(n)  # ∫ activity dt since the GPU's last window
        self.acc_stall = np.zeros(n)  # ∫ activity × stall dt
        self.last_window = np.zeros(n)  # end of the GPU's last window (s; the simulation starts at 0)
        self.changed = np.zeros(n)  # when its load last changed (s)
        # Start of the first window that began after the last change: from then on every
        # window said the same thing, so 5 horizons later the scorer's horizon has converged.
        self.clean_from = np.full(n, -math.inf)
        #: Memory held per GPU now (bytes): set by the engine before each decision.
        self.mem_source: Callable[[float], np.ndarray] = lambda _now: np.zeros(n)
        self.windows = 0
        self.rank_calls = 0
        self._states: dict[tuple[int, int, int], protocol.State] = {}
        self._counters = dict(topology.counters)

    # ------------------------------------------------------------------ from the engine
    def integrate(self, gpus: np.ndarray, u_seconds: np.ndarray, stall_seconds: np.ndarray) -> None:
        np.add.at(self.acc_u, gpus, u_seconds)
        np.add.at(self.acc_stall, gpus, stall_seconds)

    def touch(self, gpus: np.ndarray, t: float) -> None:
        """The load of ``gpus`` changed at ``t``."""
        self.changed[gpus] = t

    # ------------------------------------------------------------------ windows
    def _state(self, active: int, stall: int, mem: int) -> protocol.State:
        """The decoded window of a GPU with ``active`` SMs' worth of activity spread over every
        SM, ``stall``/20 of it stalled and ``mem`` × 256 MiB used (built once, then reused)."""
        key = (active, stall, mem)
        st = self._states.get(key)
        if st is None:
            units = self.topology.units
            u = active / units
            a = np.full(units, u, np.float32)
            s = np.full(units, stall / 20.0, np.float32)
            states = np.full(units, protocol.IDLE if u < 0.05 else protocol.ACTIVE, np.uint8)
            if u >= 0.5 and stall / 20.0 >= 0.6:
                states[:] = protocol.THRASHING
            raw = protocol.State(window_ns=WINDOW_NS, samples=1,
                                 levels={"sm": {"active": CounterStat(a, a), "mem_stall": CounterStat(s, s),
                                                "state": states}},
                                 partition={"0": {"sm_active": u}},
                                 device={"sm_active": u, "mem_used": float(mem * MEM_QUANTUM)},
                                 idle_units=float(units - active))
            body = protocol.unpack(protocol.pack(protocol.encode_state_body(raw, self._counters)))
            st = self._states[key] = protocol.decode_state_body(body, self.topology)
        return st

    def publish(self, now: float, gpus: np.ndarray, mem_used: np.ndarray) -> None:
        """One window per GPU in ``gpus`` ending at ``now`` (see the module doc for which)."""
        cl = self.cluster
        ts = T0_NS + int(round(now * 1e9))
        for g in gpus.tolist():
            last = self.last_window[g]
            span = now - last
            if span <= 0:
                continue
            clean = self.clean_from[g] >= self.changed[g]
            if clean and last - self.clean_from[g] >= 5 * self.horizon_s:
                self.acc_u[g] = self.acc_stall[g] = 0.0
                self.last_window[g] = now
                continue
            if not clean and last >= self.changed[g]:
                self.clean_from[g] = last
            u = self.acc_u[g] / span if span > 0 else 0.0
            stall = self.acc_stall[g] / self.acc_u[g] if self.acc_u[g] > 0 else 0.0
            active = int(round(min(1.0, max(0.0, u)) * cl.units))
            st = self._state(active, int(round(min(1.0, stall) * 20)), int(round(mem_used[g] / MEM_QUANTUM)))
            node = cl.node_name(int(cl.node_of[g]))
            dv = self.view.nodes[node].devices[cl.device_name(g)]
            dv.state, dv.ts, dv.seq = st, ts, dv.seq + 1
            self.scorer.fold(node, dv.id, ts, st)
            self.windows += 1
            self.acc_u[g] = self.acc_stall[g] = 0.0
            self.last_window[g] = now

    # ------------------------------------------------------------------ ranking
    def request(self, ask: Ask) -> Request:
        units = int(math.ceil(ask.sizing)) if ask.sizing >= 1 else None
        if ask.whole:
            return Request(gpus=ask.gpus, memory_bytes=ask.memory)
        return Request(gpus=ask.milli / 1000.0, units=units, memory_bytes=ask.memory, shared=True)

    def rank(self, ask: Ask, now: float, gpus: np.ndarray) -> Ranking:
        """Publish the windows of the candidate ``gpus``, then rank their nodes for ``ask``
        (:meth:`Scorer.rank`, as the extender does); per-GPU scores are in ``devices()``."""
        cl = self.cluster
        self.publish(now, gpus, self.mem_source(now))
        self.rank_calls += 1
        nodes = np.unique(cl.node_of[gpus])
        return self.scorer.rank(self.request(ask), T0_NS + int(round(now * 1e9)),
                                [cl.node_name(int(n)) for n in nodes])

    def stats(self) -> dict[str, Any]:
        return {"windows": self.windows, "distinct_windows": len(self._states)}
