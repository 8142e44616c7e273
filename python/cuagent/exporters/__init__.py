"""Outputs: consumers of the feed that present it to other tools.

``prometheus`` serves ``/metrics`` (from the agent's own process or for any agent or relay);
``unit_seconds`` integrates element states into unit-seconds; ``names`` turns the wire's
counter names and units into Prometheus names; ``feed_metrics`` is what the exporter knows
about each node and device, fed by either source.
"""
