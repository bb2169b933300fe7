"""Backend name -> factory: the spec's ``backend`` picks one.

Factories import their backend on first use: ``kubernetes`` (the package) is
loaded only for a Kubernetes spec, never for a local sweep or in a worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import BackendError
from ..spec import SweepSpec
from .base import Backend

if TYPE_CHECKING:
    from .kubernetes.client import ClusterOptions

Factory = Callable[[SweepSpec, "ClusterOptions | None"], Backend]


def _local(spec: SweepSpec, cluster: ClusterOptions | None) -> Backend:
    from .local import LocalBackend

    return LocalBackend()


def _kubernetes(spec: SweepSpec, cluster: ClusterOptions | None) -> Backend:
    from .kubernetes.backend import KubernetesBackend

    return KubernetesBackend(spec, cluster)


BACKENDS: dict[str, Factory] = {"local": _local, "kubernetes": _kubernetes}


def make_backend(spec: SweepSpec, cluster: ClusterOptions | None = None) -> Backend:
    """The spec's backend; ``cluster`` (kubeconfig, context, namespace) is for Kubernetes only."""
    factory = BACKENDS.get(spec.backend)
    if factory is None:
        raise BackendError(f"backend {spec.backend!r} is not available", hint="use backend: local or kubernetes")
    return factory(spec, cluster)
