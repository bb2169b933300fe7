"""What a workload family owns, so that nothing outside ``benchfab.workloads`` branches
on which family a test belongs to.

A family is a set of workloads that share semantics end to end: collectives
(torch.distributed, nccl-tests semantics) and point-to-point (verbs/tcp pairs,
perftest semantics). Each family object answers, for its workloads, every question
the spec loader, planner, capability check, worker, sweep, tables and report ask.
The registry (``benchfab.workloads.family_of``) maps a workload name to its family;
adding a workload means adding it to one family, adding a family means one entry
in ``benchfab/workloads/__init__.py``.

This module imports neither torch nor pandas: the spec loader and ``benchfab plan``
use the families, and a family imports its heavy modules inside the methods that
need them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from ..records import SCHEMA_VERSION, env_label
from .catalog import is_gpu_memory

if TYPE_CHECKING:
    import pandas as pd

    from ..costs import CostModel
    from ..records import SummaryRow, TestOutcome
    from ..task import Task


# What a family reads of the objects the layers above it make: the spec's test
# (spec.TestView), a planned test (planner.PlannedView) and the host (capabilities.
# HostView). The spec, the planner and the capability check ask the families, so
# the families name these by what they read, not by their classes: the layers stay one
# way, type-checking imports too (tests/test_import_graph.py). Read-only properties, so
# the spec's Literal-typed fields satisfy them.


class RdmaView(Protocol):
    """The verbs settings of a test that a family reads (spec.RdmaOptions)."""

    @property
    def device(self) -> str | None: ...
    @property
    def bidirectional(self) -> bool | None: ...
    @property
    def qps(self) -> int | None: ...
    @property
    def out_reads(self) -> int | None: ...


class PlacementView(Protocol):
    """Where a test's ranks go (spec.Placement), as far as the families read it."""

    @property
    def gpus_per_node(self) -> int | None: ...
    @property
    def rails(self) -> int | None: ...


class TestView(Protocol):
    """A test as the spec resolved it (spec.TestView), as far as the families read it."""

    @property
    def name(self) -> str: ...
    @property
    def workload(self) -> str: ...
    @property
    def ranks(self) -> int: ...
    @property
    def sizes(self) -> Sequence[int]: ...
    @property
    def iterations(self) -> int | None: ...
    @property
    def duration(self) -> float | None: ...
    @property
    def warmup(self) -> int: ...
    @property
    def root(self) -> int: ...
    @property
    def in_place(self) -> Sequence[bool]: ...
    @property
    def check(self) -> bool: ...
    @property
    def device(self) -> str: ...
    @property
    def placement(self) -> PlacementView: ...
    @property
    def transport(self) -> str: ...
    @property
    def engine(self) -> str: ...
    @property
    def memory(self) -> str: ...
    @property
    def rdma(self) -> RdmaView: ...
    @property
    def env(self) -> Mapping[str, str]: ...


class ProfileView(Protocol):
    """A test's profile (spec.Profile), as far as its rows name it."""

    @property
    def fabric(self) -> str: ...
    @property
    def mode(self) -> str: ...


class PlannedView(Protocol):
    """A planned test (planner.PlannedView), as far as its rows and worker read it."""

    @property
    def test_id(self) -> str: ...
    @property
    def spec(self) -> TestView: ...
    @property
    def profile_name(self) -> str: ...
    @property
    def profile(self) -> ProfileView: ...
    @property
    def hosts(self) -> tuple[str, ...]: ...
    @property
    def dtype(self) -> str: ...
    @property
    def op(self) -> str: ...
    @property
    def rail(self) -> int | None: ...
    @property
    def rail_device(self) -> str | None: ...


class HostView(Protocol):
    """What this host offers (capabilities.HostView), as far as the families ask."""

    @property
    def gpus(self) -> int: ...
    @property
    def rdma_devices(self) -> tuple[str, ...]: ...
    @property
    def native(self) -> bool: ...
    @property
    def perftest(self) -> tuple[str, ...]: ...

class JudgedMetric(NamedTuple):
    """The summary column a comparison of two runs judges for a workload, its sense, and how
    the column is made from the per-iteration times: their "mean" (a bandwidth: bytes over
    the summed time; busbw: nccl-tests' mean time per op) or their "median" (perftest's
    t_typical). A comparison computes the same statistic over blocks of iterations to
    measure how much the figure moves within a run (benchfab.compare.noise)."""

    column: str
    higher_is_better: bool
    of_times: str = "mean"


class Problem(NamedTuple):
    """One thing wrong with a resolved test, as benchfab.spec reports it: the field to
    point at, what is wrong, the fix, and the other fields the check read (a check
    is left out when one of them was already reported broken)."""

    field: str
    message: str
    hint: str
    uses: tuple[str, ...] = ()


@dataclass(frozen=True)
class FigureSpec:
    """One report figure: a summary column against message size for some workloads, and
    what else the report and export draw from that column."""

    file: str
    column: str
    scale: float
    ylabel: str
    title: str
    workloads: tuple[str, ...]
    band: str | None = None  # a tail column drawn as a band above the line (p99 latency)
    # The column is a bandwidth: times this it is bit/s, comparable with the link's rate
    # (link_rate_bps), so comparisons add a "% of line rate" panel where the rate is known.
    bits_per_unit: float | None = None
    higher_is_better: bool = True
    # All-pairs runs: a node x node heatmap of the column at the "largest" size (bandwidth)
    # or the "smallest" (latency); None: no heatmap.
    pair_at: str | None = None
    # OpenMetrics key figure per measurement: its peak (higher is better) or its minimum,
    # as the gauge of this name (the name ends in the unit, e.g. _bytes_per_second).
    export_name: str | None = None
    export_unit: str | None = None

    @property
    def quantity(self) -> str:
        """What the column is, with its unit, without the axis label's notes (a heatmap's colour bar)."""
        return self.ylabel.split(";")[0]


@dataclass(frozen=True)
class RankContext:
    """Where one worker rank stands, and how it reports (benchfab.worker fills it in)."""

    rank: int
    world: int
    local_rank: int
    local_world: int
    addr: str
    port: int
    emit: Callable[[Mapping[str, Any]], None]  # one record (benchfab.records) to the controller
    log: Callable[[str], None]
    # The point-to-point engines' rank (benchfab.rdma.rank.run_point_to_point): the worker
    # hands it in, as the engines sit above the families in the layers and import them.
    run_pair: Callable[[Task, RankContext], None] | None = None


class WorkloadFamily(ABC):
    """The behaviour of one family of workloads; see the module docstring."""

    #: the workloads of this family, in the order the spec and help list them
    workloads: tuple[str, ...]
    #: names a user may type for a workload (the nccl-tests / perftest binaries)
    aliases: Mapping[str, str]
    #: report figures over this family's rows
    figures: tuple[FigureSpec, ...]
    #: what a waiting rank worker imports ahead (``benchfab.worker --serve --preload``), so a
    #: test pays neither for them nor for the process start (torch takes seconds)
    worker_modules: tuple[str, ...] = ()
    #: workloads whose rows only `benchfab import` stores (a spec cannot run them)
    imported: tuple[str, ...] = ()
    #: pair tests of one rank per node (per-rail pairwise placement measures them rail by rail)
    point_to_point: bool = False

    def owns(self, workload: str) -> bool:
        return workload in self.workloads

    # -- spec ------------------------------------------------------------------

    @abstractmethod
    def resolve(self, merged: dict[str, Any], timing_given: bool) -> None:
        """Adjust a test's merged fields (defaults applied) in place before the
        TestView is built. ``timing_given``: the test or defaults set iterations or
        duration."""

    @abstractmethod
    def problems(self, test: TestView) -> list[Problem]:
        """What is wrong with a resolved test of this family (empty when nothing)."""

    # -- planning --------------------------------------------------------------

    @abstractmethod
    def estimate_seconds(self, test: TestView, costs: CostModel) -> float:
        """Rough wall time of the whole test on a backend whose costs are ``costs`` (its rates
        on the test's profile: the planner resolves the line rate)."""

    def timing_label(self, test: TestView) -> str:
        """How long each size is timed, for ``benchfab plan``: a duration or an iteration count."""
        return f"{test.duration:g}s" if test.duration is not None else str(test.iterations)

    @abstractmethod
    def on_gpu(self, test: TestView) -> bool:
        """Whether a rank of ``test`` may use a GPU (Kubernetes requests one per pod)."""

    def ranks_per_pod(self, test: TestView) -> int:
        """How many ranks of ``test`` share one pod (one node's launcher) on Kubernetes:
        1, each rank its own (GPU, NIC) slot, unless the family runs a node's ranks
        together the way training jobs do."""
        return 1

    @abstractmethod
    def why_unrunnable(self, test: TestView, host: HostView) -> str | None:
        """Why ``test`` cannot run on ``host`` (one line with the fix), or None."""

    @abstractmethod
    def host_buffer_bytes(self, test: TestView) -> int:
        """Host memory the test's ranks allocate for buffers when they all run on one host
        (0 where the buffers live on GPUs): checked against the host at plan time."""

    # -- worker ----------------------------------------------------------------

    @abstractmethod
    def run_worker(self, task: Task, ctx: RankContext) -> None:
        """Run one rank of ``task``; rank 0 emits a result record per measurement."""

    # -- results ---------------------------------------------------------------

    @abstractmethod
    def summary_rows(self, run_id: str, test: PlannedView, outcome: TestOutcome, backend: str) -> list[SummaryRow]:
        """The summary rows of one test: one per result record."""

    @abstractmethod
    def format_table(self, title: str, workload: str, dtype: str, redop: str, root: int,
                     rows: Sequence[Mapping[str, Any]]) -> str:
        """The text table of one test's records or summary rows, in the style of the
        tool the family mirrors."""

    def table_footer(self, rows: Sequence[Mapping[str, Any]]) -> list[str]:
        """Lines printed after a finished test's status (nccl-tests' summary lines)."""
        return []

    @abstractmethod
    def curve_label(self, first: Mapping[str, Any]) -> str:
        """A figure legend entry for the curve whose first row is ``first``."""

    @abstractmethod
    def judged_metric(self, workload: str) -> JudgedMetric:
        """The column ``benchfab compare`` judges for ``workload`` (its samples are the raw
        per-iteration times either way)."""

    @abstractmethod
    def report_section(self, summary: pd.DataFrame) -> list[str]:
        """Markdown lines of this family's table in report.md (empty to leave it out)."""


def missing_gpu(test: TestView, host: HostView) -> str | None:
    """A test whose buffers live on a GPU cannot run on a host without one."""
    if is_gpu_memory(test.memory) and host.gpus == 0:
        return (f"memory: {test.memory} needs a GPU and this host has none "
                "(fix: run it on a GPU host, or set memory: host)")
    return None


def row_base(run_id: str, test: PlannedView, rec: Mapping[str, Any], backend: str) -> dict[str, Any]:
    """The columns every summary row has, whatever the workload (a family adds the rest)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "test_id": test.test_id,
        "test_name": test.spec.name,
        "workload": test.spec.workload,
        "backend": backend,
        "fabric": test.profile.fabric,
        "mode": test.profile.mode,
        "nodes": len(test.hosts),
        "ranks": test.spec.ranks,
        "size_bytes": rec["size_bytes"],
        "iterations": rec.get("iterations"),
        "status": rec.get("status", "ok"),
        "reason": rec.get("reason", ""),
        "profile": test.profile_name,
        "hosts": ",".join(test.hosts),
        "env": env_label(test.spec.env),
    }
