"""Where the agent's per-window bytes come from: each device's ``state`` body, encoded once,
and the node summary's records (PROTOCOL.md §3.2, §3.5).

An engine with the core's encoder (``Engine.latest_states``) writes every body in C++ straight
from its window buffers, in one call per publish pass, and the summary's records from the same
windows (``Engine.summary_records``), so the agent's per-window Python work is a send; the
slow-path entries only Python knows (processes, pods) are packed here and appended as they
are. An engine without it (a test's scripted engine) goes through the Python reference
encoders over its snapshot. Both give the same bytes (tests/test_state_encoder.py,
tests/test_summary_core.py) and the same stamps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Collection, Mapping, NamedTuple, Optional, Sequence

from .. import wire
from .summary import SummaryBuilder

if TYPE_CHECKING:
    from ..engine import StateWindow
    from ..topology import DeviceState, DeviceTopology

NEVER = (1 << 63) - 1
"""``newer_than_ns`` that no window passes: only its stamp is read, nothing is encoded."""
ANY = -(1 << 63)
"""``newer_than_ns`` that every window passes."""

Entries = Optional[Sequence[Mapping[str, Any]]]


class StateExtras(NamedTuple):
    """A device's ``processes`` and ``pods`` (None: the key is left out), and both packed."""

    processes: Entries
    pods: Entries
    packed: bytes
    entries: int


NO_EXTRAS = StateExtras(None, None, b"", 0)


class StateBodies:
    """The agent's state windows, one publish pass at a time (:meth:`latest`).

    Processes and pods change about once a second (the slow path queries that often and
    hands out the same list in between), windows ten times or more: each device's pair is
    packed once and reused while the same objects come back (:meth:`extras`). The slow path
    must therefore never change a list it has handed out (it replaces it)."""

    def __init__(self) -> None:
        self._extras: dict[int, StateExtras] = {}
        # The Python path's windows of the last pass, and its summary builder with the
        # topology it was made for (the agent replaces its list when the topology changes).
        self._snapshot: Sequence[Optional[DeviceState]] = ()
        self._builder: Optional[tuple[Sequence[DeviceTopology], SummaryBuilder]] = None

    def extras(self, device: int, processes: Entries, pods: Entries) -> StateExtras:
        last = self._extras.get(device)
        if last is not None and last.processes is processes and last.pods is pods:
            return last
        # Holding the objects keeps their identity from passing to new ones.
        packed, entries = wire.encode_state_extras(processes, pods)
        extras = self._extras[device] = StateExtras(processes, pods, packed, entries)
        return extras

    def latest(self, engine: Any, counters: Sequence[Mapping[str, Any]], newer_than_ns: Sequence[int],
               extras: Sequence[StateExtras]) -> Sequence[Optional[StateWindow]]:
        """Per device of ``engine``: its latest window, with its body where it ended after
        ``newer_than_ns[i]``. ``counters``: each device's topo counters (for the Python
        encoder; the core's knows them from the description)."""
        native = getattr(engine, "latest_states", None)
        if native is not None:
            windows: Sequence[Optional[StateWindow]] = native(newer_than_ns, [x.packed for x in extras],
                                                              [x.entries for x in extras])
            return windows
        out: list[Optional[StateWindow]] = []
        self._snapshot = engine.snapshot()
        for i, st in enumerate(self._snapshot[:len(newer_than_ns)]):
            if st is None:
                out.append(None)
                continue
            body = None
            if st.t_ns > newer_than_ns[i]:
                x = extras[i]
                body = wire.pack(wire.encode_state_body(st, counters[i], x.processes, x.pods))
            out.append((st.window_seq, st.t_ns, st.window_ns, st.windows_missed, body))
        return out

    def summary_records(self, engine: Any, topology: Sequence[DeviceTopology], lost: Collection[str],
                        now_ns: int) -> bytes:
        """The node summary's records at ``now_ns``, from the windows of the last pass."""
        if getattr(engine, "summary_records", None) is not None:
            records: bytes = engine.summary_records(now_ns, [d.id in lost for d in topology])
            return records
        if self._builder is None or self._builder[0] is not topology:
            self._builder = (topology, SummaryBuilder(topology))
        return bytes(self._builder[1].records(self._snapshot, lost, now_ns).tobytes())
