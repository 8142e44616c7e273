"""Outputs: consumers of the feed that present it to people and other tools, each reading a
client's view through its public hooks (``Client.on_update``, ``Client.observe``).

``top`` draws a live terminal view of any agent or relay (``cuagent top``); ``prometheus`` serves ``/metrics`` (from the agent's own process or for any agent or relay);
``unit_seconds`` integrates element states into unit-seconds; ``names`` turns the wire's
counter names and units into Prometheus names; ``feed_metrics`` is what the exporter knows
about each node and device, fed by either source.
"""
