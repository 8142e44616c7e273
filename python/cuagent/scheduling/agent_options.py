"""The Kubernetes extras of ``cuagent run``: pod attribution and the NFD feature file.

Their settings are declared with the others (config.COMMON_OPTIONS); cli.py builds the extras
through :func:`build`, so the agent itself only sees two optional hooks."""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from . import podresources

log = logging.getLogger("cuagent.agent")


def build(cfg: Any, backend: str, driver_options: dict[str, Any]) -> tuple[Optional[Any], Optional[Callable[[list[Any]], Any]]]:
    """(pod attribution or None, topology hook or None) for a RunConfig."""
    pods = None
    if cfg.pod_resources_socket:
        resolver = None
        if backend == "nvml":
            try:
                resolver = podresources.nvml_mig_resolver(driver_options.get("library"))
            except Exception as e:  # noqa: BLE001 — MIG ids stay unmatched, GPUs still attributed
                log.info("MIG device ids will not be attributed: %s", e)
        pods = podresources.PodAttribution(cfg.pod_resources_socket, mig_resolver=resolver).start()
    hook: Optional[Callable[[list[Any]], Any]] = None
    if cfg.nfd_features_dir:
        from .nfd import FeatureFile

        hook = FeatureFile(cfg.nfd_features_dir).update
    return pods, hook
