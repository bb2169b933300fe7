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
    from ...spec import SweepSpec, TestSpec
    from ..base import Backend


class Kubernetes(BackendKind):
    name = "kubernetes"
    options = KubeOptions

    def spec_problems(self, spec: SweepSpec) -> list[Problem]:
        if not spec.image:
            return [Problem("image", "backend kubernetes needs the worker image",
                            "add image: <registry>/benchfab-worker:<tag>")]
        return []

    def test_problems(self, test: TestSpec) -> list[Problem]:
        if test.placement.pattern == "local":
            # The default pattern places every rank on one host, which a cluster has not: say where they go.
            return [Problem("placement", "a kubernetes test needs a placement (the default, pattern 'local', "
                            "runs every rank on this host)",
                            "add e.g. placement: {pattern: all-pairs} (point-to-point), {pattern: group, nodes: 2} "
                            "(collectives), or ring, k-groups, topology", ("backend",))]
        return []

    def make(self, spec: SweepSpec, access: object | None) -> Backend:
        from .backend import KubernetesBackend

        return KubernetesBackend(spec, access if isinstance(access, ClusterOptions) else None)


KUBERNETES = Kubernetes()
