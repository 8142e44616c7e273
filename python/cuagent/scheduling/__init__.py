"""Placement on what is free inside GPUs: the scorer every scheduler can call, the
kube-scheduler extender, Kubernetes pod attribution (kubelet PodResources) and Node Feature
Discovery labels.

``from cuagent.scheduling import Request, Scorer`` — see :mod:`cuagent.scheduling.scorer`.
Names are imported on first use, so the agent (which needs only the Kubernetes extras)
never loads the client library.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Request": "request", "RequestError": "request", "pod_request": "request",
    "DeviceScore": "scorer", "NodeScore": "scorer", "PartitionScore": "scorer", "Ranking": "scorer",
    "Scorer": "scorer", "Weights": "scorer", "rank": "scorer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cuagent.scheduling' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
