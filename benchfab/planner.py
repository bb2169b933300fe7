"""Spec x inventory -> Plan: ordered rounds of tests, with a time estimate.

Pure functions: no I/O. ``plan(spec, nodes)`` is the one planner of every
backend: a planned test is one (test entry, profile, dtype, op, repeat)
combination (``expand``) placed on the inventory's nodes; its id is derived
only from the spec (and, on Kubernetes, the nodes it was placed on), so that
``--resume`` finds the same ids again. The local backend's inventory is one
node, this host, and it runs one test per round; on Kubernetes rounds hold
disjoint node pairs and groups (patterns in ``placement``).

Each test's time estimate is its family's cost model (``workloads``) at the backend's
rates (``costs.CostModel``: the local backend's shared cores, or a pod's fabric at the
profile's line rate); a round adds the backend's hand-out and, when it starts a profile,
its pods' start-up. A test whose estimate exceeds its ``timeout:`` gets a note with the fix.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from itertools import islice

from .costs import CostModel, local_costs, pod_costs
from .errors import PlacementError
from .fabrics import fabric_of, line_rate_of
from .placement import (
    Group,
    Member,
    NodeInfo,
    all_pairs_rounds,
    assign_slots,
    k_groups,
    one_group,
    retest_rounds,
    ring_rounds,
    topology_pairs,
)
from .rails import rail_retest_rounds, rail_rounds
from .screen import adaptive_notes, screen_order
from .spec import Profile, SweepSpec, TestSpec
from .task import Task
from .units import format_duration
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
    # Kubernetes backend: (node, first slot) of each pod, in rank order; empty locally.
    members: tuple[tuple[str, int], ...] = ()
    # Ranks per member (pod on Kubernetes, simulated node locally), torchrun's
    # LOCAL_WORLD_SIZE: rank = member index * local_ranks + LOCAL_RANK.
    local_ranks: int = 1
    # Per-rail placement (placement.rails): the rail every member uses (its slot), and that
    # rail's device as the profile names it (its HCA, else its network); None otherwise.
    rail: int | None = None
    rail_device: str | None = None

    def task(self) -> Task:
        task = Task.for_test(
            self.test_id,
            self.spec,
            dtype=self.dtype,
            op=self.op,
            rendezvous_timeout=max(30.0, min(self.timeout_s, 600.0)),
            labels={"profile": self.profile_name, "fabric": self.profile.fabric, "mode": self.profile.mode},
        )
        # The profile's GID is the fabric's, for verbs tests too (rdma.gid_index still wins).
        gid = fabric_of(self.profile).gid_index(self.profile)
        if gid is not None and task.rdma.get("gid_index") is None:
            task = replace(task, rdma={**task.rdma, "gid_index": gid})
        return task

    @property
    def units(self) -> int:
        """Measurement rows this test produces (sizes x in-place flags): the progress unit."""
        return len(self.spec.sizes) * len(self.spec.in_place)


@dataclass(frozen=True)
class Round:
    index: int
    tests: tuple[PlannedTest, ...]
    overhead_s: float = 0.0  # beyond its longest test: handing its tests out, starting a profile's pods

    @property
    def estimate_s(self) -> float:
        # Tests inside a round run in parallel.
        return max((t.estimate_s for t in self.tests), default=0.0) + self.overhead_s


@dataclass(frozen=True)
class Plan:
    rounds: tuple[Round, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)
    # Tests the inventory cannot hold at all (a group of 8 on 7 nodes), with why: the
    # sweep stores them as skipped and runs the rest.
    unplaced: tuple[tuple[PlannedTest, str], ...] = field(default_factory=tuple)
    # Every node some test could not use, with why (cordoned, NotReady, a taint, MOFED not
    # ready, 0 allocatable of the profile's resource, no GPU, too few free slots): printed by
    # plan and sweep, stored in run.json.
    left_out: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def tests(self) -> list[PlannedTest]:
        return [t for r in self.rounds for t in r.tests]

    @property
    def estimate_s(self) -> float:
        # Rounds run one after another.
        return sum(r.estimate_s for r in self.rounds)

    def left_out_lines(self) -> list[str]:
        """One line per node left out, as plan and sweep print them."""
        return [f"node {node} left out: {why}" for node, why in self.left_out]


def estimate_test_seconds(spec: TestSpec, costs: CostModel) -> float:
    """Rough wall time of one test at ``costs``' rates (its family's cost model)."""
    return family_of(spec.workload).estimate_seconds(spec, costs)


def default_costs(spec: SweepSpec, nodes: Sequence[NodeInfo]) -> CostModel:
    """The backend's costs when its caller gave none: this host's cores, or agent pods (each
    profile's line rate is applied per test)."""
    if spec.backend == "local":
        return local_costs((nodes[0].cpus if nodes else None) or 1)
    return pod_costs()


def over_timeout_notes(tests: Sequence[PlannedTest]) -> list[str]:
    """One note per test entry whose estimate exceeds the timeout its spec set, with the fix."""
    notes = []
    for t in tests:
        if t.spec.timeout is not None and t.estimate_s > t.timeout_s:
            notes.append(f"{t.spec.name}: estimated {format_duration(t.estimate_s)}, over its timeout "
                         f"{format_duration(t.timeout_s)} (fix: raise its timeout: to at least "
                         f"{format_duration(2 * t.estimate_s)}, or cut its sizes or iterations)")
    return list(dict.fromkeys(notes))


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


LOCAL_HOST = "localhost"  # the local backend's one node: every rank is a process on this host


def local_nodes(cores: int | None = None, host: str = LOCAL_HOST) -> list[NodeInfo]:
    """The local backend's inventory: this host, with its cores (they bound how fast its ranks go)."""
    return [NodeInfo(host, cpus=cores or os.cpu_count() or 1)]


def timeout_for(test: TestSpec, estimate_s: float) -> float:
    """A test's timeout: the spec's, else generous enough that a slow but healthy test is not killed."""
    return test.timeout if test.timeout is not None else 60.0 + 4.0 * estimate_s


@dataclass(frozen=True)
class Combo:
    """One (test entry, profile, dtype, op, repeat): a planned test before it is placed."""

    test: TestSpec
    profile: str
    dtype: str
    op: str
    repeat: int

    @cached_property  # every test of an all-pairs round names it: 8,192 per round on 16,384 nodes
    def base_id(self) -> str:
        t = self.test
        return make_test_id(t, self.profile, self.dtype, self.op, self.repeat, len(t.profiles) > 1)


def expand(spec: SweepSpec, profile_major: bool = False) -> list[Combo]:
    """Every combination of the spec, in run order.

    Spec order (test, repeat, profile, dtype, op) by default; ``profile_major``
    runs one profile's tests before the next profile's, so its pods are reused.
    """
    tests = spec.resolved_tests()
    order = ([(p, t, rep) for p in spec.resolved_profiles() for t in tests if p in t.profiles for rep in range(t.repeat)]
             if profile_major else [(p, t, rep) for t in tests for rep in range(t.repeat) for p in t.profiles])
    return [Combo(t, p, dtype, op, rep) for p, t, rep in order for dtype in t.dtypes for op in t.ops]


def plan(spec: SweepSpec, nodes: Sequence[NodeInfo], skip_unplaceable: bool = False,
         costs: CostModel | None = None) -> Plan:
    """The spec's tests placed on ``nodes``: the one planner of every backend.

    ``backend: local``: every rank of a test is a process on the inventory's one node
    (``local_nodes()``), one test per round, in spec order. ``backend: kubernetes``:
    see ``_plan_on_slots``; ``skip_unplaceable`` (a sweep, and offline ``render`` / ``plan`` on a few
    made-up nodes) leaves a test that cannot be placed out with a note instead of
    refusing the plan. ``costs``: the backend's (``Backend.costs``), else ``default_costs``.
    """
    if spec.backend == "local":
        return _plan_on_host(spec, nodes, costs)
    return _plan_on_slots(spec, nodes, skip_unplaceable, costs or default_costs(spec, nodes))


def _plan_on_host(spec: SweepSpec, nodes: Sequence[NodeInfo], costs: CostModel | None) -> Plan:
    """Every test on the one node, one test per round, in spec order."""
    if len(nodes) != 1:
        raise PlacementError(f"the local backend places on one node, the inventory has {len(nodes)}")
    node = nodes[0]
    cores = node.cpus or 1
    costs = costs or local_costs(cores)
    profiles = spec.resolved_profiles()
    tests = spec.resolved_tests()
    notes = [f"{t.name}: {t.ranks} ranks on {cores} cores will be slow and noisy" for t in tests if t.ranks > 4 * cores]
    # One estimate per test entry: its ranks share this host's cores.
    estimates = {t.index: estimate_test_seconds(t, costs) for t in tests}
    rounds: list[Round] = []
    for c in expand(spec):
        est = estimates[c.test.index]
        # gpus_per_node: G ranks per simulated node (the pod shape of a multi-node job), else all ranks on one.
        local = c.test.placement.gpus_per_node or c.test.ranks
        pt = PlannedTest(c.base_id, c.test, c.profile, profiles[c.profile], c.dtype, c.op, c.repeat, (node.name,),
                         est, timeout_for(c.test, est), local_ranks=local)
        rounds.append(Round(len(rounds), (pt,)))
    notes += over_timeout_notes([r.tests[0] for r in rounds])
    return Plan(tuple(rounds), tuple(notes))


def _pattern_rounds(test: TestSpec, names: list[str], leaf: dict[str, str | None]) -> Iterable[list[Group]]:
    """The pattern's rounds of node groups: all-pairs' computed one at a time as they are
    consumed (16,384 nodes hold 134 M pairs), the others' (a few per node) as a list."""
    p = test.placement
    cut = p.max_rounds
    pattern = p.adaptive.screen if p.adaptive else p.pattern  # adaptive: the screen (screen.py: the rest)
    names = screen_order(names, p.adaptive.seed) if p.adaptive else names
    rounds: list[list[Group]]
    if pattern == "all-pairs":
        return ([(names[a], names[b]) for a, b in r.tolist()] for r in islice(all_pairs_rounds(len(names)), cut))
    if pattern == "ring":
        rounds = ring_rounds(names)
    elif pattern == "k-groups":
        rounds = k_groups(names, p.k or 2)
    elif p.pattern == "topology":
        rounds = topology_pairs(names, leaf, p.scope)
    elif p.pattern == "group":
        rounds = [[one_group(names, p.nodes, leaf)]]
    elif p.pattern == "retest":
        sus = {y for pair in p.suspects for y in pair}
        good = list(p.good) or [x for x in names if x not in sus]
        rounds = rail_retest_rounds(p.suspects, good) if p.rails else retest_rounds(p.suspects, good)
    else:
        raise PlacementError(f"pattern {p.pattern!r} is for the local backend",
                             hint="use all-pairs, ring, k-groups, topology, group or retest")
    return rounds[:cut] if cut else rounds


@dataclass
class PlanStream:
    """A Kubernetes plan's rounds as a stream (``plan_stream``): each round is placed when it is
    consumed, so the first of a 16,384-node all-pairs plan is there at once. ``notes``,
    ``unplaced`` and ``left_out`` fill in as rounds are consumed; complete once ``rounds`` is."""

    rounds: Iterator[Round]
    notes: list[str] = field(default_factory=list)
    unplaced: list[tuple[PlannedTest, str]] = field(default_factory=list)
    left_out: dict[tuple[str, str], None] = field(default_factory=dict)


def plan_stream(spec: SweepSpec, nodes: Sequence[NodeInfo], skip_unplaceable: bool = False,
                costs: CostModel | None = None) -> PlanStream:
    """``plan`` for ``backend: kubernetes`` as a stream of rounds (see PlanStream), in the same
    order, with the same tests; a combination that cannot be placed raises (or is noted) when
    the stream reaches it."""
    stream = PlanStream(iter(()))
    stream.rounds = _rounds_on_slots(spec, nodes, skip_unplaceable, costs or default_costs(spec, nodes), stream)
    return stream


def _rounds_on_slots(spec: SweepSpec, nodes: Sequence[NodeInfo], skip_unplaceable: bool, costs: CostModel,
                     found: PlanStream) -> Iterator[Round]:
    index = 0
    started: set[str] = set()  # profiles whose pods an earlier round started
    for combo in expand(spec, profile_major=True):
        for placed in _place_combo(spec, combo, nodes, skip_unplaceable, found.notes, found.unplaced, found.left_out,
                                   costs):
            overhead = costs.round_overhead_s(len(placed), combo.profile not in started)
            started.add(combo.profile)
            yield Round(index, placed, overhead)
            index += 1


def _plan_on_slots(spec: SweepSpec, nodes: Sequence[NodeInfo], skip_unplaceable: bool, costs: CostModel) -> Plan:
    """Place every test on the inventory: rounds of disjoint node pairs / groups.

    Each combination (``expand``, profile by profile, so a profile's pods are reused
    for all of its tests) becomes the rounds of its pattern. A rank is one pod on one
    (node, slot); a slot is one GPU plus one NIC share or VF.

    A test whose pattern cannot be placed at all (a group of 8 on 4 nodes) refuses
    the plan, unless ``skip_unplaceable``: then it is left out with a note. Either
    way a plan with no test at all is refused.
    """
    stream = plan_stream(spec, nodes, skip_unplaceable, costs)
    rounds = list(stream.rounds)
    notes, left_out = stream.notes, stream.left_out
    notes += over_timeout_notes([t for r in rounds for t in r.tests]) + adaptive_notes(spec, nodes)
    notes = list(dict.fromkeys(notes))  # one note per test and profile, not per dtype/op/repeat
    if not rounds:
        why = f" ({notes[0]}{'; ...' if len(notes) > 1 else ''})" if notes else ""
        if left_out:
            why += "; " + "; ".join(f"{node}: {reason}" for node, reason in islice(left_out, 3))
            why += "; ..." if len(left_out) > 3 else ""
        raise PlacementError(f"nothing to run on {len(nodes)} node(s){why}",
                             hint="check nodes.selector and that the nodes advertise the profiles' RDMA resources "
                                  "(benchfab preflight)")
    return Plan(tuple(rounds), tuple(notes), tuple(stream.unplaced), tuple(left_out))


def slots_needed(test: TestSpec) -> int:
    """Free slots a node needs for ``test``: its ranks per node on each of its rails."""
    return (test.placement.gpus_per_node or 1) * (test.placement.rails or 1)


def combo_rounds(spec: SweepSpec, combo: Combo, nodes: Sequence[NodeInfo], costs: CostModel) -> Iterator[tuple[PlannedTest, ...]]:
    """One combination's rounds, placed as they are consumed (an unplaceable one: none)."""
    return iter(_place_combo(spec, combo, nodes, True, [], [], {}, costs))


def _place_combo(spec: SweepSpec, combo: Combo, nodes: Sequence[NodeInfo], skip_unplaceable: bool,
                 notes: list[str], unplaced: list[tuple[PlannedTest, str]],
                 left_out: dict[tuple[str, str], None], costs: CostModel) -> Iterable[tuple[PlannedTest, ...]]:
    """One combination's rounds of placed tests, each built as it is consumed (appends its notes to ``notes``, the nodes it
    cannot use to ``left_out`` with why, and the combination to ``unplaced`` when its pattern
    cannot be placed and that is allowed)."""
    test, pname = combo.test, combo.profile
    p = test.placement
    per_node = p.gpus_per_node or 1
    need = slots_needed(test)
    slots = {n.name: int(n.slots.get(pname, 0)) for n in nodes}
    names = [n.name for n in nodes if slots[n.name] >= need]
    for n in nodes:
        if slots[n.name] < need:
            why = n.unfit.get(pname) or (f"{slots[n.name]} free slot(s) for profile {pname}, "
                                         f"{test.name} needs {need} per node")
            left_out[(n.name, why)] = None
    try:
        groups = _pattern_rounds(test, names, {n.name: n.leaf for n in nodes})
    except PlacementError as exc:
        if not skip_unplaceable:
            raise PlacementError(f"{test.name}/{pname}: {exc.message}", hint=exc.hint) from None
        notes.append(f"{test.name}/{pname}: skipped: {exc.message}")
        profile = spec.resolved_profiles()[pname]
        unplaced.append((PlannedTest(combo.base_id, test, pname, profile, combo.dtype, combo.op, combo.repeat,
                                     (), 0.0, 0.0), f"cannot be placed: {exc.message}"
                         + (f" (fix: {exc.hint})" if exc.hint else "")))
        return []
    if not (len(names) >= 2 if p.pattern == "all-pairs" else any(groups := list(groups))):
        notes.append(f"{test.name}/{pname}: pattern {p.pattern}"
                     + (f" (scope {p.scope})" if p.pattern == "topology" else "")
                     + f" places no test on these {len(names)} node(s)")
    placed: Iterable[list[tuple[Member, ...]]]
    if p.pattern == "group" and p.rails:
        # Per-rail groups: the same nodes, one group per rail, all rails at once
        # (rail-isolated, like NCCL_TESTS_SPLIT_MASK); slot r is rail r.
        placed = [[tuple((x, r) for x in list(groups)[0][0]) for r in range(p.rails)]]
    elif p.rails:
        # Per-rail pairs: the pattern's pair rounds on every rail at once, round by round (rails.py).
        placed = rail_rounds(groups, p.rails)
    elif p.allow_sharing:  # later rounds are pulled forward: every round is needed first
        placed, more = assign_slots(list(groups), slots, per_node, True)
        notes.extend(f"{test.name}/{pname}: {m}" for m in more)
    else:
        placed = _slots_per_round(groups, slots, per_node, notes, f"{test.name}/{pname}")
    profile = spec.resolved_profiles()[pname]
    per_pod = family_of(test.workload).ranks_per_pod(test)
    on_fabric = costs.at_line_rate(line_rate_of(profile))
    sized = _SizedTests(test, on_fabric)
    return (tuple(_placed_test(combo, profile, members, on_fabric, per_pod, sized) for members in rnd) for rnd in placed)


def _slots_per_round(groups: Iterable[list[Group]], slots: dict[str, int], per_node: int, notes: list[str],
                     label: str) -> Iterator[list[tuple[Member, ...]]]:
    """assign_slots without sharing, one round at a time as the rounds are consumed (each
    round's slots are its own then): the same rounds and notes, none built before it is asked for."""
    for rnd in groups:
        placed, more = assign_slots([rnd], slots, per_node, False)
        notes.extend(f"{label}: {m}" for m in more)
        yield from placed


class _SizedTests:
    """A combination's test entry sized to a member count, and its estimate, made once per
    count (a pydantic copy and a cost model per test cost 0.1 s per round of 8,192 pairs)."""

    def __init__(self, test: TestSpec, costs: CostModel) -> None:
        self.test, self.costs = test, costs
        self._by_ranks: dict[int, tuple[TestSpec, float]] = {}

    def __call__(self, ranks: int) -> tuple[TestSpec, float]:
        if ranks not in self._by_ranks:
            sized = self.test.model_copy(update={"ranks": ranks})
            self._by_ranks[ranks] = (sized, estimate_test_seconds(sized, self.costs))
        return self._by_ranks[ranks]


def pods_of(members: tuple[Member, ...], per_pod: int) -> tuple[Member, ...]:
    """(node, slot) members -> one (node, first slot) per pod of ``per_pod`` consecutive slots."""
    return members if per_pod == 1 else members[::per_pod]


def _placed_test(combo: Combo, profile: Profile, members: tuple[Member, ...], costs: CostModel,
                 per_pod: int = 1, sized_tests: _SizedTests | None = None) -> PlannedTest:
    """One test on its (node, slot) members: ``per_pod`` ranks per pod, the id names where it ran."""
    test, p = combo.test, combo.test.placement
    hosts = tuple(dict.fromkeys([m[0] for m in members]))
    sized, est = (sized_tests or _SizedTests(test, costs))(len(members))
    rail = members[0][1] if p.rails else None
    if p.pattern == "group":
        suffix = f"rail{rail}" if p.rails else f"{len(hosts)}n"
    else:
        suffix = "+".join(hosts) + (f"-rail{rail}" if rail is not None else "")
    return PlannedTest(f"{combo.base_id}-{suffix}", sized, combo.profile, profile, combo.dtype, combo.op, combo.repeat,
                       hosts, est, timeout_for(test, est), pods_of(members, per_pod), per_pod,
                       rail, rail_device_of(profile, rail))


def rail_device_of(profile: Profile, rail: int | None) -> str | None:
    """Rail ``rail``'s device as the profile names it: its HCA, else its network (NAD)."""
    if rail is None or not profile.rails:
        return None
    r = profile.rails[rail % len(profile.rails)]
    return r.hca or r.network or profile.hca or profile.network
