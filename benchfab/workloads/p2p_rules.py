"""The rules of a point-to-point test, for the spec (which knows ranks and device) and
for the engines' parameters (benchfab.rdma.params.RdmaParams, which do not)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Problem
from .catalog import is_gpu_memory
from .p2p_workloads import P2P_WORKLOADS, P2PWorkload


def beyond_one_qp_one_way(bidirectional: bool | None, qps: int | None, out_reads: int | None) -> dict[str, Any]:
    """The perftest options (-b, -q, -o) a test sets beyond one QP in one direction."""
    found: dict[str, Any] = {}
    if bidirectional:
        found["bidirectional"] = True
    if qps is not None and qps != 1:
        found["qps"] = qps
    if out_reads is not None:
        found["out_reads"] = out_reads
    return found


def pair_problems(workload: P2PWorkload, *, transport: str, engine: str, memory: str, iterations: int | None,
                  ranks: int | None = None, device: str | None = None, options: Mapping[str, Any] | None = None,
                  duration: float | None = None) -> list[Problem]:
    """What is wrong with a test of ``workload`` with these settings (nothing: []).
    ``options`` are the verbs options it sets beyond one QP in one direction
    (beyond_one_qp_one_way: bidirectional, qps, out_reads)."""
    found: list[Problem] = []
    name = workload.name
    for key in options or {}:
        if key in ("bidirectional", "qps") and not workload.bandwidth_flags:
            found.append(Problem(f"rdma.{key}", f"{name} runs one QP in a ping-pong: {key} applies to the "
                                 "bandwidth tests only", f"drop rdma.{key}", ("workload",)))
        if key == "out_reads" and not workload.one_sided:
            reads = " / ".join(w.name for w in P2P_WORKLOADS.values() if w.one_sided and w.runs)
            found.append(Problem("rdma.out_reads", f"{name} issues no READs: out_reads applies to {reads}",
                                 "drop rdma.out_reads", ("workload",)))
    if transport == "tcp" and not workload.over_tcp:
        over_tcp = " / ".join(w.name for w in P2P_WORKLOADS.values() if w.over_tcp and w.runs)
        found.append(Problem("transport", f"the tcp transport runs {over_tcp} only, not {name}",
                             "use transport: verbs", ("workload",)))
    if workload.posts_receives and workload.bandwidth and duration is not None:
        found.append(Problem("duration", f"{name}: the receiving side posts one receive per message, so it "
                             "needs a message count", "give iterations instead of duration", ("workload",)))
    if ranks is not None and ranks != 2:
        found.append(Problem("ranks", f"{name} runs between exactly 2 ranks, not {ranks}", "set ranks: 2",
                             ("workload",)))
    if not workload.bandwidth and is_gpu_memory(memory):
        found.append(Problem("memory", "the latency test polls the receive buffer with the CPU, which GPU memory "
                             "does not allow", f"use memory: host for {name}", ("workload",)))
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
