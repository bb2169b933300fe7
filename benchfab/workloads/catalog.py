"""The values workloads share: element types, reductions, memory kinds, transports.

Pure data, importable without torch, so the spec, planner and analysis layers can
use it. The collectives themselves are objects in ``collective_kinds``.
"""

from __future__ import annotations

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


# The one spelling of these settings: the spec validates them, the point-to-point
# engines take them (benchfab.rdma.params).
Transport = Literal["verbs", "tcp"]
# hugepages: host memory on 2 MiB pages. cuda: DMA-BUF, else nvidia-peermem; cuda-dmabuf /
# cuda-peermem force one registration path.
Memory = Literal["host", "hugepages", "cuda", "cuda-dmabuf", "cuda-peermem"]


def is_gpu_memory(memory: str) -> bool:
    """Whether a point-to-point ``memory`` setting puts the buffers on a GPU (cuda,
    cuda-dmabuf, cuda-peermem) rather than in host memory (host, hugepages)."""
    return memory.startswith("cuda")

