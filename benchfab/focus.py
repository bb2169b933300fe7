"""The focus of an adaptive all-pairs (``placement.adaptive``; ``screen.py``): after its screen
ran, all-pairs among the nodes the screen flags and a seeded sample of good ones.

The screen is judged like a pass of the second pass (``triage.judge`` and
``find_suspects``: the same rules, no threshold of its own): its suspect nodes and the ends of
its suspect links and groups are *flagged*; a node whose pod never started is dead and left
out (the second pass names it). When any node is flagged, ``sample`` known-good nodes drawn
with the entry's seed join them, so that every flagged node meets good partners and its
links to the other flagged nodes are measured. The focus tests are named ``<entry>-focus``
and judged by the second pass with the screen's (``triage.entry_of``). What was chosen goes
to run.json (``adaptive``), and a ``--resume`` reuses it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .costs import CostModel
from .placement import NodeInfo
from .planner import Plan, Round, plan
from .rails import node_of
from .screen import draw_sample, focus_name
from .spec import SecondPassRules, SweepSpec, TestSpec
from .store import load_run
from .triage import Judged, find_suspects, judge


@dataclass(frozen=True)
class Focus:
    plan: Plan  # every adaptive entry's focus rounds, one entry after another (none: nothing flagged)
    record: dict[str, dict[str, Any]]  # entry -> what run.json records (screen, seed, flagged, sampled, tests)


def adaptive_entries(spec: SweepSpec) -> list[TestSpec]:
    return [t for t in spec.resolved_tests() if t.placement.adaptive is not None]


def focus_nodes(spec: SweepSpec, entry: TestSpec, run_path: Path, nodes: Sequence[str]) -> dict[str, Any]:
    """What the entry's stored screen flagged (judged by the second pass's rules), and the sample."""
    run = load_run(run_path)
    judged = judge(run.summary, run.raw, run.tests, spec.second_pass, {entry.name}, {entry.name})
    return choose_focus(judged, nodes, spec.second_pass, entry)


def choose_focus(judged: list[Judged], nodes: Sequence[str], rules: SecondPassRules, entry: TestSpec) -> dict[str, Any]:
    """The screen's judged tests -> the flagged nodes (suspect nodes, ends of suspect links and
    groups), the seeded sample of good ones (none when nothing is flagged) and the dead."""
    adaptive = entry.placement.adaptive
    assert adaptive is not None, "choose_focus is for an adaptive entry"
    suspects = find_suspects(judged, list(nodes), rules)
    flagged = sorted({node_of(x) for x in suspects.retested})
    sampled = draw_sample(suspects.good, adaptive.sample, adaptive.seed) if flagged else []
    return {"screen": adaptive.screen, "seed": adaptive.seed, "sample": adaptive.sample,
            "screen_tests": len(judged), "flagged": flagged, "sampled": sampled, "dead": sorted(suspects.dead)}


def plan_focus(spec: SweepSpec, run_path: Path, nodes: Sequence[NodeInfo], costs: CostModel | None = None,
               recorded: Mapping[str, dict[str, Any]] | None = None) -> Focus:
    """Judge each adaptive entry's screen and plan its focus (nothing runs here). ``recorded``:
    run.json's earlier choice (a resumed run keeps the nodes it chose)."""
    rounds: list[Round] = []
    record: dict[str, dict[str, Any]] = {}
    for i, fields in enumerate(spec.tests):
        entry = next((t for t in adaptive_entries(spec) if t.index == i), None)
        if entry is None:
            continue
        chosen = dict((recorded or {}).get(entry.name) or focus_nodes(spec, entry, run_path, [n.name for n in nodes]))
        members = set(chosen["flagged"]) | set(chosen["sampled"])
        usable = [n for n in nodes if n.name in members]
        placed = Plan(())
        if len(usable) >= 2:
            placement = entry.placement.model_copy(update={"adaptive": None})
            one = fields.model_copy(update={"name": focus_name(entry.name), "placement": placement})
            placed = plan(spec.model_copy(update={"tests": [one]}), usable, skip_unplaceable=True, costs=costs)
        chosen["tests"] = len(placed.tests)
        record[entry.name] = chosen
        rounds += [Round(len(rounds) + k, r.tests, r.overhead_s) for k, r in enumerate(placed.rounds)]
    return Focus(Plan(tuple(rounds)), record)
