"""A node of the feed, the server side: the :class:`~cuagent.node.agent.Agent` (publishes one
machine's devices) and the :class:`~cuagent.node.relay.Relay` (re-serves many agents), both on
one :class:`~cuagent.node.server.FeedServer` (bound sockets, bounded subscriptions, sync
answers). The client side lives in :mod:`cuagent.feed`; both speak :mod:`cuagent.wire`."""
