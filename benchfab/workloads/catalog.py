"""What each collective moves and how nccl-tests turns time into bandwidth.

Pure data and arithmetic, importable without torch, so the spec, planner and
analysis layers can use it. Formulas follow nccl-tests (doc/PERFORMANCE.md and
src/*.cu ``*GetBw``):

    algbw = S / t                 S in bytes as nccl-tests reports it
    busbw = algbw * factor(n)

For all_gather, reduce_scatter, all_to_all, gather and scatter the reported size
S is the *total* buffer (count * typesize * n); for all_reduce, broadcast, reduce
and sendrecv it is one rank's buffer. sendrecv is nccl-tests' ring exchange: each
rank sends to rank+1 and receives from rank-1 at the same time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

DTYPES: dict[str, int] = {
    "int8": 1,
    "uint8": 1,
    "int32": 4,
    "int64": 8,
    "float16": 2,
    "bfloat16": 2,
    "float32": 4,
    "float64": 8,
}

# nccl-tests' names (test_typenames) where they differ from benchfab's.
NCCL_TYPE_NAMES: dict[str, str] = {"float32": "float", "float64": "double", "float16": "half"}

REDOPS: tuple[str, ...] = ("sum", "prod", "max", "min", "avg")


@dataclass(frozen=True)
class Collective:
    name: str
    nccl_name: str  # the nccl-tests binary stem, for users comparing outputs
    reduces: bool  # takes a reduction op
    rooted: bool  # has a root rank
    total_size: bool  # reported size is count * typesize * nranks
    factor: Callable[[int], float]

    def count_for(self, size_bytes: int, typesize: int, nranks: int) -> int:
        """Elements per rank for a requested size, rounded down like nccl-tests (at least 1)."""
        per_rank = size_bytes // typesize
        if self.total_size:
            per_rank //= nranks
        return max(1, per_rank)

    def size_for(self, count: int, typesize: int, nranks: int) -> int:
        """The size nccl-tests would print for a per-rank element count."""
        return count * typesize * (nranks if self.total_size else 1)

    def busbw(self, algbw: float, nranks: int) -> float:
        return algbw * self.factor(nranks)


def _ring_allreduce(n: int) -> float:
    return 2.0 * (n - 1) / n


def _ring_gather(n: int) -> float:
    return (n - 1) / n


def _one(n: int) -> float:
    return 1.0


COLLECTIVES: dict[str, Collective] = {
    "allreduce": Collective("allreduce", "all_reduce_perf", True, False, False, _ring_allreduce),
    "all_gather": Collective("all_gather", "all_gather_perf", False, False, True, _ring_gather),
    "reduce_scatter": Collective("reduce_scatter", "reduce_scatter_perf", True, False, True, _ring_gather),
    "all_to_all": Collective("all_to_all", "alltoall_perf", False, False, True, _ring_gather),
    "broadcast": Collective("broadcast", "broadcast_perf", False, True, False, _one),
    "reduce": Collective("reduce", "reduce_perf", True, True, False, _one),
    "gather": Collective("gather", "gather_perf", False, True, True, _ring_gather),
    "scatter": Collective("scatter", "scatter_perf", False, True, True, _ring_gather),
    "sendrecv": Collective("sendrecv", "sendrecv_perf", False, False, False, _one),
}


# The one spelling of these settings: the spec validates them, the point-to-point
# engines take them (benchfab.workloads.p2p_params).
Transport = Literal["verbs", "tcp"]
# hugepages: host memory on 2 MiB pages. cuda: DMA-BUF, else nvidia-peermem; cuda-dmabuf /
# cuda-peermem force one registration path.
Memory = Literal["host", "hugepages", "cuda", "cuda-dmabuf", "cuda-peermem"]


def is_gpu_memory(memory: str) -> bool:
    """Whether a point-to-point ``memory`` setting puts the buffers on a GPU (cuda,
    cuda-dmabuf, cuda-peermem) rather than in host memory (host, hugepages)."""
    return memory.startswith("cuda")


def busbw_factor(workload: str, nranks: int) -> float:
    """nccl-tests' bus-bandwidth factor for ``workload`` on ``nranks`` ranks."""
    return COLLECTIVES[workload].factor(nranks)
