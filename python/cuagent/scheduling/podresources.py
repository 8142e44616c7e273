"""Which Kubernetes pod holds which GPU: the kubelet's PodResources API (gRPC
``v1.PodResourcesLister/List`` on ``/var/lib/kubelet/pod-resources/kubelet.sock``), the
source dcgm-exporter uses to label GPU metrics with pods.

The agent publishes the result in each device's ``state`` as ``pods`` (PROTOCOL.md §3.2):
``[{"namespace", "pod", "container", "resource", "partition"?}]``. Absent where there is no
socket (or the last List failed), an empty list where no container holds the device.

Device ids as device plugins report them, matched to the agent's devices:

- ``GPU-<uuid>`` (NVIDIA), and ``GPU-<uuid>::<n>`` (time-slicing / MPS replicas);
- ``MIG-<uuid>`` (NVIDIA MIG, R470+ naming): resolved to (GPU, GPU instance) through NVML
  (:func:`nvml_mig_resolver`); ``MIG-GPU-<uuid>/<gi>/<ci>`` (R450 naming) directly;
- a PCI bus id (AMD's device plugin: ``0000:c1:00.0``), compared with the topo's ``pci``;
- a bare index (NVIDIA's ``DEVICE_ID_STRATEGY=index``), compared with the topo's ``index``.

An id that matches none is left out (logged once), never guessed. Dynamic Resource
Allocation claims name devices by driver-local names that only the ResourceSlice maps to
hardware, so they are not attributed here.

The messages are built at run time from descriptors (the same names and numbers as
``podresources_v1.proto`` beside this file, which the tests compile and compare against):
no generated module pinned to the protobuf release that generated it. grpcio and protobuf
are imported only when a socket exists (``pip install 'cuagent[k8s]'``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Protocol, Sequence

log = logging.getLogger("cuagent.podresources")

DEFAULT_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"
LIST_METHOD = "/v1.PodResourcesLister/List"
DEFAULT_INTERVAL_S = 5.0
DEFAULT_TIMEOUT_S = 2.0
MAX_BACKOFF_S = 60.0
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # a node with thousands of containers


@dataclass(frozen=True)
class Assignment:
    """One device id the kubelet assigned to one container."""

    namespace: str
    pod: str
    container: str
    resource: str
    device_id: str


# --------------------------------------------------------------------------- messages

# (message, [(field, number, type, repeated, message type)]) — the subset of
# podresources_v1.proto that List's answer needs; protobuf skips the fields left out.
_STRING, _MESSAGE = 9, 11
_MESSAGES: list[tuple[str, list[tuple[str, int, int, bool, str]]]] = [
    ("ListPodResourcesRequest", []),
    ("ListPodResourcesResponse", [("pod_resources", 1, _MESSAGE, True, "PodResources")]),
    ("PodResources", [("name", 1, _STRING, False, ""), ("namespace", 2, _STRING, False, ""),
                      ("containers", 3, _MESSAGE, True, "ContainerResources")]),
    ("ContainerResources", [("name", 1, _STRING, False, ""), ("devices", 2, _MESSAGE, True, "ContainerDevices")]),
    ("ContainerDevices", [("resource_name", 1, _STRING, False, ""), ("device_ids", 2, _STRING, True, "")]),
]
_FILE_NAME = "cuagent/podresources_v1_subset.proto"
_classes: Optional[dict[str, Any]] = None
_classes_lock = threading.Lock()


def file_descriptor_proto() -> Any:
    """The run-time FileDescriptorProto of the subset (package ``v1``, proto3)."""
    from google.protobuf import descriptor_pb2

    f = descriptor_pb2.FileDescriptorProto(name=_FILE_NAME, package="v1", syntax="proto3")
    for name, fields in _MESSAGES:
        m = f.message_type.add(name=name)
        for fname, number, ftype, repeated, type_name in fields:
            fd = m.field.add(name=fname, number=number, type=ftype, label=3 if repeated else 1)
            if type_name:
                fd.type_name = f".v1.{type_name}"
    return f


def message_classes() -> dict[str, Any]:
    """name -> message class, built once per process in a private descriptor pool."""
    global _classes
    with _classes_lock:
        if _classes is None:
            from google.protobuf import descriptor_pool, message_factory

            pool = descriptor_pool.DescriptorPool()
            pool.Add(file_descriptor_proto())
            _classes = {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"v1.{name}"))
                        for name, _ in _MESSAGES}
        return _classes


def list_pod_resources(socket_path: str, timeout_s: float = DEFAULT_TIMEOUT_S,
                       channel: Any = None) -> list[Assignment]:
    """One List call; raises ``grpc.RpcError`` or OSError on failure."""
    classes = message_classes()
    own = channel is None
    if own:
        channel = open_channel(socket_path)
    try:
        call = channel.unary_unary(LIST_METHOD, request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=classes["ListPodResourcesResponse"].FromString)
        response = call(classes["ListPodResourcesRequest"](), timeout=timeout_s)
    finally:
        if own:
            channel.close()
    out = []
    for pod in response.pod_resources:
        for c in pod.containers:
            for dev in c.devices:
                for device_id in dev.device_ids:
                    out.append(Assignment(pod.namespace, pod.name, c.name, dev.resource_name, device_id))
    return out


def open_channel(socket_path: str) -> Any:
    import grpc

    target = "unix://" + os.path.abspath(socket_path) if not socket_path.startswith("unix:") else socket_path
    return grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                                  ("grpc.enable_retries", 0)])


# --------------------------------------------------------------------------- matching devices


def _pci_key(pci: str) -> Optional[tuple[int, int, int, int]]:
    """``0000:C1:00.0`` and NVML's ``00000000:C1:00.0`` -> (domain, bus, device, function)."""
    try:
        head, _, fn = pci.strip().rpartition(".")
        parts = head.split(":")
        if len(parts) == 2:
            parts = ["0", *parts]
        domain, bus, dev = (int(x, 16) for x in parts)
        return domain, bus, dev, int(fn, 16)
    except ValueError:
        return None


MigResolver = Callable[[str], Optional[tuple[str, str]]]


class AttributedDevice(Protocol):
    """What matching needs of a device (cuagent.topology.DeviceTopology has it)."""

    @property
    def id(self) -> str: ...
    @property
    def index(self) -> int: ...
    @property
    def vendor(self) -> str: ...
    @property
    def pci(self) -> Optional[str]: ...


def match_device(device_id: str, devices: Sequence[AttributedDevice],
                 mig_resolver: Optional[MigResolver] = None) -> Optional[tuple[str, Optional[str]]]:
    """(topo device id, partition id or None) for a kubelet device id, or None."""
    raw = device_id.split("::", 1)[0].strip()
    ids = {d.id for d in devices}
    if raw.startswith("MIG-GPU-"):
        gpu, _, rest = raw[len("MIG-"):].partition("/")
        gi = rest.split("/", 1)[0]
        return (gpu, gi) if gpu in ids and gi.isdigit() else None
    if raw.startswith("MIG-"):
        found = mig_resolver(raw) if mig_resolver is not None else None
        return found if found is not None and found[0] in ids else None
    if raw in ids:
        return raw, None
    key = _pci_key(raw) if ":" in raw else None
    if key is not None:
        for d in devices:
            if d.pci and _pci_key(d.pci) == key:
                return d.id, None
        return None
    if raw.isdigit():
        for d in devices:
            if d.index == int(raw) and d.vendor in ("nvidia", "mock"):
                return d.id, None
    return None


def attribute(assignments: Iterable[Assignment], devices: Sequence[AttributedDevice],
              mig_resolver: Optional[MigResolver] = None,
              unmatched: Optional[set[str]] = None) -> dict[str, list[dict[str, str]]]:
    """device id -> its ``pods`` entries (every device listed; [] when nobody holds it).
    Device ids that match no device are added to ``unmatched``."""
    out: dict[str, list[dict[str, str]]] = {d.id: [] for d in devices}
    seen: set[tuple[str, ...]] = set()
    for a in assignments:
        found = match_device(a.device_id, devices, mig_resolver)
        if found is None:
            if unmatched is not None:
                unmatched.add(a.device_id)
            continue
        dev, partition = found
        entry = {"namespace": a.namespace, "pod": a.pod, "container": a.container, "resource": a.resource}
        if partition is not None:
            entry["partition"] = partition
        key = (dev, *entry.values())
        if key not in seen:  # replicas of one GPU given to one container: one entry
            seen.add(key)
            out[dev].append(entry)
    for entries in out.values():
        entries.sort(key=lambda e: (e["namespace"], e["pod"], e["container"], e.get("partition", "")))
    return out


def nvml_mig_resolver(library: Optional[str] = None, refresh_s: float = 30.0) -> MigResolver:
    """MIG device UUID -> (GPU UUID, GPU instance id), from NVML (pynvml). The table is
    re-read when an unknown UUID is asked for, at most every ``refresh_s``."""
    from ..backends._pynvml_loader import use_library

    nvml = use_library(library)
    table: dict[str, tuple[str, str]] = {}
    last = [-float("inf")]
    lock = threading.Lock()

    def text(v: Any) -> str:
        return v.decode() if isinstance(v, bytes) else str(v)

    def reload() -> None:
        nvml.nvmlInit()
        try:
            table.clear()
            for i in range(nvml.nvmlDeviceGetCount()):
                h = nvml.nvmlDeviceGetHandleByIndex(i)
                gpu = text(nvml.nvmlDeviceGetUUID(h))
                try:
                    count = nvml.nvmlDeviceGetMaxMigDeviceCount(h)
                except nvml.NVMLError:
                    continue
                for j in range(count):
                    try:
                        mh = nvml.nvmlDeviceGetMigDeviceHandleByIndex(h, j)
                        table[text(nvml.nvmlDeviceGetUUID(mh))] = (gpu, str(nvml.nvmlDeviceGetGpuInstanceId(mh)))
                    except nvml.NVMLError:
                        continue
        finally:
            nvml.nvmlShutdown()

    def resolve(mig_uuid: str) -> Optional[tuple[str, str]]:
        with lock:
            if mig_uuid not in table and time.monotonic() - last[0] >= refresh_s:
                last[0] = time.monotonic()
                try:
                    reload()
                except Exception as e:  # noqa: BLE001 — NVML gone: the id stays unmatched
                    log.info("cannot list MIG devices through NVML: %s", e)
            return table.get(mig_uuid)

    return resolve


# --------------------------------------------------------------------------- the poller


class PodAttribution:
    """Polls the kubelet every ``interval_s`` in its own thread (a List can block up to
    ``timeout_s``; the agent's publishing loop never waits on it).

    Without the socket: attribution is absent, one log line, and the next look is a cheap
    ``stat`` one interval later. After a failed call the channel is dropped (so a restarted
    kubelet's new socket is reached at once, not after gRPC's own reconnect backoff) and
    the wait doubles up to 60 s: a broken kubelet sees no retry storm."""

    def __init__(self, socket_path: str = DEFAULT_SOCKET, interval_s: float = DEFAULT_INTERVAL_S,
                 timeout_s: float = DEFAULT_TIMEOUT_S, mig_resolver: Optional[MigResolver] = None) -> None:
        if interval_s <= 0 or timeout_s <= 0:
            raise ValueError(f"interval and timeout must be > 0 s, got {interval_s}, {timeout_s}")
        self.socket_path = socket_path
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.mig_resolver = mig_resolver
        self._assignments: Optional[list[Assignment]] = None  # None: unknown
        self._generation = 0
        # (generation and devices, attribution) of the last pods() call
        self._cache: Optional[tuple[object, dict[str, list[dict[str, str]]]]] = None
        self._unmatched_logged: set[str] = set()
        self._status = "starting"
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.polls = 0  # List calls made (tests and stats)
        self.failures = 0

    def start(self) -> "PodAttribution":
        self._thread = threading.Thread(target=self._run, name="cuagent-podresources", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 1.0)

    def assignments(self) -> Optional[list[Assignment]]:
        return self._assignments

    def _set_status(self, status: str, level: int, message: str, *args: Any) -> None:
        # One line per change of status, not per poll.
        if status != self._status:
            self._status = status
            log.log(level, message, *args)

    def _run(self) -> None:
        channel = None
        wait = 0.0
        while not self._stop.wait(wait):
            wait = self.interval_s
            if not os.path.exists(self.socket_path):
                if channel is not None:
                    channel.close()
                    channel = None
                self._assignments = None
                self._set_status("absent", 20, "no kubelet PodResources socket at %s: no pod attribution "
                                 "(looked for every %g s)", self.socket_path, self.interval_s)
                continue
            try:
                if channel is None:
                    channel = open_channel(self.socket_path)
                assignments = list_pod_resources(self.socket_path, self.timeout_s, channel)
            except ImportError as e:
                self._assignments = None
                self._set_status("no-grpc", 30, "kubelet socket %s found but pod attribution needs grpcio and "
                                 "protobuf (pip install 'cuagent[k8s]'): %s", self.socket_path, e)
                wait = MAX_BACKOFF_S
                continue
            except Exception as e:  # noqa: BLE001 — grpc.RpcError, OSError: absent, back off
                self.polls += 1
                self.failures += 1
                self._assignments = None
                if channel is not None:
                    channel.close()
                    channel = None
                self._set_status("failing", 30, "kubelet PodResources List on %s failed: %s (pod attribution "
                                 "absent until it answers)", self.socket_path, _rpc_reason(e))
                wait = min(MAX_BACKOFF_S, self.interval_s * 2 ** min(self.failures, 6))
                continue
            self.polls += 1
            self.failures = 0
            self._assignments = assignments
            self._generation += 1
            self._set_status("ok", 20, "pod attribution from %s (%d device assignment(s))",
                             self.socket_path, len(assignments))
        if channel is not None:
            channel.close()

    def pods(self, devices: Sequence[AttributedDevice]) -> Optional[dict[str, list[dict[str, str]]]]:
        """device id -> ``pods`` entries for the agent's current ``devices``; None when
        attribution is unknown. Cached until the next List or a new device list."""
        assignments = self._assignments
        if assignments is None:
            return None
        key = (self._generation, tuple((d.id, d.pci, d.index) for d in devices))
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        unmatched: set[str] = set()
        result = attribute(assignments, devices, self.mig_resolver, unmatched)
        for device_id in sorted(unmatched - self._unmatched_logged):
            log.info("kubelet device id %r matches no device of this agent: left out", device_id)
        self._unmatched_logged |= unmatched
        self._cache = (key, result)
        return result


def _rpc_reason(e: BaseException) -> str:
    code = getattr(e, "code", None)
    details = getattr(e, "details", None)
    if callable(code) and callable(details):
        try:
            return f"{code().name}: {details()}"
        except Exception:  # noqa: BLE001
            pass
    return str(e) or type(e).__name__
