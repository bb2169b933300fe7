"""The second pass: after a pass, find the suspects, retest them against known-good nodes
and store the verdicts (``diagnosis.py`` judges; this module plans and drives).

``run_second_pass`` is called by the sweep right after a pass whose tests say
``placement: {second_pass: true}`` (same backend, same pods), and by ``benchfab diagnose
RUN`` for a stored run. The retests are ordinary tests of the run (named
``<entry>-retest<k>``, stored like every test); the verdicts go to ``diagnosis.json``
beside run.json, and run.json names that file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from .diagnosis import Diagnosis, Judged, classify, find_suspects, judge, retest_name, verdict_table, write_diagnosis
from .placement import NodeInfo
from .planner import Plan, plan
from .spec import SECOND_PASS_PATTERNS, Placement, SweepSpec, TestSpec
from .store import load_run

RunPlan = Callable[[Plan], None]  # runs a plan's rounds on the backend, storing each test in the run


def second_pass_entries(spec: SweepSpec, every_pattern: bool = False) -> list[TestSpec]:
    """The test entries the second pass judges: those with second_pass (or, for ``diagnose`` on a
    run without any, every entry whose pattern tests many node sets)."""
    tests = spec.resolved_tests()
    chosen = [t for t in tests if t.placement.second_pass]
    if chosen or not every_pattern:
        return chosen
    return [t for t in tests if t.placement.pattern in SECOND_PASS_PATTERNS]


def retest_spec(spec: SweepSpec, entries: list[TestSpec], suspects: tuple[str, ...], good: tuple[str, ...],
                round_no: int) -> SweepSpec:
    """The entries again, each suspect paired with a known-good node (another one each round:
    the partners are rotated by the round, so up to len(good) rounds give distinct ones)."""
    by_index = {t.index: t for t in entries}
    shift = round_no % max(len(good), 1)
    rotated = list(good[shift:]) + list(good[:shift])
    tests = []
    for i, fields in enumerate(spec.tests):
        if i not in by_index:
            continue
        placement = Placement(pattern="retest", suspects=[(s, s) for s in suspects], good=rotated,
                              gpus_per_node=by_index[i].placement.gpus_per_node)
        tests.append(fields.model_copy(update={"name": retest_name(by_index[i].name, round_no), "placement": placement}))
    return spec.model_copy(update={"tests": tests})


def run_second_pass(spec: SweepSpec, run_path: Path, nodes: list[NodeInfo], run_plan: RunPlan, out: TextIO,
                    every_pattern: bool = False) -> Diagnosis:
    rules = spec.second_pass
    entries = second_pass_entries(spec, every_pattern)
    names = {t.name for t in entries}
    run = load_run(run_path)
    passed = judge(run.summary, run.raw, run.tests, rules, names, names)
    suspects = find_suspects(passed, [n.name for n in nodes])
    diagnosis = Diagnosis(run.run_id, rules.model_dump(mode="json"), suspects=list(suspects.nodes),
                          good=list(suspects.good))
    retests: list[Judged] = []
    if suspects.nodes and suspects.good:
        print(f"# second pass: {len(suspects.nodes)} suspect node(s) ({', '.join(suspects.nodes)}) against "
              f"{len(suspects.good)} known-good, {rules.retests} round(s)", file=out, flush=True)
        retest_names: set[str] = set()
        for k in range(1, rules.retests + 1):
            placed = plan(retest_spec(spec, entries, suspects.nodes, suspects.good, k), nodes, skip_unplaceable=True)
            retest_names |= {t.spec.name for t in placed.tests}
            diagnosis.retest_tests += [t.test_id for t in placed.tests]
            run_plan(placed)
        run = load_run(run_path)
        retests = judge(run.summary, run.raw, run.tests, rules, names, retest_names)
    elif suspects.nodes:
        print("# second pass: no known-good node left to retest the suspects against", file=out)
    diagnosis.verdicts, diagnosis.unresolved = classify(suspects, retests, passed)
    write_diagnosis(run_path, diagnosis)
    print(verdict_table(diagnosis), file=out, end="", flush=True)
    return diagnosis
