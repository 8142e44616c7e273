"""Driver factories, one module per backend: ``make_driver(devices, seed, **options)``."""
