"""Which Kubernetes pod holds which GPU: the kubelet's PodResources API (gRPC
``v1.PodResourcesLister/List`` on ``/var/lib/kubelet/pod-resources/kubelet.sock``), the
source dcgm-exporter uses to label GPU metrics with pods.

The agent publishes the result in each device's ``state`` as ``pods`` (PROTOCOL.md §3.2):
``[{"namespace", "pod", "container", "resource", "partition"?}]``. Absent where there is no
socket (or the last List failed), and for a device that a kubelet id the agent could not match
may name; an empty list where no container holds the device.

Device ids as device plugins report them, matched to the agent's devices:

- ``GPU-<uuid>`` (NVIDIA), and ``GPU-<uuid>::<n>`` (time-slicing / MPS replicas);
- ``MIG-<uuid>`` (NVIDIA MIG, R470+ naming): resolved to (GPU, GPU instance) through NVML
  (:func:`nvml_mig_resolver`); ``MIG-GPU-<uuid>/<gi>/<ci>`` (R450 naming) directly;
- a PCI bus id (AMD's device plugin: ``0000:c1:00.0``), compared with the topo's ``pci``;
- a bare index (NVIDIA's ``DEVICE_ID_STRATEGY=index``), compared with the topo's ``index``.

An id that matches none is never guessed onto a device. Where it could still be one of this
agent's devices, those devices' ``pods`` are unknown (absent), not ``[]``: a ``MIG-<uuid>``
that cannot be resolved (no pynvml, or NVML does not list it yet after a MIG reconfiguration)
could be on any GPU with MIG on; an id of unknown form under a GPU resource (``nvidia.com/gpu*``,
``nvidia.com/mig-*``, ``amd.com/gpu*``) could be any device of that vendor. One that names
hardware this agent does not serve (a GPU UUID or PCI address none of its devices has, a MIG
device NVML places on another GPU), or that belongs to another plugin's resource (NICs, FPGAs:
the kubelet lists every device plugin's), leaves every device's list as it is. Each is logged
with why: a warning, repeated every 10 min while it lasts, when it leaves pods unknown. Dynamic Resource
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
from typing import Any, Callable, Iterable, NamedTuple, Optional, Protocol, Sequence, Union

from ..log_throttle import KeyedThrottle

log = logging.getLogger("cuagent.podresources")

DEFAULT_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"
LIST_METHOD = "/v1.PodResourcesLister/List"
DEFAULT_INTERVAL_S = 5.0
DEFAULT_TIMEOUT_S = 2.0
MAX_BACKOFF_S = 60.0
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # a node with thousands of containers
UNKNOWN_LOG_EVERY_S = 600.0  # an id that leaves pods unknown is said again this often while it lasts


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
    @property
    def partitions(self) -> Sequence[Any]: ...  # each with a ``kind`` ("mig" for a MIG instance)


# A simulated device stands in for either vendor (as in the index match below).
_VENDORS_OF_DOMAIN = {"nvidia.com": ("nvidia", "mock"), "amd.com": ("amd", "mock")}


class Unmatched(NamedTuple):
    """A kubelet device id that matches no device: why, and the devices it could still be
    (their ``pods`` are unknown; empty when it is none of this agent's)."""

    reason: str
    devices: tuple[str, ...]


def _gpu_vendors(resource: str) -> tuple[str, ...]:
    """The vendors whose GPUs a resource's ids name: ``nvidia.com/gpu``, ``nvidia.com/gpu.shared``,
    ``nvidia.com/mig-1g.10gb``, ``amd.com/gpu``. Other resources of those domains (NVIDIA's
    network operator: ``nvidia.com/hostdev``, ``nvidia.com/rdma_shared_device_a``) name NICs."""
    domain, _, name = resource.partition("/")
    if not (name.startswith("gpu") or name.startswith("mig-")):
        return ()
    return _VENDORS_OF_DOMAIN.get(domain, ())


def _is_mig(d: AttributedDevice) -> bool:
    return any(p.kind == "mig" for p in d.partitions)


def resolve_device(assignment: Assignment, devices: Sequence[AttributedDevice],
                   mig_resolver: Optional[MigResolver] = None) -> Union[tuple[str, Optional[str]], Unmatched]:
    """(topo device id, partition id or None) for a kubelet assignment, or why it matches none
    and which devices it could still be."""
    raw = assignment.device_id.split("::", 1)[0].strip()
    ids = {d.id for d in devices}
    if raw.startswith("MIG-GPU-"):
        gpu, _, rest = raw[len("MIG-"):].partition("/")
        gi = rest.split("/", 1)[0]
        if gpu not in ids:
            return Unmatched(f"a MIG device of {gpu}, which this agent does not serve", ())
        return (gpu, gi) if gi.isdigit() else Unmatched("a MIG device id without its GPU instance", (gpu,))
    if raw.startswith("MIG-"):
        if mig_resolver is None:
            reason = "a MIG device, and no NVML here to resolve it (not the nvml backend, or pynvml missing)"
        else:
            found = mig_resolver(raw)
            if found is not None:
                if found[0] in ids:
                    return found
                return Unmatched(f"a MIG device of {found[0]}, which this agent does not serve", ())
            reason = ("a MIG device that NVML does not list (yet: after a MIG reconfiguration it is read "
                      "again at most every 30 s)")
        nvidia = [d for d in devices if d.vendor in _VENDORS_OF_DOMAIN["nvidia.com"]]
        # On a GPU with MIG on; if none shows it yet (the topology is polled too), on any.
        return Unmatched(reason, tuple(d.id for d in ([d for d in nvidia if _is_mig(d)] or nvidia)))
    if raw in ids:
        return raw, None
    if raw.startswith("GPU-"):
        return Unmatched("a GPU this agent does not serve", ())
    vendors = _gpu_vendors(assignment.resource)
    if not vendors:
        return Unmatched(f"no GPU resource ({assignment.resource})", ())
    key = _pci_key(raw) if ":" in raw else None
    if key is not None:
        for d in devices:
            if d.pci and _pci_key(d.pci) == key:
                return d.id, None
        # Not at any address this agent knows: one of its devices whose address it does not know.
        return Unmatched("no device at that PCI address", tuple(d.id for d in devices
                                                                  if d.vendor in vendors and not d.pci))
    if raw.isdigit():
        for d in devices:
            if d.index == int(raw) and d.vendor in ("nvidia", "mock"):
                return d.id, None
        return Unmatched("no NVIDIA device with that index", ())
    return Unmatched("an id of a form this agent does not know",
                     tuple(d.id for d in devices if d.vendor in vendors))


def match_device(device_id: str, devices: Sequence[AttributedDevice],
                 mig_resolver: Optional[MigResolver] = None, resource: str = "") -> Optional[tuple[str, Optional[str]]]:
    """(topo device id, partition id or None) for a kubelet device id, or None."""
    found = resolve_device(Assignment("", "", "", resource, device_id), devices, mig_resolver)
    return None if isinstance(found, Unmatched) else found


def attribute(assignments: Iterable[Assignment], devices: Sequence[AttributedDevice],
              mig_resolver: Optional[MigResolver] = None,
              unmatched: Optional[dict[str, Unmatched]] = None) -> dict[str, Optional[list[dict[str, str]]]]:
    """device id -> its ``pods`` entries (every device listed): [] when nobody holds it, None
    when unknown (an id that matched no device could be this device's: a container that holds
    it would be missing). Ids that match no device are added to ``unmatched``, with why."""
    out: dict[str, list[dict[str, str]]] = {d.id: [] for d in devices}
    unknown: set[str] = set()
    seen: set[tuple[str, ...]] = set()
    for a in assignments:
        found = resolve_device(a, devices, mig_resolver)
        if isinstance(found, Unmatched):
            unknown.update(found.devices)
            if unmatched is not None:
                unmatched[a.device_id] = found
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
    return {dev: None if dev in unknown else entries for dev, entries in out.items()}


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
        self._cache: Optional[tuple[object, dict[str, Optional[list[dict[str, str]]]]]] = None
        self._unmatched_logged: set[str] = set()  # ids matching none of this agent's devices: said once
        self._unknown_log = KeyedThrottle(UNKNOWN_LOG_EVERY_S)  # ids leaving pods unknown
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

    def pods(self, devices: Sequence[AttributedDevice]) -> Optional[dict[str, Optional[list[dict[str, str]]]]]:
        """device id -> ``pods`` entries for the agent's current ``devices`` (None for a device
        an unmatched id may name); None when attribution is unknown. Cached until the next List
        or a new device list."""
        assignments = self._assignments
        if assignments is None:
            return None
        key = (self._generation, tuple((d.id, d.pci, d.index) for d in devices))
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        unmatched: dict[str, Unmatched] = {}
        result = attribute(assignments, devices, self.mig_resolver, unmatched)
        now = time.monotonic()
        for device_id, why in sorted(unmatched.items()):
            if why.devices:
                since = self._unknown_log.due((device_id, why), now)
                if since is not None:
                    log.warning("kubelet device id %r matches no device: %s; pods of %s unknown (absent) until it "
                                "does%s", device_id, why.reason, ", ".join(why.devices),
                                f" (in {since} more List answer(s) since last said)" if since else "")
            elif device_id not in self._unmatched_logged:
                self._unmatched_logged.add(device_id)
                log.info("kubelet device id %r matches no device of this agent (%s): left out", device_id, why.reason)
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
