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
from .workloads import family_of


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
        return Task.for_test(
            self.test_id,
            self.spec,
            dtype=self.dtype,
            op=self.op,
            rendezvous_timeout=max(30.0, min(self.timeout_s, 600.0)),
            labels={"profile": self.profile_name, "fabric": self.profile.fabric, "mode": self.profile.mode},
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


def estimate_test_seconds(spec: TestSpec, cores: int) -> float:
    """Rough wall time of one test on the local backend (its family's cost model)."""
    return family_of(spec.workload).estimate_seconds(spec, cores)


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

