"""Following the feed, the client side: one :class:`~cuagent.feed.session.Session` per
upstream (join, gaps, resync), the :class:`~cuagent.feed.view.ClusterView` they keep, and the
thin :class:`~cuagent.feed.client.Client` that composes them (public path: ``cuagent.client``).
Consumers (exporters, the relay's :class:`~cuagent.feed.frame_cache.FrameCache`) attach
through ``Client.on_update`` and ``Client.observe``."""
