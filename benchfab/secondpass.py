"""The second pass: after a pass, find the suspects, retest them against known-good nodes
(and rerun each suspect link itself) and store the verdicts (``triage.py`` judges,
``diagnosis.py`` stores; this module plans and drives).

``run_second_pass`` is called by the sweep right after a pass whose tests say
``placement: {second_pass: true}`` (same backend, same pods), and by ``benchfab diagnose
RUN`` for a stored run. The retests are ordinary tests of the run (named
``<entry>-retest<k>``, stored like every test); the verdicts go to ``diagnosis.json``
beside run.json, and run.json names that file.

Everything the pass learned is reused: the retests are planned before anything runs, so
``diagnose`` starts pods only for them (never again for a node whose pod did not start in
the pass: that node is already ``dead``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .costs import CostModel
from .counter_evidence import cite, errors_without_slowdown
from .diagnosis import Diagnosis, verdict_table, write_diagnosis
from .gpuhealth import gpu_verdicts, health_by_node
from .placement import NodeInfo
from .planner import Plan, Round, plan
from .rails import node_of, port_label
from .retests import classify, rail_verdicts
from .screen import focus_name
from .spec import SECOND_PASS_PATTERNS, Placement, SweepSpec, TestSpec
from .store import load_run
from .triage import Judged, Suspects, find_suspects, judge, retest_name

RunPlan = Callable[[Plan], None]  # runs a plan's rounds on the backend, storing each test in the run


def second_pass_entries(spec: SweepSpec, every_pattern: bool = False) -> list[TestSpec]:
    """The test entries the second pass judges: those with second_pass (or, for ``diagnose`` on a
    run without any, every entry whose pattern tests many node sets)."""
    tests = spec.resolved_tests()
    chosen = [t for t in tests if t.placement.second_pass]
    if chosen or not every_pattern:
        return chosen
    return [t for t in tests if t.placement.pattern in SECOND_PASS_PATTERNS]


def retest_spec(spec: SweepSpec, entries: list[TestSpec], suspects: Suspects, round_no: int) -> SweepSpec:
    """The entries again: each retested node with a known-good node (another one each round:
    the partners are rotated by the round, so up to len(good) rounds give distinct ones), and
    each suspect link itself."""
    by_index = {t.index: t for t in entries}
    good = suspects.good
    shift = round_no % max(len(good), 1)
    rotated = list(good[shift:]) + list(good[:shift])
    linked = {x for p in suspects.links for x in p}
    # A pair naming one node twice is that node alone (retested with partners, nothing rerun).
    pairs = list(suspects.links) + [(s, s) for s in suspects.retested if s not in linked]
    tests = []
    for i, fields in enumerate(spec.tests):
        if i not in by_index:
            continue
        # A per-rail entry retests ports (rails.py): each on its rail, against that rail's good ports.
        placement = Placement(pattern="retest", suspects=pairs, good=rotated,
                              gpus_per_node=by_index[i].placement.gpus_per_node, rails=by_index[i].placement.rails)
        tests.append(fields.model_copy(update={"name": retest_name(by_index[i].name, round_no), "placement": placement}))
    return spec.model_copy(update={"tests": tests})


@dataclass(frozen=True)
class SecondPass:
    """The pass judged and the retests planned, before any of them runs."""

    names: set[str]  # the judged entries
    passed: list[Judged]
    suspects: Suspects
    rounds: list[Plan]  # one plan per retest round (empty: nothing to retest)

    @property
    def retests(self) -> Plan:
        """Every retest round's tests as one plan (what the backend is started with for ``diagnose``)."""
        rounds = [r for p in self.rounds for r in p.rounds]
        return Plan(tuple(Round(i, r.tests, r.overhead_s) for i, r in enumerate(rounds)))


def plan_second_pass(spec: SweepSpec, run_path: Path, nodes: list[NodeInfo], costs: CostModel | None = None,
                     every_pattern: bool = False) -> SecondPass:
    """Judge the stored pass and plan its retests (no test runs here)."""
    rules = spec.second_pass
    names = {t.name for t in second_pass_entries(spec, every_pattern)}
    entries = [t for t in spec.resolved_tests() if t.name in names]
    names |= {focus_name(t.name) for t in entries if t.placement.adaptive}  # judged with their screen
    run = load_run(run_path)
    passed = judge(run.summary, run.raw, run.tests, rules, names, names)
    suspects = find_suspects(passed, [n.name for n in nodes], rules)
    # Only the nodes the retests use: a node dead in the pass is not waited for again.
    usable = [n for n in nodes if n.name in {node_of(x) for x in (*suspects.retested, *suspects.good)}]
    rounds = [plan(retest_spec(spec, entries, suspects, k), usable, skip_unplaceable=True, costs=costs)
              for k in range(1, rules.retests + 1)] if suspects.retested and suspects.good else []
    return SecondPass(names, passed, suspects, rounds)


def run_second_pass(spec: SweepSpec, run_path: Path, second: SecondPass, run_plan: RunPlan, out: TextIO) -> Diagnosis:
    """Run the planned retests, judge them and store the verdicts (diagnosis.json)."""
    rules, suspects = spec.second_pass, second.suspects
    run = load_run(run_path)
    diagnosis = Diagnosis(run.run_id, rules.model_dump(mode="json"), suspects=[port_label(x) for x in suspects.retested],
                          good=[port_label(x) for x in suspects.good])
    retests: list[Judged] = []
    if second.rounds:
        print(f"# second pass: {len(suspects.retested)} suspect node(s) ({', '.join(map(port_label, suspects.retested))})"
              + (f" and {len(suspects.links)} suspect link(s), rerun" if suspects.links else "")
              + f" against {len(suspects.good)} known-good, {len(second.rounds)} round(s)", file=out, flush=True)
        retest_names: set[str] = set()
        for placed in second.rounds:
            retest_names |= {t.spec.name for t in placed.tests}
            diagnosis.retest_tests += [t.test_id for t in placed.tests]
            run_plan(placed)
        run = load_run(run_path)
        retests = judge(run.summary, run.raw, run.tests, rules, second.names, retest_names)
    elif suspects.retested:
        print("# second pass: no known-good node left to retest the suspects against", file=out)
    triage = classify(suspects, retests, second.passed, rules)
    rows = run.tests.to_dict("records")  # the counters each test stored: evidence for the verdicts
    # A per-rail pass's verdicts are on ports: named for their NIC, node or link first (rails.py).
    diagnosis.verdicts = [cite(f, rows) for f in rail_verdicts(triage.verdicts, second.passed + retests)]
    diagnosis.unresolved = [(port_label(a), port_label(b)) for a, b in triage.unresolved]
    diagnosis.cleared = [(port_label(a), port_label(b), why) for a, b, why in triage.cleared]
    diagnosis.warnings = errors_without_slowdown({j.test_id: tuple(node_of(h) for h in j.hosts)
                                                  for j in second.passed + retests if not j.suspect}, rows)
    # GPU health beside the fabric: what the ranks of the pass and the retests recorded per node.
    gpus = health_by_node(run.tests["used"] if "used" in run.tests else [])
    diagnosis.gpu_health = {node: health.to_json() for node, health in gpus.items()}
    diagnosis.verdicts += gpu_verdicts(gpus)
    write_diagnosis(run_path, diagnosis)
    print(verdict_table(diagnosis), file=out, end="", flush=True)
    return diagnosis
