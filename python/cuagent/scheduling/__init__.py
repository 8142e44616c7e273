"""Placement on what is free inside GPUs: the scorer every scheduler can call, the
kube-scheduler extender, Kubernetes pod attribution (kubelet PodResources) and Node Feature
Discovery labels.

``from cuagent.scheduling import Request, Scorer`` — see :mod:`cuagent.scheduling.scorer`.
"""

from .request import Request, RequestError, pod_request
from .scorer import DeviceScore, NodeScore, PartitionScore, Ranking, Scorer, Weights, rank

__all__ = ["DeviceScore", "NodeScore", "PartitionScore", "Ranking", "Request", "RequestError", "Scorer",
           "Weights", "pod_request", "rank"]
