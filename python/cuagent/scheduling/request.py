"""What a workload asks of a node's GPUs, and how to read that from a Kubernetes Pod.

A :class:`Request` is what :class:`~cuagent.scheduling.scorer.Scorer` ranks against.
:func:`pod_request` derives one from a Pod as kube-scheduler sends it to an extender (the
Pod's JSON, ``metadata``/``spec`` with the API's lowerCamel field names):

- GPU count from the containers' resource requests (limits where a request is missing):
  ``nvidia.com/gpu``, ``amd.com/gpu``, ``nvidia.com/gpu.shared`` (time-sliced replicas:
  sharing implied), ``nvidia.com/mig-<profile>`` (e.g. ``nvidia.com/mig-1g.10gb``: a MIG
  partition of that profile). Init containers run before the others, so the pod needs the
  larger of their largest request and the sum over the app containers, as kube-scheduler
  counts it.
- Annotations for what resources cannot say (:data:`ANNOTATIONS`): SM/CU demand per GPU,
  a GPU fraction, device memory per GPU, and whether the pod tolerates sharing a GPU.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

ANNOTATION_PREFIX = "cuagent.io/"
#: Pod annotations read by :func:`pod_request`, with what each means.
ANNOTATIONS = {
    "cuagent.io/sm-demand": "SMs/CUs the pod needs idle on each GPU (integer >= 1)",
    "cuagent.io/gpu-fraction": "a fraction of one GPU (0 < f < 1) instead of whole GPUs; implies sharing",
    "cuagent.io/gpu-memory": "free device memory needed on each GPU (a Kubernetes quantity: 20Gi, 4G, 512Mi)",
    "cuagent.io/shared": "\"true\": the pod tolerates running beside other work on a GPU",
}

_VENDOR_PREFIXES = {"nvidia.com/": "nvidia", "amd.com/": "amd"}
_WHOLE_GPU = ("nvidia.com/gpu", "amd.com/gpu")
_SHARED_GPU = ("nvidia.com/gpu.shared", "amd.com/gpu.shared")
_MIG_RE = re.compile(r"nvidia\.com/mig-(\d+g\.\d+gb)\Z")
_PROFILE_RE = re.compile(r"(?:MIG )?(\d+(?:c\.\d+)?g\.\d+gb)\Z")


class RequestError(ValueError):
    """A request (or a pod's GPU resources/annotations) that cannot be scheduled as given."""


MAX_UNITS = 1_000_000  # SMs/CUs on one GPU: hundreds today
MAX_MEMORY_BYTES = 2**63 - 1  # a Kubernetes quantity's int64


def _short(value: object) -> str:
    """A value as a message quotes it: at most 64 characters."""
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 200 else f"an integer of {len(str(value))} digits"
    return text if len(text) <= 64 else text[:61] + "..."


@dataclass(frozen=True)
class Request:
    """What a workload needs from one node.

    ``gpus``: whole GPUs (an integer >= 1) or a fraction of one GPU (0 < gpus < 1, which
    implies sharing). ``units``: SMs/CUs that must be idle on each GPU. ``memory_bytes``:
    free device memory needed on each GPU. ``shared``: the workload may run beside other
    work on a GPU (time slicing, MPS); otherwise a GPU must be free. ``mig_profile``: the
    workload takes ``gpus`` MIG partitions of this GPU-instance profile (``"1g.10gb"``)
    instead of whole GPUs. ``vendor``: only devices of this vendor (``nvidia``, ``amd``)."""

    gpus: float = 1.0
    units: Optional[int] = None
    memory_bytes: Optional[int] = None
    shared: bool = False
    mig_profile: Optional[str] = None
    vendor: Optional[str] = None

    def __post_init__(self) -> None:
        g = self.gpus
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g) or g <= 0:
            raise RequestError(f"gpus must be a whole number >= 1 or a fraction in (0, 1), got {g!r}")
        if g > 1 and not float(g).is_integer():
            raise RequestError(f"gpus must be a whole number >= 1 or a fraction in (0, 1), got {g!r}")
        # Upper bounds too: the scorer computes in floats, and 10**400 is none (a 500, once).
        if self.units is not None and (isinstance(self.units, bool) or not isinstance(self.units, int)
                                       or not 1 <= self.units <= MAX_UNITS):
            raise RequestError(f"units (SM/CU demand) must be an integer from 1 to {MAX_UNITS}, "
                               f"got {_short(self.units)}")
        if self.memory_bytes is not None and (isinstance(self.memory_bytes, bool)
                                              or not isinstance(self.memory_bytes, int)
                                              or not 0 <= self.memory_bytes <= MAX_MEMORY_BYTES):
            raise RequestError(f"memory_bytes must be an integer from 0 to {MAX_MEMORY_BYTES}, "
                               f"got {_short(self.memory_bytes)}")
        if self.mig_profile is not None:
            m = _PROFILE_RE.fullmatch(str(self.mig_profile))
            if m is None:
                raise RequestError(f"mig_profile must look like 1g.10gb, got {self.mig_profile!r}")
            if g < 1:
                raise RequestError("a MIG request takes whole partitions: gpus must be >= 1")
            object.__setattr__(self, "mig_profile", m.group(1))
        if self.vendor is not None and self.vendor not in ("nvidia", "amd"):
            raise RequestError(f"vendor must be nvidia or amd, got {self.vendor!r}")

    @property
    def count(self) -> int:
        """Devices (or MIG partitions) the request occupies: a fraction takes one."""
        return max(1, int(self.gpus))

    @property
    def fraction(self) -> bool:
        return self.gpus < 1

    @property
    def sharing(self) -> bool:
        """Whether the workload may land on a GPU that other work uses."""
        return self.shared or self.fraction

    @classmethod
    def from_json(cls, m: Any) -> "Request":
        """From a JSON map with the field names above (``shared`` may also be ``sharing``)."""
        if not isinstance(m, dict):
            raise RequestError(f"a request is a JSON object, got {type(m).__name__}")
        known = {"gpus", "units", "memory_bytes", "shared", "mig_profile", "vendor"}
        unknown = sorted(set(m) - known)
        if unknown:
            raise RequestError(f"unknown request field(s) {unknown}; known: {sorted(known)}")
        shared = m.get("shared", False)
        if not isinstance(shared, bool):
            raise RequestError(f"shared must be true or false, got {shared!r}")
        return cls(gpus=m.get("gpus", 1), units=m.get("units"), memory_bytes=m.get("memory_bytes"), shared=shared,
                   mig_profile=m.get("mig_profile"), vendor=m.get("vendor"))

    def to_json(self) -> dict[str, Any]:
        return {"gpus": self.gpus, "units": self.units, "memory_bytes": self.memory_bytes, "shared": self.shared,
                "mig_profile": self.mig_profile, "vendor": self.vendor}


# --------------------------------------------------------------------------- quantities

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_QUANTITY_RE = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)\Z")


def parse_quantity(value: Any, what: str = "quantity") -> float:
    """A Kubernetes resource quantity (``"2"``, ``"20Gi"``, ``"500m"``, ``"1e3"``, or a number)."""
    if isinstance(value, bool):
        raise RequestError(f"{what}: expected a quantity, got {value!r}")
    if isinstance(value, (int, float)):
        out = float(value)
    elif isinstance(value, str):
        m = _QUANTITY_RE.fullmatch(value.strip())
        if m is None:
            raise RequestError(f"{what}: {value!r} is not a Kubernetes quantity (e.g. 2, 20Gi, 500m)")
        number, exponent, suffix = m.groups()
        if exponent:
            out = float(number + exponent)
        else:
            out = float(number) * (_BINARY[suffix] if suffix in _BINARY else _DECIMAL[suffix or ""])
    else:
        raise RequestError(f"{what}: expected a quantity, got {type(value).__name__}")
    if not math.isfinite(out) or out < 0:
        raise RequestError(f"{what}: {value!r} must be a finite quantity >= 0")
    return out


# --------------------------------------------------------------------------- pods


def _container_gpu(container: Any, where: str) -> dict[str, float]:
    """GPU-related resources of one container: requests, else limits (the API server defaults
    requests to limits, but an extender may be sent a pod before that happened)."""
    if not isinstance(container, dict):
        raise RequestError(f"{where}: expected an object")
    resources = container.get("resources") or {}
    if not isinstance(resources, dict):
        raise RequestError(f"{where}.resources: expected an object")
    out: dict[str, float] = {}
    for section in ("limits", "requests"):  # requests win where both are given
        values = resources.get(section) or {}
        if not isinstance(values, dict):
            raise RequestError(f"{where}.resources.{section}: expected an object")
        for name, qty in values.items():
            if isinstance(name, str) and any(name.startswith(p) for p in _VENDOR_PREFIXES):
                out[name] = parse_quantity(qty, f"{where}.resources.{section}[{name}]")
    return out


def _pod_resources(spec: Mapping[str, Any]) -> dict[str, float]:
    """Effective GPU resources of a pod: max(sum over containers, max over init containers)."""
    total: dict[str, float] = {}
    for i, c in enumerate(spec.get("containers") or []):
        for name, qty in _container_gpu(c, f"spec.containers[{i}]").items():
            total[name] = total.get(name, 0.0) + qty
    for i, c in enumerate(spec.get("initContainers") or []):
        for name, qty in _container_gpu(c, f"spec.initContainers[{i}]").items():
            total[name] = max(total.get(name, 0.0), qty)
    return {k: v for k, v in total.items() if v > 0}


def _annotation(annotations: Mapping[str, Any], key: str) -> Optional[str]:
    value = annotations.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestError(f"annotation {key}: expected a string, got {value!r}")
    return value.strip()


def pod_request(pod: Any) -> Optional[Request]:
    """The :class:`Request` a Pod makes, or None when it asks for no GPU.

    Raises :class:`RequestError` (naming the field) for GPU resources or annotations that
    cannot be read."""
    if not isinstance(pod, dict):
        raise RequestError(f"Pod: expected an object, got {type(pod).__name__}")
    spec = pod.get("spec") or {}
    meta = pod.get("metadata") or {}
    if not isinstance(spec, dict) or not isinstance(meta, dict):
        raise RequestError("Pod: spec and metadata must be objects")
    annotations = meta.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise RequestError("Pod: metadata.annotations must be an object")
    resources = _pod_resources(spec)
    vendors = {v for name in resources for p, v in _VENDOR_PREFIXES.items() if name.startswith(p)}
    gpus = sum(q for name, q in resources.items() if name in _WHOLE_GPU)
    shared_gpus = sum(q for name, q in resources.items() if name in _SHARED_GPU)
    migs = {m.group(1): q for name, q in resources.items() if (m := _MIG_RE.fullmatch(name))}
    if len(migs) > 1:
        raise RequestError(f"Pod asks for MIG partitions of several profiles {sorted(migs)}: one request "
                           "ranks one profile")
    fraction_s = _annotation(annotations, "cuagent.io/gpu-fraction")
    if not (gpus or shared_gpus or migs or fraction_s):
        return None
    shared = shared_gpus > 0
    shared_s = _annotation(annotations, "cuagent.io/shared")
    if shared_s is not None:
        if shared_s.lower() not in ("true", "false"):
            raise RequestError(f"annotation cuagent.io/shared: expected true or false, got {shared_s!r}")
        shared = shared or shared_s.lower() == "true"
    count: float = gpus + shared_gpus
    mig_profile = None
    if migs:
        ((mig_profile, count),) = migs.items()
    if fraction_s is not None:
        try:
            fraction = float(fraction_s)
        except ValueError:
            raise RequestError(f"annotation cuagent.io/gpu-fraction: {fraction_s!r} is not a number") from None
        if not 0 < fraction < 1:
            raise RequestError(f"annotation cuagent.io/gpu-fraction: {fraction_s!r} must be in (0, 1)")
        count = fraction
    units = None
    units_s = _annotation(annotations, "cuagent.io/sm-demand")
    if units_s is not None:
        if not (units_s.isascii() and units_s.isdigit()) or len(units_s) > 7 or not 1 <= int(units_s) <= MAX_UNITS:
            raise RequestError(f"annotation cuagent.io/sm-demand: {units_s[:64]!r} must be an integer from 1 to "
                               f"{MAX_UNITS}")
        units = int(units_s)
    memory = None
    memory_s = _annotation(annotations, "cuagent.io/gpu-memory")
    if memory_s is not None:
        memory = int(parse_quantity(memory_s, "annotation cuagent.io/gpu-memory"))
    vendor = next(iter(vendors)) if len(vendors) == 1 else None
    return Request(gpus=count, units=units, memory_bytes=memory, shared=shared, mig_profile=mig_profile,
                   vendor=vendor)
