"""Benchmarks: each prints its figures side by side; run as ``python -m bench.NAME``."""
