"""Node Feature Discovery labels: static GPU topology facts as an NFD local feature file.

nfd-worker reads every file in ``/etc/kubernetes/node-feature-discovery/features.d/``:
``name=value`` lines become node labels (``feature.node.kubernetes.io/<name>`` unless the
name carries its own prefix), ``#`` lines are comments, and a ``# +expiry-time=<RFC3339>``
directive drops the labels after that time — so labels of an agent that died do not outlive
it. Files whose names start with a dot are ignored, which is what makes the write atomic:
write ``.cuagent``, then rename it to ``cuagent``.

Labels (only facts that every device of the node agrees on; a fact that differs between
devices, or that no backend knows, is left out rather than summarised):

=====================================================  ====================================
``feature.node.kubernetes.io/cuagent.vendor``          ``nvidia`` / ``amd`` / ``mock``
``feature.node.kubernetes.io/cuagent.devices``         devices the agent sees
``feature.node.kubernetes.io/cuagent.unit``            ``sm`` / ``cu``
``feature.node.kubernetes.io/cuagent.units``           SMs/CUs per device
``feature.node.kubernetes.io/cuagent.<level>-count``   e.g. ``gpc-count=9``, ``xcd-count=8``
``feature.node.kubernetes.io/cuagent.layout-source``   ``probe`` / ``vendor`` / ``mock`` / ``none``
``feature.node.kubernetes.io/cuagent.partition-mode``  ``whole`` / ``mig`` / ``xcp``
``feature.node.kubernetes.io/cuagent.model``           model, as a label value
=====================================================  ====================================

For example ``nodeSelector: {feature.node.kubernetes.io/cuagent.gpc-count: "8"}``, or a
node affinity ``Gt`` on ``cuagent.units``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
import tempfile
import time
from typing import Any, Optional, Sequence

log = logging.getLogger("cuagent.nfd")

DEFAULT_DIR = "/etc/kubernetes/node-feature-discovery/features.d"
FILE_NAME = "cuagent"
PREFIX = "feature.node.kubernetes.io/cuagent."
DEFAULT_TTL_S = 3600.0
_VALUE_RE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?\Z")


def label_value(text: str) -> Optional[str]:
    """``text`` as a Kubernetes label value (<= 63 chars, [A-Za-z0-9._-], alphanumeric at
    both ends), or None when nothing is left."""
    v = re.sub(r"[^A-Za-z0-9._-]+", "-", text.strip())[:63].strip("-._")
    return v if v and _VALUE_RE.fullmatch(v) else None


def _uniform(values: Sequence[Any]) -> Optional[Any]:
    return values[0] if values and all(v == values[0] for v in values) else None


def labels(devices: Sequence[Any]) -> dict[str, str]:
    """The labels for a node's devices (engine DeviceTopology or decoded topo Devices)."""
    if not devices:
        return {}
    out: dict[str, Optional[Any]] = {
        "vendor": _uniform([d.vendor for d in devices]),
        "devices": len(devices),
        "unit": _uniform([d.unit for d in devices]),
        "units": _uniform([d.units for d in devices]),
        "layout-source": _uniform([d.layout_source for d in devices]),
        "partition-mode": _uniform([sorted({p.kind for p in d.partitions}) for d in devices]),
        "model": _uniform([d.model for d in devices]),
    }
    mode = out["partition-mode"]
    out["partition-mode"] = mode[0] if isinstance(mode, list) and len(mode) == 1 else None
    levels = _uniform([tuple(d.levels[:-1]) for d in devices]) or ()
    for level in levels:
        # A count the backend does not know (NVML without the layout probe) is absent.
        out[f"{level}-count"] = _uniform([d.counts.get(level) for d in devices])
    result = {}
    for name, value in out.items():
        text = label_value(str(value)) if value is not None else None
        if text is not None:
            result[PREFIX + name] = text
    return result


def render(label_map: dict[str, str], expiry: _dt.datetime) -> str:
    stamp = expiry.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [f"# +expiry-time={stamp}",
             "# Written by the cuagent agent (static GPU topology); rewritten before it expires."]
    lines += [f"{k}={v}" for k, v in sorted(label_map.items())]
    return "\n".join(lines) + "\n"


def write_atomic(directory: str, name: str, text: str) -> str:
    """Write ``directory/name`` through a dot-file (which nfd-worker ignores) and a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        path = os.path.join(directory, name)
        os.replace(tmp, path)
        return path
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class FeatureFile:
    """Keeps the agent's feature file current: :meth:`update` with the node's devices at
    start, on every topology change and periodically; it rewrites the file when the labels
    change or half its lifetime (``ttl_s``) has passed. Failures are logged once per kind
    and never stop the agent."""

    def __init__(self, directory: str = DEFAULT_DIR, ttl_s: float = DEFAULT_TTL_S, name: str = FILE_NAME,
                 clock: Any = time.time) -> None:
        if ttl_s <= 0:
            raise ValueError(f"ttl must be > 0 s, got {ttl_s}")
        self.directory, self.ttl_s, self.name, self.clock = directory, ttl_s, name, clock
        self._written: Optional[dict[str, str]] = None
        self._written_at = 0.0
        self._error: Optional[str] = None
        self.writes = 0

    @property
    def path(self) -> str:
        return os.path.join(self.directory, self.name)

    def update(self, devices: Sequence[Any]) -> bool:
        """Rewrite when needed; True when the file was written now."""
        current = labels(devices)
        now = self.clock()
        if current == self._written and now - self._written_at < self.ttl_s / 2:
            return False
        expiry = _dt.datetime.fromtimestamp(now + self.ttl_s, _dt.timezone.utc)
        try:
            write_atomic(self.directory, self.name, render(current, expiry))
        except OSError as e:
            reason = f"{type(e).__name__}: {e.strerror or e}"
            if reason != self._error:
                self._error = reason
                log.warning("cannot write the NFD feature file %s: %s", self.path, reason)
            return False
        if self._error is not None or self._written is None:
            log.info("NFD feature file %s: %d label(s), expires in %g s", self.path, len(current), self.ttl_s)
        self._error = None
        self._written, self._written_at = current, now
        self.writes += 1
        return True
