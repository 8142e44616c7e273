"""Where the agent's ``state`` bodies come from: each device's latest window, encoded once.

An engine with the core's encoder (``Engine.latest_states``) writes every body in C++ straight
from its window buffers, in one call per publish pass, so the agent's per-window Python work
is a send; the slow-path entries only Python knows (processes, pods) are packed here and
appended as they are. An engine without it (a test's scripted engine) goes through the Python
reference encoder over its snapshot. Both give the same bytes (tests/test_state_encoder.py)
and the same stamps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, NamedTuple, Optional, Sequence

from .. import wire

if TYPE_CHECKING:
    from ..engine import StateWindow

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
        for i, st in enumerate(engine.snapshot()[:len(newer_than_ns)]):
            if st is None:
                out.append(None)
                continue
            body = None
            if st.t_ns > newer_than_ns[i]:
                x = extras[i]
                body = wire.pack(wire.encode_state_body(st, counters[i], x.processes, x.pods))
            out.append((st.window_seq, st.t_ns, st.window_ns, st.windows_missed, body))
        return out
