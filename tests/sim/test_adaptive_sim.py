"""Adaptive all-pairs on the simulated cluster (8 nodes, shaped veth links): a ring screen,
then all-pairs among the nodes it flags and one sampled good node, then the second pass.

With a slow node and a slow link between ring neighbours seeded, the verdicts are exactly
those faults (what full all-pairs names: tests/sim/test_second_pass.py) with fewer tests
than all-pairs' 28; a clean cluster runs the screen alone (nothing flagged) and gets no
verdict. The figures over more seeds, beside full all-pairs:
benchmarks/adaptive_screen.py, quoted in docs/DIAGNOSIS.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchfab.native import HAVE_NATIVE
from benchfab.store import load_run
from tests.fakecluster.netsim import why_unavailable
from tests.sim.scenarios import Mixed, Scenario, adaptive_test, run_scenario

_why = why_unavailable() or (None if HAVE_NATIVE else "benchfab._native is not built (the tcp engine)")
pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.netns,
              pytest.mark.skipif(_why is not None, reason=_why or "")]

NODES = 8
ALL_PAIRS = NODES * (NODES - 1) // 2


def _pass_tests(path: Path) -> tuple[int, int]:
    """(screen tests, focus tests) of the stored run (retests not counted)."""
    names = load_run(path).tests["test_name"]
    return int((names == "bw").sum()), int((names == "bw-focus").sum())


def test_adaptive_names_a_slow_node_and_a_slow_link_with_fewer_tests(tmp_path: Path) -> None:
    o = run_scenario(Mixed("adaptive", ring_link=True), 2, NODES, tmp_path, tests=adaptive_test("ring", 1))
    assert o.found == o.expected, (o.found, o.expected)
    screen, focus = _pass_tests(o.result.path)
    assert screen == NODES and 0 < focus and screen + focus < ALL_PAIRS
    chosen = json.loads((o.result.path / "run.json").read_text())["adaptive"]["bw"]
    slow = next(nodes[0] for kind, nodes in o.expected if kind == "bad-node")
    link = next(nodes for kind, nodes in o.expected if kind == "bad-link")
    assert {slow, *link} <= set(chosen["flagged"]) and len(chosen["sampled"]) == 1
    assert chosen["tests"] == focus and chosen["seed"] == 0
    assert o.result.exit_code(allow_failures=True) == 1


def test_adaptive_on_a_clean_cluster_runs_the_screen_alone_and_names_nothing(tmp_path: Path) -> None:
    o = run_scenario(Scenario("clean"), 1, NODES, tmp_path, tests=adaptive_test("ring", 1))
    assert o.found == set(), o.found
    chosen = json.loads((o.result.path / "run.json").read_text())["adaptive"]["bw"]
    screen, focus = _pass_tests(o.result.path)
    # A screen test may look slow on a shared host: its nodes then get a focus, and the second pass clears them.
    assert screen == NODES and focus == chosen["tests"] and (focus == 0) == (chosen["flagged"] == [])
    assert o.result.exit_code() == 0
