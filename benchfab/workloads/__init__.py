"""Workloads a worker can run. ``catalog`` is pure data; ``collectives`` needs torch."""
