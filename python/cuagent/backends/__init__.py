"""Driver factories, one module per backend: each exposes make_driver(devices, seed, **options)."""
