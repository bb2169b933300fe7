"""What a test costs on a backend besides the bytes it moves: the facts a time estimate needs.

The planner's estimate is a pure function of spec x inventory x a ``CostModel``: each
workload family turns a test into seconds with the model's rates (``workloads/*``), and
the plan adds the model's per-round and per-profile costs. A backend contributes its
model: the local backend's ranks share this host's cores over loopback
(``local_costs``); the Kubernetes backend's ranks each have a pod on the profile's fabric,
at its line rate, after the pods started (``pod_costs``, figures measured on the
simulated cluster: docs/KUBERNETES.md, "Time estimates"). No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# The local backend: gloo between processes of a small VM (~0.6-1 ms at 8 B, ~1.3 GB/s algbw at
# 128 MiB), TCP over loopback, and verbs at the pace of a software RoCE device (the slowest RDMA
# device benchfab meets: real NICs only make the estimate pessimistic, the safe side for timeouts).
LOCAL_STARTUP_S = 2.5  # python + torch import + rendezvous of a test's ranks
LOCAL_OP_LATENCY_S = 0.8e-3
LOCAL_BUS_BPS = 1.5e9
LOCAL_P2P_BPS = {"tcp": 1.0e9, "verbs": 2.0e7}
LOCAL_P2P_LATENCY_S = {"tcp": 30e-6, "verbs": 60e-6}

# On a fabric: what share of the line rate a stream (point-to-point) or a collective's bus
# bandwidth reaches; the simulated cluster's tcp pairs reach 0.95 of their 200 Mbit/s class.
STREAM_EFFICIENCY = 0.9
BUS_EFFICIENCY = 0.8
FABRIC_P2P_LATENCY_S = {"tcp": 30e-6, "verbs": 5e-6}
GPU_OP_LATENCY_S = 50e-6  # NCCL, a small collective across nodes
CPU_OP_LATENCY_S = LOCAL_OP_LATENCY_S  # gloo on the CPU, whatever carries it

# Agent pods (reuse_pods), measured on the simulated cluster (benchmarks/second_pass_makespan.py
# and estimate_quality.py, 8 nodes, 2 cores at load 9-20): a test's hand-out, rendezvous and
# records back, its rank workers kept from the test before (0.1-0.25 s; 1.4-1.9 s when every
# test started its workers); the controller's hand-out of each further test of a round
# (1.4-2.9 ms); a profile's pods starting (7-11 s; a real cluster adds image pulls). A
# collective's first test on a pod also imports torch and builds a process group: 12-17 s more
# on the simulated cluster's 2 busy cores (load 15-18), a few seconds on an idle host, and
# NCCL's communicator set-up adds seconds on GPU nodes (a GPU test's worker is not reused, its
# replacement imports torch ahead). Counted for every test of a torch family: the progress ETA
# corrects all of them by the measured pace once a round of the entry ended.
POD_TEST_START_S = 0.3
POD_TORCH_START_S = 5.0
POD_HANDOUT_S = 0.003
POD_PROFILE_START_S = 8.0


@dataclass(frozen=True)
class CostModel:
    name: str
    start_s: float  # per test: its ranks start, meet, and their records come back
    torch_start_s: float = 0.0  # per test of a torch family, on top of start_s
    handout_s: float = 0.0  # per further test of a round (the controller hands them out one by one)
    profile_start_s: float = 0.0  # once per profile: its pods start
    shared_cores: int | None = None  # the ranks share these cores (one host): more ranks, slower ops
    line_bps: float | None = None  # the fabric's line rate, bit/s (None: the local rates)

    def at_line_rate(self, bps: float | None) -> CostModel:
        """This model on a profile whose fabric runs at ``bps`` (the local model keeps its rates)."""
        return self if self.line_bps is None or bps is None else replace(self, line_bps=bps)

    def p2p_bps(self, transport: str) -> float:
        """Bytes/s of one pair's stream."""
        if self.line_bps is None:
            return LOCAL_P2P_BPS.get(transport, LOCAL_P2P_BPS["tcp"])
        return STREAM_EFFICIENCY * self.line_bps / 8

    def p2p_latency_s(self, transport: str) -> float:
        table = LOCAL_P2P_LATENCY_S if self.line_bps is None else FABRIC_P2P_LATENCY_S
        return table.get(transport, table["tcp"])

    def op_seconds(self, moved_bytes: float, nranks: int, on_gpu: bool) -> float:
        """One collective op that moves ``moved_bytes`` over the bus (nccl-tests' busbw factor)."""
        if self.line_bps is None:
            oversubscribed = max(1.0, nranks / max(self.shared_cores or 1, 1))
            return (LOCAL_OP_LATENCY_S + moved_bytes / LOCAL_BUS_BPS) * oversubscribed
        latency = GPU_OP_LATENCY_S if on_gpu else CPU_OP_LATENCY_S
        return latency + moved_bytes / (BUS_EFFICIENCY * self.line_bps / 8)

    def round_overhead_s(self, tests: int, starts_profile: bool) -> float:
        """What a round of ``tests`` costs beyond its longest test."""
        return self.handout_s * max(tests - 1, 0) + (self.profile_start_s if starts_profile else 0.0)


def local_costs(cores: int) -> CostModel:
    """Every rank a process on this host, sharing its ``cores``."""
    return CostModel("local", LOCAL_STARTUP_S, shared_cores=cores)


def pod_costs(line_bps: float = 10e9) -> CostModel:
    """Every rank in its own pod on a fabric (the planner applies each profile's line rate:
    ``at_line_rate``; ``line_bps`` is only where no profile is known)."""
    return CostModel("kubernetes", POD_TEST_START_S, POD_TORCH_START_S, POD_HANDOUT_S, POD_PROFILE_START_S,
                     line_bps=line_bps)
