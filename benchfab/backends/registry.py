"""The backends: the spec's ``backend`` picks one of ``BACKENDS``.

Each entry is a ``BackendKind`` (base.py) declared by its backend: its name, the model of
its spec section, its spec rules and its factory, which imports the backend itself on
first use (the kubernetes client loads only for a Kubernetes spec, never for a local
sweep or in a worker). Adding a backend: its module or package, and one line below.

A spec is read through ``load_spec`` / ``load_spec_text`` here, which hand the backends to
benchfab.spec: ``backend:`` must name one, and its section is validated by its model.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import BackendError
from ..spec import SweepSpec
from ..spec import load_spec as _load_spec
from ..spec import load_spec_text as _load_spec_text
from .base import Backend, BackendKind
from .kubernetes.kind import KUBERNETES
from .local import LOCAL

BACKENDS: tuple[BackendKind, ...] = (LOCAL, KUBERNETES)


def backend_kind(name: str) -> BackendKind:
    for kind in BACKENDS:
        if kind.name == name:
            return kind
    raise BackendError(f"backend {name!r} is not available",
                       hint=f"use backend: {' or '.join(k.name for k in BACKENDS)}")


def make_backend(spec: SweepSpec, access: object | None = None) -> Backend:
    """The spec's backend; ``access`` (the command line's --kubeconfig, --context, --namespace as
    ClusterOptions) is for the backends that reach a cluster."""
    return backend_kind(spec.backend).make(spec, access)


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a spec file, its backend's section and rules included (SpecError, exit 2)."""
    return _load_spec(path, backends=BACKENDS)


def load_spec_text(text: str, *, source: str = "<spec>") -> SweepSpec:
    """``load_spec`` for spec text."""
    return _load_spec_text(text, source=source, backends=BACKENDS)
