"""The unit of work handed to a worker: one test, fully resolved, as JSON.

A Task is what crosses the process (or pod) boundary, so it is plain data with
a stable JSON form. The controller builds it from the plan; the worker reads it
from ``--task`` (a JSON string passed as one argv element, never through a shell).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Task:
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

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Task:
        data: dict[str, Any] = json.loads(text)
        return cls(**data)


# Workers print records as single lines with this prefix on stdout. A prefix
# (rather than a side file) lets the same worker report through a pod's log
# on Kubernetes and through a pipe or log file locally; anything else the
# worker or its libraries print is kept as the test's log.
RECORD_PREFIX = "@@benchfab "


def format_record(record: dict[str, Any]) -> str:
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
