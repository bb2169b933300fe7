"""benchfab: benchmarks for the accelerated fabric of GPU clusters.

Public API::

    import benchfab
    spec = benchfab.load_spec("jobs/local.yaml")
    run = benchfab.load_run("latest")          # a run id, prefix, path or "latest"
    run.summary, run.raw, run.tests            # pandas DataFrames
    allruns = benchfab.load_runs("results")    # every run's summary rows
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import BenchfabError, SpecError  # noqa: E402
from .spec import SweepSpec, load_spec  # noqa: E402
from .store import Run, load_run, load_runs  # noqa: E402

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
