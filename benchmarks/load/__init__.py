"""Load and fault runs of the bookstore under gunicorn on loopback: ``python -m benchmarks.load.run_load``."""
