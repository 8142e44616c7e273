"""The node agent: publishes an engine's topology and windows on the feed (PROTOCOL.md §2–3)
and answers the sync socket (§4–5), from one thread with one poller loop.

One thread is enough: the engine samples and aggregates in C++; per publish interval this
loop only encodes a few messages. Keeping sync and publish on one thread makes every snapshot
consistent with the feed by construction (no message can be sent between the snapshot's
seqs being read and its frames being copied).
"""

from __future__ import annotations

import errno
import logging
import os
import socket as _socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol, Sequence

import zmq

from .. import wire
from ..curve import ServerKeys
from ..polling import poll_timeout_ms
from ..slow_path import SlowPath
from ..wire import Header
from . import sockets
from .missed_windows import MissedWindows
from .server import FeedServer, Ping, SnapshotContent
from .state_windows import ANY, NEVER, NO_EXTRAS, StateBodies, StateExtras
from .summary import SummaryPublisher

if TYPE_CHECKING:
    from ..engine import EngineEvent
    from ..scheduling.podresources import PodAttribution
    from ..topology import DeviceState, DeviceTopology

log = logging.getLogger("cuagent.agent")

try:  # the package version, for topo.agent.version
    from importlib.metadata import version as _pkg_version

    AGENT_VERSION = _pkg_version("cuagent")
except Exception:  # noqa: BLE001 — running from a source tree
    AGENT_VERSION = "0.0.0+src"


FLUSH_ON_CLOSE_MS = 500


@dataclass
class AgentConfig:
    node: str
    feed: str = "tcp://*:7710"
    sync: str = "tcp://*:7711"
    publish_interval_ms: float = 100.0
    topo_interval_s: float = 10.0
    hb_interval_s: float = 1.0
    sndhwm: int = sockets.DEFAULT_SNDHWM
    # CURVE (PROTOCOL.md §6): both sockets become CURVE servers admitting only the allow-list.
    curve: Optional[ServerKeys] = None
    # The node summary (PROTOCOL.md §3.5) after every this many windows; 0: none.
    summary_every: int = 1

    def __post_init__(self) -> None:
        wire.check_node(self.node, "--node")
        if self.publish_interval_ms <= 0:
            raise ValueError(f"publish interval must be > 0 ms, got {self.publish_interval_ms}")
        if self.topo_interval_s <= 0 or self.hb_interval_s <= 0:
            raise ValueError("topo and hb intervals must be > 0 s")
        if self.sndhwm < 1:
            raise ValueError(f"sndhwm must be >= 1, got {self.sndhwm}")
        if self.summary_every < 0:
            raise ValueError(f"summary every {self.summary_every} windows: expected >= 0 (0: no summary)")


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 64):
            pass
    except BlockingIOError:
        pass


class HeartbeatStats(Protocol):
    """What a heartbeat reports of an engine's stats (cuagent.engine.EngineStats has more)."""

    @property
    def achieved_rate_hz(self) -> float: ...
    @property
    def drops(self) -> int: ...


class FeedEngine(Protocol):
    """What the agent drives: cuagent.engine.Engine, or a test's scripted engine."""

    @property
    def backend(self) -> str: ...
    @property
    def window_fd(self) -> Optional[int]:
        """Readable when a window finishes; None: no such descriptor, the agent polls."""
    def drain_window_fd(self) -> None: ...
    def start(self) -> object: ...
    def stop(self) -> None: ...
    def topology(self) -> Sequence[DeviceTopology]: ...
    def snapshot(self) -> Sequence[Optional[DeviceState]]:
        """Latest windows; an engine with ``latest_states`` (cuagent.engine.Engine: bodies
        encoded by the core) is asked that instead (.state_windows)."""
    def events(self) -> Sequence[EngineEvent]: ...
    def stats(self) -> HeartbeatStats: ...


class Agent:
    """Publishes ``engine`` (a started cuagent Engine) until :meth:`stop`.

    Sockets are bound in the constructor (so a bad endpoint fails before anything runs) and
    used only by the thread that calls :meth:`run`.

    ``slow_path`` adds what the backend offers between windows (processes, partition layout
    changes). When it reports a layout change, ``rebuild_engine()`` (an unstarted engine with
    the same options) replaces :attr:`engine`: the old one is stopped, the new one started,
    and the change is announced with a new ``gen``. Whoever stops the agent stops
    ``agent.engine``, which may no longer be the engine it was given."""

    def __init__(
        self,
        engine: FeedEngine,
        config: AgentConfig,
        context: Optional[zmq.Context[zmq.Socket[bytes]]] = None,
        slow_path: Optional[SlowPath] = None,
        rebuild_engine: Optional[Callable[[], FeedEngine]] = None,
        pods: Optional[PodAttribution] = None,
        on_topology: Optional[Callable[[list[DeviceTopology]], object]] = None,
    ) -> None:
        self.engine = engine
        # Kubernetes extras (cuagent.scheduling): ``pods`` maps devices to the containers
        # holding them (``state.pods``); ``on_topology`` sees the devices at start, on every
        # change and every topo interval (the NFD feature file).
        self.pods = pods
        self._on_topology = on_topology
        self.config = config
        self.slow_path = slow_path or SlowPath()
        self._rebuild_engine = rebuild_engine
        self._poller = zmq.Poller()
        self._window_fd: Optional[int] = None
        self.epoch = wire.new_epoch()
        self._frames = wire.FramePacker(config.node, self.epoch)
        self._bodies = StateBodies()
        self.gen = 1
        self.started_ns = time.time_ns()
        self._started_mono = time.monotonic()
        self._ctx = context or zmq.Context.instance()
        self._stop = threading.Event()
        self.seqs: dict[str, int] = {}
        # Latest frames of every topo/state/sum topic: what a snapshot serves (§4.3).
        self._latest: dict[str, list[bytes]] = {}
        # Per device, (t_ns, window seq, windows missed) of the last window sent.
        self._last_window: list[Optional[tuple[int, int, int]]] = []
        # Devices lost (from device_lost to their first window after device_back): topo marks
        # them (§3.1 status), they publish no state, and snapshots hold no state of theirs (it
        # would pass as current). ``_returning``: lost devices whose device_back has come.
        self._lost: set[str] = set()
        self._returning: set[str] = set()
        # Devices whose CUPTI counters are paused, with why (the latest profiling_paused): topo
        # says so (§3.1), so a client that joins after the event still learns why pm_* is absent.
        self._profiling_paused: dict[str, str] = {}
        self.stats: dict[str, int] = {"state": 0, "topo": 0, "hb": 0, "event": 0, "sum": 0}
        # Called with (topic, header, body map) of each message sent, on this loop's thread:
        # an in-process consumer (the Prometheus exporter) sees what the feed carries without
        # a socket or a decode. It must return quickly and never raise.
        self.on_publish: Optional[Callable[[str, Header, dict[str, Any]], None]] = None
        self._topology = list(engine.topology())
        self._topo_body = self._encode_topo(self._topology)
        self._counters = [d.counters for d in self._topology]
        self._indices = [d.index for d in self._topology]
        self._topics = [wire.build_topic("state", config.node, d.id) for d in self._topology]
        self._last_window = [None] * len(self._topology)
        # Devices that miss windows, in the log (rate-limited): the feed shows them as seq gaps.
        self._missed = MissedWindows(config.publish_interval_ms / 1000.0)
        self._summary = SummaryPublisher(config.summary_every)
        self._summary_end = -1  # the newest window end a publish pass has seen (-1: none yet)
        self._sum_topic = wire.build_topic("sum", config.node)
        self.server = FeedServer(self._ctx, config.feed, config.sync, self, config.sndhwm, config.curve, node=config.node)
        self.feed = self.server.feed
        self.feed_endpoint, self.sync_endpoint = self.server.feed_endpoint, self.server.sync_endpoint
        self.feed_guard, self.sync_stats = self.server.feed_guard, self.server.sync_stats
        # stop() writes here, so the loop need not wake up just to look at _stop.
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)

    # ------------------------------------------------------------------ lifecycle
    def stop(self) -> None:
        """Ask :meth:`run` to return (thread- and signal-safe); it does so at once."""
        self._stop.set()
        try:  # wake the poller: the loop sleeps until its next timer otherwise
            os.write(self._wake_w, b"\0")
        except OSError:  # full (a stop is pending anyway) or closed (the agent is closed)
            pass

    def close(self) -> None:
        # A short linger lets what was already published reach every connected subscriber
        # (each connection drains at its own pace), so a clean stop loses nothing mid-flight.
        self.server.close(feed_linger_ms=FLUSH_ON_CLOSE_MS)
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        self.slow_path.close()
        if self.pods is not None:
            self.pods.close()

    def _topology_seen(self) -> None:
        if self._on_topology is not None:
            try:
                self._on_topology(self._topology)
            except Exception as e:  # noqa: BLE001 — an extra must never stop the feed
                log.warning("topology hook failed: %s", e)

    def run(self) -> None:
        cfg = self.config
        log.info(
            "agent %s epoch %016x: %d device(s) [%s], %s, publish every %g ms",
            cfg.node, self.epoch, len(self._topology), ", ".join(f"{d.id} {d.model}" for d in self._topology),
            self.server.listening, cfg.publish_interval_ms,
        )
        poller = self._poller
        poller.register(self.server.sync, zmq.POLLIN)
        poller.register(self.feed, zmq.POLLIN)  # subscriptions, to bound them
        poller.register(self._wake_r, zmq.POLLIN)
        self._watch_windows()
        interval = cfg.publish_interval_ms / 1000.0
        # A heartbeat due this soon goes out with a publish pass instead of waking the loop
        # on its own (it comes at most that much early).
        hb_early = min(interval / 2, cfg.hb_interval_s / 10)
        now = time.monotonic()
        self._publish_topo()
        self._topology_seen()
        next_topo = now + cfg.topo_interval_s
        next_hb = now  # a heartbeat right away tells joiners the node is alive
        next_state = now
        while not self._stop.is_set():
            now = time.monotonic()
            published = now >= next_state
            if published:
                next_state = self._publish_states(now, interval)
                self._publish_events()
            self._publish_summary()  # a status or gen changed by now goes out at once
            if now >= next_hb or (published and now >= next_hb - hb_early):
                self._publish_hb()
                next_hb = now + cfg.hb_interval_s
                self._missed.check_silent(now, (d.id for d in self._topology if d.id not in self._lost))
            if now >= next_topo:
                self._refresh_topology(force_publish=True)
                next_topo = now + cfg.topo_interval_s
            if self._rebuild_engine is not None and self.slow_path.topology_changed(now):
                self._replace_engine()
                next_topo = time.monotonic() + cfg.topo_interval_s  # topo was just published
                next_state = time.monotonic()
            # Wake for the earliest timer (stop() wakes the poller itself).
            timeout = max(0.0, min(next_state, next_hb, next_topo) - time.monotonic())
            try:
                ready = dict(poller.poll(poll_timeout_ms(timeout)))
            except zmq.ZMQError as e:
                if e.errno == errno.EINTR:  # a signal: loop round to check stop
                    continue
                raise
            if self._window_fd is not None and ready.get(self._window_fd):
                self.engine.drain_window_fd()
                next_state = time.monotonic()  # publish on the next pass, before anything else
            if ready.get(self._wake_r):
                _drain(self._wake_r)
            if ready.get(self.server.sync):
                self.server.serve_sync()
            self.server.serve_subscriptions(bool(ready.get(self.feed)))
        self._missed.flush(time.monotonic())
        log.info("agent %s stopping: sent %s, feed subscriptions %s", cfg.node, self.stats, self.feed_guard.stats)

    def _watch_windows(self) -> None:
        """Poll the engine's eventfd: it signals each finished window, and publishing the
        moment it is readable keeps latency to what encoding and sending cost."""
        if self._window_fd is not None:
            self._poller.unregister(self._window_fd)
        fd = self.engine.window_fd
        self._window_fd = fd
        if fd is not None:
            self._poller.register(fd, zmq.POLLIN)

    def _replace_engine(self) -> None:
        """The partition layout changed under the engine (e.g. MIG reconfigured): its topology
        and driver are void. Build a fresh engine with the same options, then announce it."""
        assert self._rebuild_engine is not None
        log.warning("partition layout changed: rebuilding the %s engine", self.engine.backend)
        self._publish_events()  # what the old engine still had to say
        try:
            new = self._rebuild_engine()
        except Exception as e:  # noqa: BLE001 — keep publishing what the old engine sees
            log.error("could not rebuild the engine after a layout change: %s", e)
            body = wire.encode_event_body("backend_error", f"engine rebuild after a layout change failed: {e}")
            self._send(wire.build_topic("event", self.config.node), time.time_ns(), body, keep=False)
            self.stats["event"] += 1
            return
        self.engine.stop()
        self.engine = new
        self._lost.clear()  # a new engine reports its own losses (and pauses)
        self._returning.clear()
        self._profiling_paused.clear()
        self.engine.start()
        self._watch_windows()
        self._refresh_topology(force_publish=False, changed=True)

    # ------------------------------------------------------------------ publishing
    def _send(self, topic: str, ts: int, body: dict[str, Any] | bytes, keep: bool, lost: int = 0) -> None:
        """``lost``: messages of this topic that were due before this one and never sent: their
        seqs are skipped, so a client counts them as a gap (PROTOCOL.md §4). ``body``: a map,
        or bytes packed already (a state body from the engine's core)."""
        seq = self.seqs.get(topic, 0) + 1 + lost
        self.seqs[topic] = seq
        frames = self._frames.frames(topic, seq, ts, self.gen, body)
        sockets.publish(self.feed, frames)
        if keep:
            self._latest[topic] = frames
        if self.on_publish is not None:
            # The hook takes maps; a packed body is unpacked for it (only when there is one).
            header = Header(self.config.node, self.epoch, seq, ts, self.gen)
            self.on_publish(topic, header, wire.unpack(body, "body") if isinstance(body, bytes) else body)

    def _encode_topo(self, topology: list[DeviceTopology]) -> dict[str, Any]:
        agent = wire.AgentInfo(AGENT_VERSION, _socket.gethostname(), os.getpid(), self.started_ns)
        return wire.encode_topo_body(topology, agent)

    def _publish_topo(self) -> None:
        body = wire.with_device_status(self._topo_body, self._lost, self._profiling_paused)
        self._send(wire.build_topic("topo", self.config.node), time.time_ns(), body, keep=True)
        self.stats["topo"] += 1

    def _refresh_topology(self, force_publish: bool, changed: bool = False) -> None:
        """Re-read the topology; a change bumps ``gen`` and is announced (§3.1, §3.4).
        ``changed``: the caller knows it changed (a rebuilt engine), whatever the bodies say."""
        topology = list(self.engine.topology())
        body = self._encode_topo(topology)
        changed = changed or wire.pack(body["devices"]) != wire.pack(self._topo_body["devices"])
        if changed:
            self.gen += 1
            old = {d.id for d in self._topology}
            self._topology, self._topo_body = topology, body
            self._counters = [d.counters for d in topology]
            self._indices = [d.index for d in topology]
            self._topics = [wire.build_topic("state", self.config.node, d.id) for d in topology]
            self._last_window = [None] * len(topology)
            # What the old generation missed is said now; devices gone are no longer followed.
            # Those still there go on (their next window is counted from afresh, as _last_window).
            self._missed.flush(time.monotonic())
            self._missed.forget(old - {d.id for d in topology})
            self._lost &= {d.id for d in topology}
            self._returning &= self._lost
            for gone in set(self._profiling_paused) - {d.id for d in topology}:
                del self._profiling_paused[gone]
            # Every latest state belongs to the old generation (its shape may not match the
            # new topo: partitions, levels): a snapshot must not pair it with the new topo.
            # The next window of each device refills it.
            for topic in [t for t in self._latest if t.startswith((wire.kind_prefix("state"), wire.kind_prefix("sum")))]:
                del self._latest[topic]
            log.warning("topology changed: gen %d, devices %s -> %s", self.gen, sorted(old), [d.id for d in topology])
        if changed or force_publish:
            self._publish_topo()
            self._topology_seen()
        if changed:
            body_ev = wire.encode_event_body("topology_changed", f"topology generation {self.gen}")
            self._send(wire.build_topic("event", self.config.node), time.time_ns(), body_ev, keep=False)
            self.stats["event"] += 1

    def _publish_states(self, now: float, interval: float) -> float:
        """Send every device's window that is new since last time; return when to look next.

        Each body is encoded once, by the engine's core from its window buffer
        (:mod:`.state_windows`): what is left here is the bookkeeping and the send.
        Windows end on the sampler's absolute deadlines, so the next one is predictable: look
        shortly after it is due, which keeps latency low without busy polling."""
        next_due: Optional[float] = None
        wall_now = time.time_ns()
        pods = self.pods.pods(self._topology) if self.pods is not None else None
        newer_than: list[int] = []
        extras: list[StateExtras] = []
        for i, device in enumerate(self._topology):
            last = self._last_window[i]
            if device.id in self._lost and device.id not in self._returning:
                newer_than.append(NEVER)  # a lost device publishes no state: its window's stamp only
                extras.append(NO_EXTRAS)
            else:
                newer_than.append(ANY if last is None else last[0])
                extras.append(self._bodies.extras(i, self.slow_path.processes(self._indices[i], now),
                                                  None if pods is None else pods.get(device.id)))
        windows = self._bodies.latest(self.engine, self._counters, newer_than, extras)
        for i, w in enumerate(windows):
            if w is None:
                continue
            seq, t_ns, window_ns, missed, body = w
            # A window is known by its end on the grid: never publish one twice, nor an older one.
            last = self._last_window[i]
            device_id = self._topology[i].id
            fresh = last is None or t_ns > last[0]
            window = (t_ns, seq, missed)
            if fresh and device_id in self._lost:
                if device_id in self._returning:
                    # Its first window since device_back: OK again, announced just before it,
                    # so that no snapshot pairs an OK status with no current state.
                    self._lost.discard(device_id)
                    self._returning.discard(device_id)
                    self._publish_topo()
                else:
                    # A window closing as the device fell off, or one while lost: topo says
                    # lost, and a lost device publishes no state (nor this window later).
                    self._last_window[i] = window
                    fresh = False
            if fresh and body is not None:
                # Windows lost since the last one sent, the engine's (no sample while the device
                # was there) and ours (finished but replaced before we looked): skip their seqs
                # so a client sees a gap, not a silent jump in `ts`. A device gone from the bus
                # misses none: its device_lost / device_back events say why nothing came.
                late = unsampled = 0
                if last is not None:
                    late, unsampled = max(0, seq - last[1] - 1), max(0, missed - last[2])
                self._missed.window(device_id, unsampled, late, now)
                self._last_window[i] = window
                self._send(self._topics[i], t_ns, body, keep=True, lost=late + unsampled)
                self.stats["state"] += 1
            due = now + (t_ns + window_ns - wall_now) / 1e9
            next_due = due if next_due is None else min(next_due, due)
        self._summary_end = max([w[1] for w in windows if w is not None], default=self._summary_end)
        self._publish_summary()
        if self.engine.window_fd is not None:
            # The eventfd wakes us; this is only a safety net, set past the next window's
            # signal so that it does not fire just before it and cost a wake-up of its own.
            return now + 1.5 * interval
        if next_due is None or next_due <= now:
            # No window yet, or the next one is already late: look again soon.
            return now + min(interval / 10.0, 0.002)
        return next_due + 0.0003

    def _publish_summary(self) -> None:
        """The node summary (§3.5) when one is due: every device's latest window in one
        record each, from the same windows the states just sent came from (the engine's
        core writes them from the windows the last publish pass took)."""
        if not self._summary.want(self._summary_end, self._lost, self.gen):
            return
        now_ns = time.time_ns()
        records = self._bodies.summary_records(self.engine, self._topology, self._lost, now_ns)
        self._send(self._sum_topic, now_ns, wire.encode_summary_records(records), keep=True)
        self.stats["sum"] += 1

    def _publish_events(self) -> None:
        events = self.engine.events()
        if not events:
            return
        topo_dirty = status_changed = pause_changed = False
        for ev in events:
            device_id = ev.device_id or None
            topic = wire.build_topic("event", self.config.node, device_id)
            body = wire.encode_event_body(ev.type, ev.detail, device_id)
            self._send(topic, ev.t_ns or time.time_ns(), body, keep=False)
            self.stats["event"] += 1
            log.warning("event %s on %s: %s", ev.type, device_id or self.config.node, ev.detail)
            topo_dirty |= ev.type in ("device_lost", "device_back")
            if device_id is not None and ev.type == "device_lost":
                status_changed |= self._device_lost(device_id)
            elif device_id is not None and ev.type == "device_back" and device_id in self._lost:
                self._returning.add(device_id)  # OK again with its first window (_publish_states)
            elif device_id is not None and ev.type == "profiling_paused":
                pause_changed |= self._profiling_paused.get(device_id) != ev.detail
                self._profiling_paused[device_id] = ev.detail
            elif device_id is not None and ev.type == "profiling_resumed":
                pause_changed |= self._profiling_paused.pop(device_id, None) is not None
        if topo_dirty:
            # A loss re-publishes topo at once, without a new gen (§3.1).
            self._refresh_topology(force_publish=status_changed or pause_changed)
        elif pause_changed:
            self._publish_topo()  # not topology either: the same gen

    def _device_lost(self, device_id: str) -> bool:
        """Record a device's loss; True when its status changed."""
        self._returning.discard(device_id)
        if device_id in self._lost:
            return False
        self._lost.add(device_id)
        self._missed.forget((device_id,))
        self._latest.pop(wire.build_topic("state", self.config.node, device_id), None)
        return True

    def _publish_hb(self) -> None:
        stats = self.engine.stats()
        body = wire.encode_hb_body(
            # The hb's own topic is listed with the seq this hb will carry.
            {**self.seqs, wire.build_topic("hb", self.config.node): self.seqs.get(wire.build_topic("hb", self.config.node), 0) + 1},
            stats.achieved_rate_hz,
            stats.drops,
            time.monotonic() - self._started_mono,
        )
        self._send(wire.build_topic("hb", self.config.node), time.time_ns(), body, keep=False)
        self.stats["hb"] += 1

    # ------------------------------------------------------------------ sync (FeedServer's SyncSource)
    def ping(self) -> Ping:
        return Ping(self.config.node, self.epoch, self.gen)

    def snapshot(self, prefix: str) -> SnapshotContent:
        msgs = [frames for topic, frames in self._latest.items() if topic.startswith(prefix)]
        seqs = {topic: seq for topic, seq in self.seqs.items() if topic.startswith(prefix)}
        return SnapshotContent(self.epoch, msgs, seqs)
