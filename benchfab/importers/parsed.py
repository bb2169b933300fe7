"""What a parser reads out of one saved nccl-tests / perftest report, before it is stored.

A parser returns a ``ParsedReport``: the tool, its version where the report prints one,
the facts its header states (hosts, device, link type, GIDs, MTU...) and one
``ParsedTest`` per table (an nccl-tests table per data type and reduction, a perftest
report). The rows carry the store's own summary columns in SI units, so
``importers.write`` only adds the run's context (profile, fabric, mode, hosts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError


@dataclass
class ParsedTest:
    """One measured test of the report: one workload, data type and reduction."""

    workload: str  # benchfab's name: allreduce, rdma_write_bw, rdma_read_lat...
    binary: str  # the tool's binary the rows compare with: all_reduce_perf, ib_read_bw
    family: str  # "collective" or "p2p": which summary columns the rows fill
    dtype: str = "none"
    redop: str = "none"
    root: int = -1
    memory: str | None = None  # where the buffers were: nccl-tests' are on the GPU ("cuda")
    transport: str | None = None  # as a sweep's rows say: "nccl" for nccl-tests (its engine's), perftest's engine
    nccl_network: str | None = None  # NCCL's network where the report's INFO lines say ("IB", "Socket")
    rows: list[dict[str, Any]] = field(default_factory=list)  # summary columns, one per size (x in-place)
    raw: list[dict[str, Any]] = field(default_factory=list)  # size_bytes, in_place, iteration, time_s


@dataclass(frozen=True)
class Missing:
    """Something the report does not say and a flag must: the import asks for all of them at once."""

    what: str  # "its collective (nccl-tests before 2.17 print no '# Collective test starting' line)"
    flag: str  # "--workload all_reduce_perf"


@dataclass
class ParsedReport:
    tool: str  # "nccl-tests" or "perftest"
    format: str  # "text" or "json"
    version: str | None
    tests: list[ParsedTest]
    hosts: list[str] = field(default_factory=list)  # the ranks' hosts in rank order (nccl-tests prints them)
    ranks: int | None = None
    facts: dict[str, Any] = field(default_factory=dict)  # what the header states, kept in run.json
    missing: list[Missing] = field(default_factory=list)  # what a flag must add before the report can be stored


def missing_error(path: str, missing: list[Missing]) -> UsageError:
    """One error naming everything the report lacks, and every flag that supplies it."""
    return UsageError(f"{path}: the report does not say {'; nor '.join(m.what for m in missing)}",
                      hint=f"give {' '.join(m.flag for m in missing)}")


def bad_input(path: str, line: int | None, what: str, fix: str) -> UsageError:
    """The one-line error for a report benchfab cannot read: file, line, what, fix."""
    where = f"{path}:{line}" if line is not None else path
    return UsageError(f"{where}: {what}", hint=fix)
