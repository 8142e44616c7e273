"""Agent settings: defaults, overlaid by a TOML file (``--config``), overlaid by flags.

Every setting is declared once, with its type, bounds and help (the agent's in
:data:`COMMON_OPTIONS`, each backend's in its module, see backends/registry.py):
``cuagent run``'s flags, the TOML keys and the checks of both come from those declarations,
so a value is refused the same way wherever it was written.

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

import dataclasses
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from . import wire
from .backends import registry
from .options import Option, OptionError, bind_endpoint, listen

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Longest --duration: a year. Longer is "forever", which is leaving --duration out.
MAX_DURATION_S = 365 * 86400.0


class ConfigError(ValueError):
    pass


def _node(text: str) -> str:
    if not wire.NODE_RE.fullmatch(text):
        raise OptionError("expected a node name matching [A-Za-z0-9._-]{1,64}")
    return text


def _driver(name: str) -> str:
    if name == "auto" or name in registry.names():
        return name
    why = registry.failure(name)
    if why is not None:  # a backend that is installed but broken says so, not "unknown"
        raise OptionError(f"that backend could not be loaded: {why}")
    raise OptionError(f"expected one of {', '.join(drivers())}")


SEED = Option("seed", int, 0, "mock seed (same seed, same data)", min=0, max=2**64 - 1)
RATE_HZ = Option("rate_hz", float, 1000.0, "sampling rate", min=0.01, max=100_000.0, unit="Hz")
PUBLISH_INTERVAL_MS = Option("publish_interval_ms", float, 100.0, "state window and publish interval",
                             min=1.0, max=600_000.0, unit="ms")
DURATION_S = Option("duration", float, None, "stop after this many seconds", min=0.0, min_open=True,
                    max=MAX_DURATION_S, unit="s")
LOG_LEVEL = Option("log_level", str, "info", choices=("debug", "info", "warning", "error"))
# Prometheus /metrics from the agent's own process (exporters/prometheus_cli.py adds the flags,
# with --metrics-listen alone meaning 0.0.0.0:7712).
METRICS_LISTEN = Option("metrics_listen", str, None, "serve Prometheus metrics at http://HOST:PORT/metrics "
                        "(HOST:PORT, :PORT or [IPv6]:PORT; port 0: any free port, logged)", metavar="HOST:PORT",
                        check=listen)
METRICS_PER_UNIT = Option("metrics_per_unit", bool, False, "also one series per SM/CU and counter "
                          "(132 x counters per H100)")
METRICS_PER_PROCESS = Option("metrics_per_process", bool, False,
                             "also one series per GPU process (pid labels churn with jobs)")
METRICS_OPTIONS = (METRICS_LISTEN, METRICS_PER_UNIT, METRICS_PER_PROCESS)

#: Keys a --config file must not hold, and why (the rest of ``cuagent run``'s flags are keys).
NOT_IN_FILE = {"config": "a config file cannot name another one: give --config on the command line"}

#: The agent's own settings (each a ``cuagent run`` flag and a key of the --config file);
#: the backends add theirs (backends/registry.py). ``driver``'s choices come from the registry.
COMMON_OPTIONS: tuple[Option, ...] = (
    Option("driver", str, "auto", "backend; auto takes the real GPU backend present and never the mock, "
           "which must be asked for with --driver mock", check=_driver),
    SEED,
    Option("node", str, None, "node name in topics (default: host name) [A-Za-z0-9._-]{1,64}", check=_node),
    Option("feed", str, "tcp://*:7710", "PUB endpoint", metavar="ENDPOINT", check=bind_endpoint),
    Option("sync", str, "tcp://*:7711", "ROUTER endpoint", metavar="ENDPOINT", check=bind_endpoint),
    RATE_HZ,
    PUBLISH_INTERVAL_MS,
    Option("topo_interval_s", float, 10.0, "re-publish topo every this many seconds",
           min=0.01, max=86_400.0, unit="s"),
    Option("sndhwm", int, 1000, "messages queued per subscriber before dropping", min=1, max=1_000_000),
    Option("summary_every", int, 1, "publish the node summary (cua1/sum/, PROTOCOL.md §3.5) after every N "
           "windows; 0: none", min=0, max=1_000_000, metavar="N"),
    DURATION_S,
    LOG_LEVEL,
    # Slow path: per-process lists at most this often per device; partition layout polled this often.
    Option("process_interval_s", float, 1.0, "list a device's processes at most this often (NVML, AMD SMI)",
           min=0.1, max=3600.0, unit="s"),
    Option("topology_poll_s", float, 5.0,
           "check the partition layout (MIG, AMD partition modes) this often; a change rebuilds the engine",
           min=0.1, max=3600.0, unit="s"),
    # Kubernetes (cuagent.scheduling/agent_options.py builds what these ask for). "" is a
    # setting, not a mistake: it turns pod attribution off.
    Option("pod_resources_socket", str, "/var/lib/kubelet/pod-resources/kubelet.sock",
           "kubelet PodResources socket for pod attribution ('' turns it off; absent socket: no attribution, "
           "one log line)", metavar="PATH"),
    Option("nfd_features_dir", str, None, "write Node Feature Discovery labels (static GPU topology) into DIR, "
           "e.g. /etc/kubernetes/node-feature-discovery/features.d (default: off)", metavar="DIR"),
    # CURVE (PROTOCOL.md §6): the agent's secret key file and the directory of admitted public keys.
    # Not checked for emptiness here: curve.py names an empty path as the unusable key file it is.
    Option("curve_secret_key", str, None, "this server's zmq.auth secret key file (.key_secret, mode 0600); "
           "feed and sync become CURVE servers", metavar="FILE"),
    Option("curve_allow", str, None,
           "directory of admitted clients' public keys (*.key, read at start); others receive nothing",
           metavar="DIR"),
    *METRICS_OPTIONS,
)
_COMMON = {o.name: o for o in COMMON_OPTIONS}


def drivers() -> tuple[str, ...]:
    """What --driver accepts: auto, then every registered backend."""
    return ("auto", *registry.names())


def options() -> dict[str, Option]:
    """Every setting of ``cuagent run`` by name: the agent's, then each backend's. A backend
    whose option would shadow a setting of the agent is left out (registry.disable)."""
    out = dict(_COMMON)
    for backend in registry.all_backends().values():
        clash = [o.name for o in backend.options if o.name in _COMMON]
        if clash:
            registry.disable(backend.name, f"its option(s) {clash} are settings of the agent")
            continue
        out.update((o.name, o) for o in backend.options)
    out["driver"] = dataclasses.replace(_COMMON["driver"], metavar="{" + ",".join(drivers()) + "}")
    return out



def _default(name: str) -> Any:
    return _COMMON[name].default


@dataclass
class RunConfig:
    driver: str = _default("driver")
    seed: int = _default("seed")
    node: Optional[str] = None  # None: the host name, sanitized
    feed: str = _default("feed")
    sync: str = _default("sync")
    rate_hz: float = _default("rate_hz")
    publish_interval_ms: float = _default("publish_interval_ms")
    topo_interval_s: float = _default("topo_interval_s")
    sndhwm: int = _default("sndhwm")
    summary_every: int = _default("summary_every")
    duration: Optional[float] = None  # None: until SIGINT/SIGTERM
    log_level: str = _default("log_level")
    process_interval_s: float = _default("process_interval_s")
    topology_poll_s: float = _default("topology_poll_s")
    curve_secret_key: Optional[str] = None
    curve_allow: Optional[str] = None
    metrics_listen: Optional[str] = None  # None: no /metrics
    metrics_per_unit: bool = _default("metrics_per_unit")
    metrics_per_process: bool = _default("metrics_per_process")
    # Kubernetes (cuagent.scheduling): kubelet PodResources socket ("" = off) and NFD features.d.
    pod_resources_socket: str = _default("pod_resources_socket")
    nfd_features_dir: Optional[str] = None
    # The backends' settings that were given (by option name; an absent one is its default).
    backend_settings: dict[str, Any] = field(default_factory=dict)

    def driver_args(self, driver: str) -> tuple[Optional[Sequence[Any]], dict[str, Any]]:
        """(devices, make_driver keyword arguments) of one backend, from its settings."""
        return registry.get(driver).args(self.backend_settings)

    def node_name(self) -> str:
        if self.node is not None:
            try:
                return wire.check_node(self.node, "node")
            except wire.ProtocolError:
                raise ConfigError(f"node name {self.node!r} must match [A-Za-z0-9._-]{{1,64}}") from None
        host = socket.gethostname()
        try:
            return wire.sanitize_node(host)
        except wire.ProtocolError:
            raise ConfigError(f"host name {host!r} gives no valid node name; pass --node NAME") from None


def check_values(values: dict[str, Any], source: str) -> dict[str, Any]:
    """Each value checked against its declaration (type, bounds) and normalised; ``source``
    starts the message (``config file X``)."""
    known = options()
    for key, why in NOT_IN_FILE.items():
        if key in values:
            raise ConfigError(f"{source}: {key}: {why}")
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown}; known: {sorted(known)}")
    out = {}
    for key, value in values.items():
        try:
            out[key] = known[key].from_toml(value)
        except OptionError as e:
            raise ConfigError(f"{source}: {e}") from None
    return out


def load_file(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    return check_values(data, f"config file {path}")


def build(file_values: dict[str, Any], flag_values: dict[str, Any]) -> RunConfig:
    """Defaults < file < flags (flags given as None were not passed). Both are checked here
    too, so that a caller that did not go through load_file or argparse gets the same checks."""
    merged = check_values(file_values, "config")
    merged.update(check_values({k: v for k, v in flag_values.items() if v is not None}, "flags"))
    common = {k: v for k, v in merged.items() if k in _COMMON}
    cfg = RunConfig(**common, backend_settings={k: v for k, v in merged.items() if k not in _COMMON})
    if cfg.publish_interval_ms < 1000.0 / cfg.rate_hz:
        raise ConfigError(
            f"publish_interval_ms {cfg.publish_interval_ms:g} is shorter than one sample at rate_hz {cfg.rate_hz:g}: "
            f"expected at least {1000.0 / cfg.rate_hz:g} ms"
        )
    if (cfg.curve_secret_key is None) != (cfg.curve_allow is None):
        raise ConfigError("CURVE needs both curve_secret_key (the agent's key file) and curve_allow "
                          "(the directory of admitted client public keys)")
    for name in ("metrics_per_unit", "metrics_per_process"):
        if getattr(cfg, name) and cfg.metrics_listen is None:
            # It shapes what /metrics serves; without metrics_listen there is none to shape.
            raise ConfigError(f"{name} needs metrics_listen (no /metrics is served without it)")
    for backend in registry.all_backends().values():
        for name in backend.chosen_only:
            if cfg.backend_settings.get(name) and cfg.driver != backend.name:
                # Never on a real GPU, nor on whatever `auto` finds: such a setting would be ignored.
                raise ConfigError(f"{name} needs driver {backend.name} (driver is {cfg.driver!r})")
    if cfg.driver != "auto":
        try:  # e.g. a mock fault naming a device that does not exist: now, not when the engine starts
            cfg.driver_args(cfg.driver)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    return cfg
