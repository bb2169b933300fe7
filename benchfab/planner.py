"""Spec (x inventory) -> Plan: ordered rounds of tests, with a time estimate.

Pure functions: no I/O. A planned test is one (test entry, profile, dtype,
op, repeat) combination; its id is derived only from the spec, so that
``--resume`` finds the same ids again. The local backend has one host and runs
one test per round; the Kubernetes backend will fill rounds with disjoint
node pairs and groups.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .errors import PlacementError
from .spec import Profile, SweepSpec, TestSpec
from .task import Task
from .workloads.catalog import COLLECTIVES, PERFTEST_ITERATIONS, is_point_to_point

# Cost model of one op for the estimate: latency + bytes moved / bandwidth.
# Figures for gloo between local processes on a small VM (see
# shared reference: ~0.6-1 ms at 8 B, ~1.3 GB/s algbw at 128 MiB).
LOCAL_OP_LATENCY_S = 0.8e-3
LOCAL_BUS_BW_BPS = 1.5e9
LOCAL_STARTUP_S = 2.5  # python + torch import + rendezvous for a test's ranks


@dataclass(frozen=True)
class PlannedTest:
    test_id: str
    spec: TestSpec
    profile_name: str
    profile: Profile
    dtype: str
    op: str
    repeat_index: int
    hosts: tuple[str, ...]
    estimate_s: float
    timeout_s: float
    # Kubernetes backend: (node, slot) of each rank, in rank order; empty locally.
    members: tuple[tuple[str, int], ...] = ()

    def task(self) -> Task:
        s = self.spec
        return Task(
            test_id=self.test_id,
            workload=s.workload,
            ranks=s.ranks,
            sizes=list(s.sizes),
            dtype=self.dtype,
            op=self.op,
            iterations=s.iterations,
            duration=s.duration,
            warmup=s.warmup,
            in_place=list(s.in_place),
            check=s.check,
            root=s.root,
            device=s.device,
            cuda_graph=s.cuda_graph,
            rendezvous_timeout=max(30.0, min(self.timeout_s, 600.0)),
            labels={"profile": self.profile_name, "fabric": self.profile.fabric, "mode": self.profile.mode},
            transport=s.transport,
            engine=s.engine,
            memory=s.memory,
            rdma=s.rdma.model_dump(),
        )

    @property
    def units(self) -> int:
        """Measurement rows this test produces (sizes x in-place flags): the progress unit."""
        return len(self.spec.sizes) * len(self.spec.in_place)


@dataclass(frozen=True)
class Round:
    index: int
    tests: tuple[PlannedTest, ...]


@dataclass(frozen=True)
class Plan:
    rounds: tuple[Round, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def tests(self) -> list[PlannedTest]:
        return [t for r in self.rounds for t in r.tests]

    @property
    def estimate_s(self) -> float:
        # Rounds run one after another; tests inside a round run in parallel.
        return sum(max((t.estimate_s for t in r.tests), default=0.0) for r in self.rounds)


def estimate_op_seconds(workload: str, size_bytes: int, nranks: int, cores: int) -> float:
    """Rough time of one collective op on the local backend."""
    moved = size_bytes * COLLECTIVES[workload].factor(max(nranks, 2))
    oversubscribed = max(1.0, nranks / max(cores, 1))
    return (LOCAL_OP_LATENCY_S + moved / LOCAL_BUS_BW_BPS) * oversubscribed


# Point-to-point rates for the estimate: TCP over loopback, and verbs at the pace
# of a software RoCE device (the slowest RDMA device benchfab meets; real NICs
# only make the estimate pessimistic, which is the safe side for timeouts).
P2P_BW_BPS = {"tcp": 1.0e9, "verbs": 2.0e7}
P2P_LAT_S = {"tcp": 30e-6, "verbs": 60e-6}


def estimate_p2p_seconds(spec: TestSpec) -> float:
    bw, lat = P2P_BW_BPS[spec.transport], P2P_LAT_S[spec.transport]
    bw_test = spec.workload == "rdma_write_bw"
    iters = spec.iterations or PERFTEST_ITERATIONS[spec.workload]
    total = LOCAL_STARTUP_S
    for size in spec.sizes:
        if spec.duration is not None:
            total += spec.duration
        elif bw_test:
            total += (iters + spec.warmup) * size / bw + 0.05
        else:
            total += (iters + spec.warmup) * 2 * (lat + size / bw)
    return total


def estimate_test_seconds(spec: TestSpec, cores: int) -> float:
    if is_point_to_point(spec.workload):
        return estimate_p2p_seconds(spec)
    total = LOCAL_STARTUP_S
    for size in spec.sizes:
        op_s = estimate_op_seconds(spec.workload, size, spec.ranks, cores)
        for _ in spec.in_place:
            timed = spec.duration if spec.duration is not None else (spec.iterations or 0) * op_s
            extra_ops = spec.warmup + (1 if spec.check else 0) + 4  # barrier + combine + check sync
            total += timed + extra_ops * op_s
    return total


def make_test_id(spec: TestSpec, profile: str, dtype: str, op: str, repeat: int, multi_profile: bool) -> str:
    parts = [f"{spec.index:03d}", spec.name]
    if multi_profile:
        parts.append(profile)
    if len(spec.dtypes) > 1:
        parts.append(dtype)
    if len(spec.ops) > 1:
        parts.append(op)
    if spec.repeat > 1:
        parts.append(f"rep{repeat}")
    return "-".join(parts)


def plan_local(spec: SweepSpec, cores: int | None = None, host: str = "localhost") -> Plan:
    """Every test on this host, one test per round, in spec order."""
    if spec.backend != "local":
        raise PlacementError(f"plan_local cannot place a {spec.backend} spec")
    cores = cores or os.cpu_count() or 1
    profiles = spec.resolved_profiles()
    rounds: list[Round] = []
    notes: list[str] = []
    for test in spec.resolved_tests():
        if test.ranks > 4 * cores:
            notes.append(f"{test.name}: {test.ranks} ranks on {cores} cores will be slow and noisy")
        est = estimate_test_seconds(test, cores)
        timeout = test.timeout if test.timeout is not None else 60.0 + 4.0 * est
        for rep in range(test.repeat):
            for pname in test.profiles:
                for dtype in test.dtypes:
                    for op in test.ops:
                        tid = make_test_id(test, pname, dtype, op, rep, len(test.profiles) > 1)
                        pt = PlannedTest(tid, test, pname, profiles[pname], dtype, op, rep, (host,), est, timeout)
                        rounds.append(Round(len(rounds), (pt,)))
    return Plan(tuple(rounds), tuple(notes))

