"""Adaptive all-pairs (``placement.adaptive``): what is known before its screen runs, and how
the nodes of its focus are chosen after.

An adaptive all-pairs test runs its screen (ring: 2 rounds, k-groups: 1 or 2) over the nodes
in a seeded order (``screen_order``) as the planned pass; the nodes the screen flags by the second pass's suspect rules (``triage``) and
``sample`` good nodes drawn with its seed then get all-pairs among them (``focus.py`` plans
that). So the plan knows the screen's tests, and only bounds for the focus: none when the
screen flags nothing, all-pairs over every node when it flags them all. ``adaptive_notes``
says that in the plan, so that its count and estimate are never read as the whole sweep's.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .placement import NodeInfo, all_pairs_round_count
from .spec import SweepSpec

FOCUS_SUFFIX = "-focus"


def focus_name(entry: str) -> str:
    """The test name of an adaptive entry's focus (all-pairs among the flagged and sampled nodes)."""
    return entry + FOCUS_SUFFIX


def pairs(n: int) -> int:
    return n * (n - 1) // 2


def focus_bounds(nodes: int, sample: int, flagged: int | None = None) -> tuple[int, int]:
    """(tests, rounds) of the focus on ``nodes`` nodes: with ``flagged`` nodes flagged (and the
    sample added when any is), or, with ``flagged`` None, the most it can be (every node flagged)."""
    m = nodes if flagged is None else (min(nodes, flagged + sample) if flagged else 0)
    return pairs(m), all_pairs_round_count(m)


def adaptive_notes(spec: SweepSpec, nodes: Sequence[NodeInfo]) -> list[str]:
    """One note per adaptive entry: the plan lists its screen only; the focus's size depends on it."""
    notes = []
    for t in spec.resolved_tests():
        a = t.placement.adaptive
        if a is None:
            continue
        n = len(nodes)
        most, most_rounds = focus_bounds(n, a.sample)
        one, _ = focus_bounds(n, a.sample, 1)
        notes.append(f"{t.name}: adaptive: the tests and estimate listed are its {a.screen} screen only; after it, "
                     f"all-pairs among the nodes the screen flags plus {a.sample} sampled good one(s) (seed {a.seed}): "
                     f"no more tests if it flags none, {one} with one flagged, at most {most} in {most_rounds} "
                     f"round(s) (every node flagged; full all-pairs is {pairs(n)}), then the second pass"
                     + ("" if t.placement.second_pass else " if second_pass: true"))
    return notes


def screen_order(nodes: Sequence[str], seed: int) -> list[str]:
    """The nodes in the order the screen pairs them: shuffled with the entry's seed. In the
    inventory's order ring neighbours would mostly share a leaf switch and every run would
    meet the same pairs; shuffled, most screen pairs cross the fabric, and another seed (a
    nightly run's date, say) meets other pairs."""
    order = list(nodes)
    random.Random(seed).shuffle(order)
    return order


def draw_sample(good: Sequence[str], sample: int, seed: int) -> list[str]:
    """``sample`` of the known-good nodes (in the inventory's order), drawn with ``seed``: the
    same screen results and seed give the same nodes (run.json records them)."""
    return sorted(random.Random(seed).sample(list(good), min(sample, len(good))), key=list(good).index)
