"""The client's compact view of every node's summary (PROTOCOL.md §3.5): one structured array
per node, as it came off the wire, and the cluster-wide questions a scheduler of many GPUs asks
of them in a few numpy calls (every idle_units at once, one table of every record).

    view = client.view
    ns = view.summaries["node-a"]        # NodeSummary: records, ts, seq, gen, device ids
    ns.records["idle_units"]             # float32 per device, NaN when unknown or lost
    idle = view.summaries.idle_units()   # every device of every node, one array (NaN: not current)
    table = view.summaries.table()       # SummaryTable: records + node / device of each row
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Mapping, Optional

import numpy as np

from ..wire import Header, ProtocolError
from ..wire.summary import MAX_AGE_MS, RECORD_DTYPE, RECORD_SIZE, STATUS_OK, WINDOW, records_dtype, summary_records
from .freshness import STALE_AFTER_S

if TYPE_CHECKING:
    from .view import NodeView


class NodeSummary:
    """A node's latest summary. ``records`` (read-only, :data:`cuagent.wire.RECORD_DTYPE`)
    are in the order of the node's topo devices of generation ``gen``; ``devices`` names them
    when the client holds that topo (None otherwise: positions only). ``ts`` is the header's:
    when the summary was made (each record's window ended ``age_ms`` before).

    The records stay the bytes that came off the wire until first asked for: making a numpy
    array is most of what taking in a summary costs, and a scheduler of many nodes reads
    them through :meth:`Summaries.table`, which joins the bytes of all nodes at once."""

    __slots__ = ("node", "ts", "seq", "gen", "raw", "devices", "_records", "_ids_of")

    def __init__(self, node: str, ts: int, seq: int, gen: int, raw: bytes,
                 devices: Optional[tuple[str, ...]] = None) -> None:
        self.node, self.ts, self.seq, self.gen = node, ts, seq, gen
        self.raw = raw  # layout-1 records, RECORD_SIZE bytes each
        self.devices = devices
        self._records: Optional[np.ndarray] = None
        # The node's device map ``devices`` was read from (Summaries.apply_records): while the
        # node's view holds that same map, the next summary takes the same tuple.
        self._ids_of: Optional[Mapping[str, object]] = None

    @property
    def records(self) -> np.ndarray:
        if self._records is None:
            self._records = np.frombuffer(self.raw, RECORD_DTYPE)
        return self._records

    def __len__(self) -> int:
        return len(self.raw) // RECORD_SIZE

    def __repr__(self) -> str:
        return f"NodeSummary({self.node!r}, seq={self.seq}, gen={self.gen}, devices={len(self)})"

    def record(self, device: str) -> np.void:
        """The record of one device (by id; needs ``devices``)."""
        if self.devices is None:
            raise KeyError(f"{self.node}: no topo of gen {self.gen} held, so no device ids")
        row: np.void = self.records[self.devices.index(device)]
        return row


@dataclass
class SummaryTable:
    """Every record of every node in one array; row i is ``nodes[node_index[i]]``'s device
    number ``position[i]`` (its id: ``device_id(i)``)."""

    nodes: list[str]
    node_index: np.ndarray  # int32 per row
    position: np.ndarray  # int32 per row: index in its node's records
    records: np.ndarray
    _summaries: Mapping[str, NodeSummary]

    def __len__(self) -> int:
        return int(self.records.shape[0])

    def device_id(self, row: int) -> Optional[str]:
        s = self._summaries[self.nodes[int(self.node_index[row])]]
        return None if s.devices is None else s.devices[int(self.position[row])]


class Summaries(Mapping[str, NodeSummary]):
    """node -> :class:`NodeSummary`, filled by the client as ``sum`` messages are applied.
    ``nodes`` is the view's node map (for device ids and staleness)."""

    def __init__(self, nodes: Mapping[str, NodeView]) -> None:
        self._by_node: dict[str, NodeSummary] = {}
        self._nodes = nodes
        # Tables built since the last change, by the stale nodes they leave out.
        self._tables: dict[frozenset[str], SummaryTable] = {}

    def __getitem__(self, node: str) -> NodeSummary:
        return self._by_node[node]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_node)

    def __len__(self) -> int:
        return len(self._by_node)

    # ------------------------------------------------------------------ filled by the session
    def apply(self, node: str, header: Header, body: object) -> NodeSummary:
        """Check a ``sum`` body and make it the node's summary (the session has checked its
        seq: it is newer than the one held). Raises ProtocolError for a bad body."""
        raw, size = summary_records(body)
        if size != RECORD_SIZE:  # a later agent's wider records: keep their first 47 bytes
            raw = np.frombuffer(raw, records_dtype(size)).astype(RECORD_DTYPE).tobytes()
        return self.apply_records(node, header, raw)

    def apply_records(self, node: str, header: Header, raw: bytes) -> NodeSummary:
        """:meth:`apply` of a body already checked: ``raw`` is its records, 47 bytes each.
        Raises ProtocolError when they are not as many as the devices of the node's topo of
        their gen."""
        n = len(raw) // RECORD_SIZE
        nv = self._nodes.get(node)
        devices = ids_of = None
        if nv is not None and nv.gen == header.gen:
            ids_of = nv.devices
            prev = self._by_node.get(node)
            # The ids of the map the last summary read, when the view still holds that map (a
            # topo applied makes a new one): a node's summaries, one per window, do not read
            # every device's id again (the id strings of thousands of nodes are cold memory).
            # The summary holds that map until the next one: one map per node, at most.
            held = prev.devices if prev is not None and prev._ids_of is ids_of else None
            devices = held if held is not None else tuple(ids_of)
            if len(devices) != n:
                raise ProtocolError("sum.records", f"{n} records for the {len(ids_of)} devices "
                                    f"of {node}'s topo of gen {header.gen}")
        ns = self._by_node[node] = NodeSummary(node, header.ts, header.seq, header.gen, raw, devices)
        ns._ids_of = ids_of
        self._tables.clear()
        return ns

    def forget(self, node: str) -> None:
        if self._by_node.pop(node, None) is not None:
            self._tables.clear()

    # ------------------------------------------------------------------ cluster-wide
    def table(self, include_stale: bool = False) -> SummaryTable:
        """Every record of every node (of nodes not stale, unless ``include_stale``), in one
        array. Built once per change, then shared: treat it as read-only."""
        # Staleness changes without a message (no heartbeat for 3 s): asked each time.
        stale = frozenset() if include_stale else frozenset(n for n, nv in self._nodes.items() if nv.stale)
        cached = self._tables.get(stale)
        if cached is not None:
            return cached
        held = [s for s in self._by_node.values() if s.node not in stale]
        sizes = np.fromiter((len(s) for s in held), np.int64, len(held))
        # The nodes' bytes joined, then one frombuffer (numpy's concatenate of structured
        # arrays checks the dtypes of each of thousands of small arrays: 40 us apiece).
        records = np.frombuffer(b"".join([s.raw for s in held]), RECORD_DTYPE)
        node_index = np.repeat(np.arange(len(held), dtype=np.int32), sizes)
        starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
        position = (np.arange(len(records)) - starts).astype(np.int32)
        table = self._tables[stale] = SummaryTable([s.node for s in held], node_index, position, records,
                                                           self._by_node)
        return table

    def idle_units(self, include_stale: bool = False, max_age_s: float = STALE_AFTER_S) -> np.ndarray:
        """Every device's idle units (float32, one per row of :meth:`table`); NaN where not
        measured, for a device whose status is not ok (it is not available, §3.1), and for one
        whose window was more than ``max_age_s`` old when the summary was made (its
        ``age_ms``: a device whose reads hang keeps its last window, and its node keeps
        publishing; 65534, "that or more", is older than any limit).

        The age is the agent's own (``age_ms``, against the summary's ``ts`` on the same clock),
        so no two hosts' clocks are compared. How old the summary itself is, is not added: a
        node that stops publishing goes stale by its heartbeats (left out unless
        ``include_stale``), and a relay that forwards one summary per interval serves older
        summaries on purpose. The agent summarises right after its windows, so a device
        keeping up has an ``age_ms`` near 0 whatever the publish interval."""
        rec = self.table(include_stale).records
        limit_ms = min(max_age_s * 1000.0, MAX_AGE_MS - 1)
        ok = (rec["status"] == STATUS_OK) & ((rec["flags"] & WINDOW) != 0) & (rec["age_ms"] <= limit_ms)
        return np.where(ok, rec["idle_units"], np.float32(np.nan)).astype(np.float32)
