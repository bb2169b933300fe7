"""The shape of a plan too large to list (all-pairs over thousands of nodes: millions of
tests): per test entry and profile, its pattern, rounds, tests and estimate, counted without
placing every test; and its first rounds, placed from the planner's stream. What
``benchfab plan`` prints for such a plan instead of one line per test."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice

from .costs import CostModel
from .placement import NodeInfo, all_pairs_round_count
from .planner import Round, combo_rounds, default_costs, expand, plan_stream, slots_needed
from .spec import SweepSpec


@dataclass(frozen=True)
class ComboShape:
    """One (test entry, profile, dtype, op, repeat) of a plan, counted."""

    test_id: str  # the combination's id, before the nodes are appended
    profile: str
    pattern: str
    rounds: int
    tests: int
    estimate_s: float  # its rounds one after another (each as long as its first)


def _usable(profile: str, nodes: Sequence[NodeInfo], need: int) -> int:
    return sum(1 for n in nodes if int(n.slots.get(profile, 0)) >= need)


def plan_shape(spec: SweepSpec, nodes: Sequence[NodeInfo], costs: CostModel | None = None) -> list[ComboShape]:
    """Each combination's rounds and tests, in plan order. An all-pairs combination without
    slot sharing is counted by arithmetic (n-1 rounds of n/2 pairs, or max_rounds) after its
    first round is placed; any other is placed in full (a few rounds per node)."""
    costs = costs or default_costs(spec, nodes)
    shapes = []
    for combo in expand(spec, profile_major=True):
        p = combo.test.placement
        rounds = combo_rounds(spec, combo, nodes, costs)
        first = next(rounds, None)
        if first is None:
            continue  # nothing placed: plan's notes say why
        per_round = max(t.estimate_s for t in first) + costs.round_overhead_s(len(first), False)
        if p.pattern == "all-pairs" and not p.allow_sharing and p.adaptive is None:  # adaptive: its screen
            n = _usable(combo.profile, nodes, slots_needed(combo.test))
            count = all_pairs_round_count(n)
            count = min(count, p.max_rounds) if p.max_rounds else count
            shapes.append(ComboShape(combo.base_id, combo.profile, p.pattern, count, count * (n // 2), count * per_round))
        else:
            rest = list(rounds)
            estimate = sum(max(t.estimate_s for t in r) + costs.round_overhead_s(len(r), False) for r in rest)
            shapes.append(ComboShape(combo.base_id, combo.profile, "adaptive" if p.adaptive else p.pattern, 1 + len(rest),
                                     len(first) + sum(len(r) for r in rest), per_round + estimate))
    return shapes


def first_rounds(spec: SweepSpec, nodes: Sequence[NodeInfo], count: int, costs: CostModel | None = None) -> list[Round]:
    """The plan's first ``count`` rounds, from the planner's stream (the rest never placed)."""
    return list(islice(plan_stream(spec, nodes, True, costs).rounds, count))
