"""Backends place a test's ranks somewhere and watch them. ``local`` is the embedded default.

Nothing is imported here on purpose: the Kubernetes agent (``python -m
benchfab.backends.kubernetes.agent``) passes through this package and must reach
its first start-up record before pydantic (spec) is loaded. Import from
``benchfab.backends.base`` / ``benchfab.backends.registry`` instead.
"""
