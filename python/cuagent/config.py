"""Agent settings: defaults, overlaid by a TOML file (``--config``), overlaid by flags.

Every setting is declared once below (:data:`RUN_OPTIONS`, with its type, bounds and help):
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

import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from . import protocol
from .mock import FAULT_SYNTAX, FaultError, MockDevice, MockFault, parse_fault, with_faults
from .options import Option, OptionError, bind_endpoint, nonempty

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DRIVERS = ("auto", "mock", "nvml", "rocm_smi")
# The real backends `--driver auto` tries, in order. Never the mock: a GPU server must not
# publish simulated data because a library failed to load.
REAL_DRIVERS = ("nvml", "rocm_smi")

# Longest --duration: a year. Longer is "forever", which is leaving --duration out.
MAX_DURATION_S = 365 * 86400.0


class ConfigError(ValueError):
    pass


def _node(text: str) -> str:
    if not protocol.NODE_RE.fullmatch(text):
        raise OptionError("expected a node name matching [A-Za-z0-9._-]{1,64}")
    return text


def _mock_device(text: str) -> str:
    preset, _, scenario = text.partition(":")
    if not preset.strip() or (":" in text and not scenario.strip()):
        raise OptionError("expected PRESET[:SCENARIO], e.g. h100-sxm:fragmented")
    return text


def _mock_fault(text: str) -> str:
    try:
        parse_fault(text)
    except FaultError as e:
        raise OptionError(e.reason) from None
    return text


SEED = Option("seed", int, 0, "mock seed (same seed, same data)", min=0, max=2**64 - 1)
RATE_HZ = Option("rate_hz", float, 1000.0, "sampling rate", min=0.01, max=100_000.0, unit="Hz")
PUBLISH_INTERVAL_MS = Option("publish_interval_ms", float, 100.0, "state window and publish interval",
                             min=1.0, max=600_000.0, unit="ms")
DURATION_S = Option("duration", float, None, "stop after this many seconds", min=0.0, min_open=True,
                    max=MAX_DURATION_S, unit="s")
MOCK_DEVICES = Option("mock_devices", list, ["h100-sxm:training"],
                      "simulated devices for --driver mock, e.g. h100-sxm:fragmented,mi300x:training",
                      metavar="PRESET:SCENARIO,...", check=_mock_device)
MOCK_FAULTS = Option("mock_faults", list, [],
                     "faults of the simulated devices (--driver mock; repeatable): " + FAULT_SYNTAX
                     + ", times from the device's first read, e.g. 1:lost@5s..8s,0:errors=0.1,*:slow=300ms/2s",
                     metavar="DEVICE:FAULT,...", check=_mock_fault)
LOG_LEVEL = Option("log_level", str, "info", choices=("debug", "info", "warning", "error"))

#: Every setting of ``cuagent run``: a flag, and a key of the --config file.
RUN_OPTIONS: tuple[Option, ...] = (
    Option("driver", str, "auto", "backend; auto takes the real GPU backend present and never the mock, "
           "which must be asked for with --driver mock", choices=DRIVERS),
    MOCK_DEVICES,
    MOCK_FAULTS,
    SEED,
    Option("node", str, None, "node name in topics (default: host name) [A-Za-z0-9._-]{1,64}", check=_node),
    Option("feed", str, "tcp://*:7710", "PUB endpoint", metavar="ENDPOINT", check=bind_endpoint),
    Option("sync", str, "tcp://*:7711", "ROUTER endpoint", metavar="ENDPOINT", check=bind_endpoint),
    RATE_HZ,
    PUBLISH_INTERVAL_MS,
    Option("topo_interval_s", float, 10.0, "re-publish topo every this many seconds",
           min=0.01, max=86_400.0, unit="s"),
    Option("sndhwm", int, 1000, "messages queued per subscriber before dropping", min=1, max=1_000_000),
    DURATION_S,
    LOG_LEVEL,
    # Where the real backends find their vendor pieces (None: the loader's search path / sysfs).
    Option("nvml_library", str, None, "libnvidia-ml to load (default: libnvidia-ml.so.1 from the loader's path)",
           metavar="PATH", check=nonempty),
    Option("rocm_smi_library", str, None,
           "librocm_smi64 to load (default: the loader's path; env CUAGENT_ROCM_SMI_LIBRARY)",
           metavar="PATH", check=nonempty),
    Option("kfd_root", str, None, "KFD sysfs directory for AMD topology (default /sys/class/kfd/kfd; "
           "env CUAGENT_KFD_ROOT)", metavar="PATH", check=nonempty),
    # Slow path: per-process lists at most this often per device; partition layout polled this often.
    Option("process_interval_s", float, 1.0, "list a device's processes at most this often (NVML)",
           min=0.1, max=3600.0, unit="s"),
    Option("topology_poll_s", float, 5.0,
           "check the partition (MIG) layout this often; a change rebuilds the engine",
           min=0.1, max=3600.0, unit="s"),
    # CURVE (PROTOCOL.md §6): the agent's secret key file and the directory of admitted public keys.
    # Not checked for emptiness here: curve.py names an empty path as the unusable key file it is.
    Option("curve_secret_key", str, None, "this server's zmq.auth secret key file (.key_secret, mode 0600); "
           "feed and sync become CURVE servers", metavar="FILE"),
    Option("curve_allow", str, None,
           "directory of admitted clients' public keys (*.key, read at start); others receive nothing",
           metavar="DIR"),
)
OPTIONS = {o.name: o for o in RUN_OPTIONS}


def _default(name: str) -> Any:
    return field(default_factory=lambda: list(OPTIONS[name].default)) if OPTIONS[name].type is list \
        else OPTIONS[name].default


@dataclass
class RunConfig:
    driver: str = _default("driver")
    mock_devices: list[tuple[str, str]] = field(default_factory=lambda: [("h100-sxm", "training")])
    mock_faults: list[MockFault] = field(default_factory=list)
    seed: int = _default("seed")
    node: Optional[str] = None  # None: the host name, sanitized
    feed: str = _default("feed")
    sync: str = _default("sync")
    rate_hz: float = _default("rate_hz")
    publish_interval_ms: float = _default("publish_interval_ms")
    topo_interval_s: float = _default("topo_interval_s")
    sndhwm: int = _default("sndhwm")
    duration: Optional[float] = None  # None: until SIGINT/SIGTERM
    log_level: str = _default("log_level")
    nvml_library: Optional[str] = None
    rocm_smi_library: Optional[str] = None
    kfd_root: Optional[str] = None
    process_interval_s: float = _default("process_interval_s")
    topology_poll_s: float = _default("topology_poll_s")
    curve_secret_key: Optional[str] = None
    curve_allow: Optional[str] = None

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
    try:
        items = MOCK_DEVICES.validate(spec, repr(spec))
    except OptionError as e:
        raise ConfigError(f"mock_devices {e}") from None
    out = []
    for item in items:
        preset, _, scenario = item.partition(":")
        out.append((preset.strip(), scenario.strip() or "training"))
    return out


def check_values(values: dict[str, Any], source: str) -> dict[str, Any]:
    """Each value checked against its declaration (type, bounds) and normalised; ``source``
    starts the message (``config file X``)."""
    unknown = sorted(set(values) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown}; known: {sorted(OPTIONS)}")
    out = {}
    for key, value in values.items():
        try:
            out[key] = OPTIONS[key].from_toml(value)
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
    faults = [parse_fault(spec) for spec in merged.pop("mock_faults", [])]
    if "mock_devices" in merged:
        merged["mock_devices"] = parse_mock_devices(merged["mock_devices"])
    cfg = RunConfig(**merged, mock_faults=faults)
    if cfg.publish_interval_ms < 1000.0 / cfg.rate_hz:
        raise ConfigError(
            f"publish_interval_ms {cfg.publish_interval_ms:g} is shorter than one sample at rate_hz {cfg.rate_hz:g}: "
            f"expected at least {1000.0 / cfg.rate_hz:g} ms"
        )
    if (cfg.curve_secret_key is None) != (cfg.curve_allow is None):
        raise ConfigError("CURVE needs both curve_secret_key (the agent's key file) and curve_allow "
                          "(the directory of admitted client public keys)")
    if faults:
        if cfg.driver != "mock":
            # Never on a real GPU, nor on whatever `auto` finds: faults are a rehearsal.
            raise ConfigError(f"mock_faults need driver mock (driver is {cfg.driver!r})")
        try:  # a fault naming a device that does not exist fails now, not when the engine starts
            with_faults([MockDevice(p, scenario=s) for p, s in cfg.mock_devices], faults)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    return cfg
