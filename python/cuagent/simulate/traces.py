"""Reading the public cluster traces the simulator is driven by.

Each reader takes a path (never a built-in location: the product ships no data) and returns
plain numpy arrays. A file that cannot be used raises :class:`TraceError` with one line that
names the file and what is wrong with it.

- :func:`read_pods`: Alibaba's 2023 GPU pod list (``openb_pod_list_*.csv``, FGD, ATC'23):
  arrival, run time, GPUs, GPU share (``gpu_milli``), QoS class.
- :func:`read_node_gpus`: the GPU count of a node list (``openb_node_list_gpu_node.csv``).
- :func:`read_series`: per-pod series of Alibaba's 2026 GenAI trace (GPU duty cycle, memory
  used), one value about every minute.
- :func:`read_cdfs`: utilisation CDFs (``cluster, metric, value_pct, cdf_pct``; AcmeTrace,
  NSDI'24, and others).
- :func:`read_pair_throughputs`: Gavel's measured throughputs of jobs alone and in pairs.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator, Optional, Union

import numpy as np

PathLike = Union[str, Path]

#: QoS classes read as latency-sensitive (services: fixed lifetime, slowdown = mean 1/speed);
#: every other class is batch (fixed work, slowdown = run time / run time alone).
LATENCY_SENSITIVE_QOS = ("LS", "Guaranteed")


class TraceError(ValueError):
    """A trace file that cannot be used as given (the message names the file)."""


def _open_text(path: PathLike) -> IO[str]:
    """A text file, gzip or plain (told apart by its first bytes, not its name)."""
    p = Path(path)
    try:
        with p.open("rb") as raw:
            head = raw.read(2)
        if head == b"\x1f\x8b":
            return gzip.open(p, "rt", encoding="utf-8", newline="")
        return p.open("r", encoding="utf-8", newline="")
    except OSError as e:
        raise TraceError(f"{p}: cannot open ({e.strerror or e})") from None


def _rows(path: PathLike, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV file (plain or gzip) whose header has every ``required`` column."""
    f = _open_text(path)
    try:
        try:
            first = f.readline()
        except (OSError, EOFError, UnicodeDecodeError) as e:
            raise TraceError(f"{path}: not a readable CSV ({e})") from None
        header = next(csv.reader([first]), [])
        header = [h.strip() for h in header]
        missing = [c for c in required if c not in header]
        if missing:
            raise TraceError(f"{path}: missing column(s) {missing}; found {header}")
        reader = csv.DictReader(f, fieldnames=header)
        line = 1
        try:
            for line, row in enumerate(reader, start=2):
                if all(not (v or "").strip() for v in row.values() if isinstance(v, str)):
                    continue  # a blank line
                yield line, row
        except (csv.Error, UnicodeDecodeError, OSError, EOFError) as e:
            raise TraceError(f"{path}: unreadable after line {line}: {e}") from None
    finally:
        f.close()


def _number(path: PathLike, line: int, column: str, text: Optional[str], allow_empty: bool = False) -> float:
    text = (text or "").strip()
    if not text:
        if allow_empty:
            return math.nan
        raise TraceError(f"{path}:{line}: column {column} is empty")
    try:
        v = float(text)
    except ValueError:
        raise TraceError(f"{path}:{line}: column {column}: {text!r} is not a number") from None
    if not math.isfinite(v):
        raise TraceError(f"{path}:{line}: column {column}: {text!r} is not finite")
    return v


# --------------------------------------------------------------------------- pods


@dataclass
class Pods:
    """GPU pods that ran, in arrival order (arrays of equal length).

    ``arrival`` and ``duration`` in seconds; ``gpus`` whole GPUs (1 for a shared pod);
    ``milli`` the GPU share per GPU (1000 = a whole GPU; memory and compute share in
    Alibaba's GPU sharing); ``ls`` latency-sensitive (QoS LS or Guaranteed)."""

    name: list[str]
    arrival: np.ndarray  # float64 s, from the first arrival
    duration: np.ndarray  # float64 s, run time as observed (deletion - scheduled)
    gpus: np.ndarray  # int64
    milli: np.ndarray  # int64, per GPU
    ls: np.ndarray  # bool
    skipped: dict[str, int]  # why rows were left out -> count

    def __len__(self) -> int:
        return len(self.name)

    def subset(self, idx: np.ndarray) -> "Pods":
        return Pods([self.name[i] for i in idx], self.arrival[idx], self.duration[idx], self.gpus[idx],
                    self.milli[idx], self.ls[idx], dict(self.skipped))


POD_COLUMNS = ("name", "num_gpu", "gpu_milli", "qos", "creation_time", "deletion_time", "scheduled_time")


def read_pods(path: PathLike, limit: Optional[int] = None) -> Pods:
    """The pods of an Alibaba ``openb_pod_list`` CSV that asked for GPUs and were scheduled.

    Left out (and counted in ``skipped``): pods without GPUs, pods never scheduled (no
    ``scheduled_time``: no run time is known), and pods whose run time is not positive.
    ``limit``: read only the first this many rows (for excerpts)."""
    names: list[str] = []
    arrival, duration, gpus, milli, ls = [], [], [], [], []
    skipped = {"no GPU": 0, "never scheduled": 0, "no run time": 0}
    for n, (line, row) in enumerate(_rows(path, POD_COLUMNS)):
        if limit is not None and n >= limit:
            break
        g = _number(path, line, "num_gpu", row["num_gpu"])
        m = _number(path, line, "gpu_milli", row["gpu_milli"])
        if g < 0 or not float(g).is_integer():
            raise TraceError(f"{path}:{line}: column num_gpu: {row['num_gpu']!r} must be a whole number >= 0")
        if not 0 <= m <= 1000:
            raise TraceError(f"{path}:{line}: column gpu_milli: {row['gpu_milli']!r} must be in [0, 1000]")
        if g == 0 or m == 0:
            skipped["no GPU"] += 1
            continue
        if g > 1 and m != 1000:
            raise TraceError(f"{path}:{line}: {int(g)} GPUs with gpu_milli {int(m)}: a multi-GPU pod takes whole GPUs")
        created = _number(path, line, "creation_time", row["creation_time"])
        deleted = _number(path, line, "deletion_time", row["deletion_time"], allow_empty=True)
        scheduled = _number(path, line, "scheduled_time", row["scheduled_time"], allow_empty=True)
        if math.isnan(scheduled):
            skipped["never scheduled"] += 1
            continue
        run = deleted - scheduled
        if math.isnan(run) or run <= 0:
            skipped["no run time"] += 1
            continue
        names.append(row["name"])
        arrival.append(created)
        duration.append(run)
        gpus.append(int(g))
        milli.append(int(m))
        ls.append(row["qos"].strip() in LATENCY_SENSITIVE_QOS)
    if not names:
        raise TraceError(f"{path}: no pod that asked for a GPU and was scheduled")
    a = np.asarray(arrival, np.float64)
    order = np.argsort(a, kind="stable")
    a = a - a[order[0]]
    pods = Pods(names, a, np.asarray(duration, np.float64), np.asarray(gpus, np.int64),
                np.asarray(milli, np.int64), np.asarray(ls, bool), skipped)
    return pods.subset(order)


def read_node_gpus(path: PathLike) -> int:
    """Total GPUs of a node list (column ``gpu``)."""
    total = 0
    for line, row in _rows(path, ("gpu",)):
        g = _number(path, line, "gpu", row["gpu"])
        if g < 0 or not g.is_integer():
            raise TraceError(f"{path}:{line}: column gpu: {row['gpu']!r} must be a whole number >= 0")
        total += int(g)
    if total == 0:
        raise TraceError(f"{path}: no GPUs listed")
    return total


# --------------------------------------------------------------------------- series


def read_series(path: PathLike, value: str = "value", key: str = "container_ip",
                time_col: str = "timestamp_anon", cadence_s: float = 60.0) -> dict[str, np.ndarray]:
    """Per key (pod), its values in time order resampled onto a ``cadence_s`` grid (the last
    value at or before each grid point; a pod's series starts at its first sample)."""
    by_key: dict[str, list[tuple[float, float]]] = {}
    for line, row in _rows(path, (value, key, time_col)):
        t = _number(path, line, time_col, row[time_col])
        v = _number(path, line, value, row[value])
        by_key.setdefault(row[key], []).append((t, v))
    if not by_key:
        raise TraceError(f"{path}: no samples")
    out: dict[str, np.ndarray] = {}
    for k in sorted(by_key):
        samples = sorted(by_key[k])
        times = np.array([s[0] for s in samples])
        values = np.array([s[1] for s in samples])
        grid = np.arange(times[0], times[-1] + cadence_s / 2, cadence_s)
        idx = np.clip(np.searchsorted(times, grid, side="right") - 1, 0, times.size - 1)
        out[k] = values[idx]
    return out


# --------------------------------------------------------------------------- CDFs


def read_cdfs(path: PathLike) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """(cluster, metric) -> (values in [0, 1], cumulative shares in [0, 1]), sorted by share."""
    raw: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for line, row in _rows(path, ("cluster", "metric", "value_pct", "cdf_pct")):
        v = _number(path, line, "value_pct", row["value_pct"])
        c = _number(path, line, "cdf_pct", row["cdf_pct"])
        if not (0 <= v <= 100 and 0 <= c <= 100):
            raise TraceError(f"{path}:{line}: value_pct and cdf_pct must be in [0, 100]")
        raw.setdefault((row["cluster"].strip(), row["metric"].strip()), []).append((c, v))
    if not raw:
        raise TraceError(f"{path}: no CDF points")
    out: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    for k, pts in raw.items():
        pts.sort()
        shares = np.array([p[0] for p in pts]) / 100.0
        # A few source CDFs are not monotonic in value: the running maximum is the CDF's
        # quantile function read as it must be (non-decreasing).
        values = np.maximum.accumulate(np.array([p[1] for p in pts]) / 100.0)
        out[k] = (values, shares)
    return out


# --------------------------------------------------------------------------- pairs


@dataclass
class PairThroughputs:
    """Gavel's measurements on one GPU type: each job type's throughput alone and, for pairs,
    each side's throughput when the two share the GPU."""

    jobs: list[str]
    alone: np.ndarray  # [jobs]
    pair: np.ndarray  # [jobs, jobs]: throughput of row job beside column job; NaN: not measured

    def factors(self) -> np.ndarray:
        """[jobs, jobs]: row job's speed beside column job relative to alone (NaN: not measured)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.pair / self.alone[:, None]


def read_pair_throughputs(path: PathLike, gpu: str = "v100") -> PairThroughputs:
    """Single-GPU job types (scale factor 1) on ``gpu`` from Gavel's
    ``simulation_throughputs.json``; a pair measured as 0 (it did not run) is NaN."""
    try:
        with _open_text(path) as f:
            data = json.load(f)
    except (ValueError, UnicodeDecodeError, OSError) as e:
        if isinstance(e, TraceError):
            raise
        raise TraceError(f"{path}: not a JSON object of throughputs ({e})") from None
    if not isinstance(data, dict) or gpu not in data or not isinstance(data[gpu], dict):
        known = sorted(data) if isinstance(data, dict) else []
        raise TraceError(f"{path}: no GPU type {gpu!r}; found {known}")
    table: dict[str, Any] = data[gpu]

    def job(key: str) -> Optional[str]:
        # Keys are Python tuple reprs: "('ResNet-50 (batch size 64)', 1)".
        k = key.strip()
        if not (k.startswith("(") and k.endswith(")")) or "," not in k:
            return None
        name, _, scale = k[1:-1].rpartition(",")
        return name.strip().strip("'\"") if scale.strip() == "1" else None

    jobs = sorted(j for k in table if (j := job(k)) is not None and isinstance(table[k], dict)
                  and isinstance(table[k].get("null"), (int, float)) and table[k]["null"] > 0)
    if len(jobs) < 2:
        raise TraceError(f"{path}: fewer than two single-GPU job types measured on {gpu}")
    index = {j: i for i, j in enumerate(jobs)}
    alone = np.zeros(len(jobs))
    pair = np.full((len(jobs), len(jobs)), np.nan)
    for key, entry in table.items():
        a = job(key)
        if a not in index or not isinstance(entry, dict):
            continue
        alone[index[a]] = float(entry["null"])
        for other, v in entry.items():
            b = job(other)
            if b in index and isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
                if v[0] > 0 and v[1] > 0:
                    pair[index[a], index[b]] = float(v[0])
    return PairThroughputs(jobs, alone, pair)
