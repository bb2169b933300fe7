"""The unit of work handed to a worker: one test, fully resolved, as JSON.

A Task is what crosses the process (or pod) boundary, so it is plain data with
a stable JSON form. The controller builds it from the plan; the worker reads it
from ``--task`` (a JSON string passed as one argv element, never through a shell).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel  # spec.TestSpec: the spec sits above this module's layer


@dataclass(frozen=True)
class Task:
    """One planned test as its ranks see it. Fields named like TestSpec's are the
    resolved test's (Task.for_test copies them by name); the others are the planned
    combination (test_id, dtype, op) and how the controller runs it."""

    test_id: str
    workload: str
    ranks: int
    sizes: list[int]
    dtype: str
    op: str
    iterations: int | None
    duration: float | None
    warmup: int
    in_place: list[bool]
    check: bool
    root: int
    device: str
    cuda_graph: int
    rendezvous_timeout: float = 120.0
    labels: dict[str, str] = field(default_factory=dict)
    # point-to-point workloads (rdma_write_bw / rdma_write_lat)
    transport: str = "verbs"
    engine: str = "native"
    memory: str = "host"
    rdma: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_test(cls, test_id: str, spec: BaseModel, *, dtype: str, op: str, rendezvous_timeout: float,
                 labels: dict[str, str]) -> Task:
        """The task of one planned (test, dtype, op): every Task field the TestSpec has
        comes from it, so a test field a worker needs is added to Task alone."""
        from_spec = spec.model_dump(include={f.name for f in fields(cls)})
        return cls(test_id=test_id, dtype=dtype, op=op, rendezvous_timeout=rendezvous_timeout, labels=labels,
                   **from_spec)

    def to_json(self) -> str:
        # The fields as they are, not asdict's deep copy of every size and flag: json.dumps
        # only reads them (a round of 512 pairs serialises 512 tasks on the controller).
        return json.dumps({f.name: getattr(self, f.name) for f in fields(self)}, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Task:
        data: dict[str, Any] = json.loads(text)
        return cls(**data)


# Workers print records as single lines with this prefix on stdout. A prefix
# (rather than a side file) lets the same worker report through a pod's log
# on Kubernetes and through a pipe or log file locally; anything else the
# worker or its libraries print is kept as the test's log.
RECORD_PREFIX = "@@benchfab "

# A rank's index and count among the ranks on its host, whatever node it stands for:
# the local backend simulating nodes sets them, and a CUDA rank picks GPU HOST_RANK.
HOST_RANK_ENV = "BENCHFAB_HOST_RANK"
HOST_RANKS_ENV = "BENCHFAB_HOST_RANKS"

# The environment variable that carries a test's secret to its ranks (never argv, which every
# local user can read in /proc): the out-of-band channel (rdma.oob) and the MPI launch
# (workloads.mpi_remote) authenticate their peers with it.
TEST_SECRET_ENV = "BENCHFAB_TEST_SECRET"


def format_record(record: Mapping[str, Any]) -> str:
    return RECORD_PREFIX + json.dumps(record, separators=(",", ":"), allow_nan=False, default=str)


def parse_record(line: str) -> dict[str, Any] | None:
    """A record from one log line, or None if the line is ordinary output."""
    if not line.startswith(RECORD_PREFIX):
        return None
    try:
        value = json.loads(line[len(RECORD_PREFIX):])
    except json.JSONDecodeError:
        return None  # a line cut short by a killed worker
    return value if isinstance(value, dict) else None
