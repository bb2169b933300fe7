"""benchfab: benchmarks for the accelerated fabric of GPU clusters.

Public API::

    import benchfab
    spec = benchfab.load_spec("jobs/local.yaml")
    run = benchfab.load_run("latest")          # a run id, prefix, path or "latest"
    run.summary, run.raw, run.tests            # pandas DataFrames
    allruns = benchfab.load_runs("results")    # every run's summary rows
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import BenchfabError, SpecError
from .version import __version__

if TYPE_CHECKING:
    from .backends.registry import load_spec
    from .spec import SweepSpec
    from .store import Run, load_run, load_runs

# The spec and store modules pull in pydantic and pandas. Workers (``python -m
# benchfab.worker``, in pods too) need neither, and importing pandas costs seconds
# on small or emulated machines, so the public names load on first use.
_LAZY = {
    "SweepSpec": "spec",
    "load_spec": "backends.registry",  # the spec with its backend's section checked
    "Run": "store",
    "load_run": "store",
    "load_runs": "store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'benchfab' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "BenchfabError",
    "Run",
    "SpecError",
    "SweepSpec",
    "__version__",
    "load_run",
    "load_runs",
    "load_spec",
]
