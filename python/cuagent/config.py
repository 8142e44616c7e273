"""Agent settings: defaults, overlaid by a TOML file (``--config``), overlaid by flags.

Example file (deploy/cuagent.toml)::

    node = "gpu-node-01"
    driver = "nvml"
    rate_hz = 1000
    publish_interval_ms = 100
    feed = "tcp://*:7710"
    sync = "tcp://*:7711"
    # driver = "mock" only: one "preset:scenario" per simulated device
    mock_devices = ["h100-sxm:fragmented", "mi300x:training"]
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from . import protocol

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DRIVERS = ("auto", "mock", "nvml", "rocm_smi")
# The real backends `--driver auto` tries, in order. Never the mock: a GPU server must not
# publish simulated data because a library failed to load.
REAL_DRIVERS = ("nvml", "rocm_smi")


class ConfigError(ValueError):
    pass


@dataclass
class RunConfig:
    driver: str = "auto"
    mock_devices: list[tuple[str, str]] = field(default_factory=lambda: [("h100-sxm", "training")])
    seed: int = 0
    node: Optional[str] = None  # None: the host name, sanitized
    feed: str = "tcp://*:7710"
    sync: str = "tcp://*:7711"
    rate_hz: float = 1000.0
    publish_interval_ms: float = 100.0
    topo_interval_s: float = 10.0
    sndhwm: int = 1000
    log_level: str = "info"
    # Where the real backends find their vendor pieces (None: the loader's search path / sysfs).
    nvml_library: Optional[str] = None
    rocm_smi_library: Optional[str] = None
    kfd_root: Optional[str] = None
    # Slow path: per-process lists at most this often per device; partition layout polled this often.
    process_interval_s: float = 1.0
    topology_poll_s: float = 5.0
    # CURVE (PROTOCOL.md §6): the agent's secret key file and the directory of admitted public keys.
    curve_secret_key: Optional[str] = None
    curve_allow: Optional[str] = None
    # Kubernetes (cuagent.scheduling): kubelet PodResources socket ("" = off) and NFD features.d.
    pod_resources_socket: str = "/var/lib/kubelet/pod-resources/kubelet.sock"
    nfd_features_dir: Optional[str] = None

    def driver_options(self, driver: str) -> dict[str, Any]:
        """Options for one real backend's make_driver (only those that were set)."""
        if driver == "nvml":
            opts = {"library": self.nvml_library}
        elif driver == "rocm_smi":
            opts = {"library": self.rocm_smi_library, "kfd_root": self.kfd_root}
        else:
            opts = {}
        return {k: v for k, v in opts.items() if v is not None}

    def node_name(self) -> str:
        if self.node is not None:
            try:
                return protocol.check_node(self.node, "node")
            except protocol.ProtocolError:
                raise ConfigError(f"node name {self.node!r} must match [A-Za-z0-9._-]{{1,64}}") from None
        host = socket.gethostname()
        try:
            return protocol.sanitize_node(host)
        except protocol.ProtocolError:
            raise ConfigError(f"host name {host!r} gives no valid node name; pass --node NAME") from None


def parse_mock_devices(spec: Any) -> list[tuple[str, str]]:
    """``"h100-sxm:fragmented,mi300x"`` or a list of such items -> [(preset, scenario)]."""
    items = spec.split(",") if isinstance(spec, str) else spec
    if not isinstance(items, list) or not items:
        raise ConfigError(f"mock_devices must be 'preset:scenario,...' or a list of them, got {spec!r}")
    out = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(f"mock device {item!r} must be 'preset[:scenario]'")
        preset, _, scenario = item.strip().partition(":")
        out.append((preset.strip(), scenario.strip() or "training"))
    return out


_TYPES: dict[str, tuple[type, ...]] = {
    "seed": (int,), "rate_hz": (int, float), "publish_interval_ms": (int, float), "topo_interval_s": (int, float),
    "sndhwm": (int,), "process_interval_s": (int, float), "topology_poll_s": (int, float)}
_STRINGS = ("driver", "feed", "sync", "node", "log_level", "nvml_library", "rocm_smi_library", "kfd_root",
            "curve_secret_key", "curve_allow", "pod_resources_socket", "nfd_features_dir")


def load_file(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"config file {path}: unknown key(s) {unknown}; known: {sorted(known)}")
    return data


def build(file_values: dict[str, Any], flag_values: dict[str, Any]) -> RunConfig:
    """Defaults < file < flags (flags given as None were not passed)."""
    merged: dict[str, Any] = dict(file_values)
    merged.update({k: v for k, v in flag_values.items() if v is not None})
    for key, types in _TYPES.items():
        if key in merged and (isinstance(merged[key], bool) or not isinstance(merged[key], types)):
            raise ConfigError(f"{key} must be a number, got {merged[key]!r}")
    for key in _STRINGS:
        if key in merged and not isinstance(merged[key], str):
            raise ConfigError(f"{key} must be a string, got {merged[key]!r}")
    if "mock_devices" in merged:
        merged["mock_devices"] = parse_mock_devices(merged["mock_devices"])
    cfg = RunConfig(**merged)
    if cfg.driver not in DRIVERS:
        raise ConfigError(f"driver {cfg.driver!r} is not one of {DRIVERS}")
    if cfg.rate_hz <= 0:
        raise ConfigError(f"rate_hz must be > 0, got {cfg.rate_hz}")
    if cfg.publish_interval_ms <= 0:
        raise ConfigError(f"publish_interval_ms must be > 0, got {cfg.publish_interval_ms}")
    if cfg.publish_interval_ms < 1000.0 / cfg.rate_hz:
        raise ConfigError(
            f"publish_interval_ms {cfg.publish_interval_ms} is shorter than one sample at rate_hz {cfg.rate_hz}"
        )
    for key in ("process_interval_s", "topology_poll_s"):
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"{key} must be > 0, got {getattr(cfg, key)}")
    if (cfg.curve_secret_key is None) != (cfg.curve_allow is None):
        raise ConfigError("CURVE needs both curve_secret_key (the agent's key file) and curve_allow "
                          "(the directory of admitted client public keys)")
    if cfg.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"log_level {cfg.log_level!r} is not one of debug, info, warning, error")
    return cfg
