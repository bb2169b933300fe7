"""The rules of a point-to-point test, for the spec (which knows ranks and device) and
for the engines' parameters (benchfab.rdma.params.RdmaParams, which do not)."""

from __future__ import annotations

from .base import Problem
from .catalog import is_gpu_memory
from .p2p_workloads import P2PWorkload


def pair_problems(workload: P2PWorkload, *, transport: str, engine: str, memory: str, iterations: int | None,
                  ranks: int | None = None, device: str | None = None) -> list[Problem]:
    """What is wrong with a test of ``workload`` with these settings (nothing: [])."""
    found: list[Problem] = []
    if ranks is not None and ranks != 2:
        found.append(Problem("ranks", f"{workload.name} runs between exactly 2 ranks, not {ranks}", "set ranks: 2",
                             ("workload",)))
    if not workload.bandwidth and is_gpu_memory(memory):
        found.append(Problem("memory", "the latency test polls the receive buffer with the CPU, which GPU memory "
                             "does not allow", f"use memory: host for {workload.name}", ("workload",)))
    if transport == "tcp" and memory != "host":
        found.append(Problem("memory", "the tcp transport sends from plain host memory only",
                             "use memory: host or transport: verbs", ("workload", "transport")))
    if device == "cpu" and is_gpu_memory(memory):
        found.append(Problem("device", f"memory: {memory} needs a GPU but device is cpu",
                             "set device: auto or cuda, or memory: host", ("workload", "memory")))
    if engine == "perftest" and transport == "tcp":
        found.append(Problem("engine", "perftest runs over verbs only", "use engine: native for transport: tcp",
                             ("workload", "transport")))
    if iterations is not None and iterations < 5:
        found.append(Problem("iterations", "perftest's loops need at least 5 iterations", "use iterations: 5 or more",
                             ("workload", "duration")))
    return found
