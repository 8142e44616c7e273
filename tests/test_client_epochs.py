"""A node's old epoch after its restart (PROTOCOL.md §4): a message of the epoch the node has
left — sent by the old process just before it died, still queued or in flight — is dropped,
never taken for another restart (which would discard the node's new state and resync it back
to a dead epoch, over and over while such messages keep coming)."""

from __future__ import annotations

from typing import Any

import zmq

from cuagent.client import Client
from test_summary_fast import Agent, snapshot


def test_a_message_of_the_epoch_a_node_left_is_dropped_not_taken_for_a_restart() -> None:
    ctx: zmq.Context[Any] = zmq.Context()
    old = Agent("node-a", 5)
    old.topo()
    c = Client(["inproc://unused-epochs,inproc://unused-epochs-sync"], context=ctx)
    try:
        session = c.sessions[0]
        snapshot({"node-a": old}, c)
        assert c.view.nodes["node-a"].epoch == 5
        late = old.topo()  # the old process's last message, delivered after the restart
        new = Agent("node-a", 7)
        session.receive(new.topo())  # the restart: the node is discarded and joined again
        snapshot({"node-a": new}, c)
        assert c.view.nodes["node-a"].epoch == 7 and c.stats.restarts == 1
        applied = c.stats.applied

        session.receive(late)
        assert c.stats.restarts == 1 and c.stats.old_epoch == 1
        assert c.view.nodes["node-a"].epoch == 7 and c.stats.applied == applied
        assert "node-a" not in session.resyncing

        # The new epoch goes on as before.
        session.receive(new.topo())
        assert c.stats.applied == applied + 1 and c.view.nodes["node-a"].epoch == 7
    finally:
        c.close()
        ctx.term()
