"""The Kubernetes backend: inventory, manifests, pods that run ranks, preflight.

Only this subpackage imports ``kubernetes``; the planner and the worker do not.
See docs/KUBERNETES.md for the design (long-lived agent pods, one per (node, slot),
that pull their next test from an annotation on their own pod).
"""
