"""The Kubernetes backend as the registry knows it: its name, its section's model
(``kubernetes:``, options.py), its rules for a spec and its factory (imported lazily: the
kubernetes client loads only for a Kubernetes sweep)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...workloads import Problem
from ..base import BackendKind
from .client import ClusterOptions
from .options import KubeOptions

if TYPE_CHECKING:
    from ...spec import SweepSpec
    from ..base import Backend


class Kubernetes(BackendKind):
    name = "kubernetes"
    options = KubeOptions

    def spec_problems(self, spec: SweepSpec) -> list[Problem]:
        if not spec.image:
            return [Problem("image", "backend kubernetes needs the worker image",
                            "add image: <registry>/benchfab-worker:<tag>")]
        return []

    def make(self, spec: SweepSpec, access: object | None) -> Backend:
        from .backend import KubernetesBackend

        return KubernetesBackend(spec, access if isinstance(access, ClusterOptions) else None)


KUBERNETES = Kubernetes()
