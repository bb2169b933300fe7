"""Fabric counters as evidence on the simulated cluster, where the TCP and interface counters
are real (each node is a network namespace): a node that drops 3 % of what it receives shows
TCP retransmits in its tests' counters, and its lossy-node verdict cites them; a clean cluster
gets neither a verdict nor an errors-without-slowdown warning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import benchfab
from benchfab.diagnosis import load_diagnosis
from benchfab.native import HAVE_NATIVE
from tests.fakecluster.netsim import why_unavailable
from tests.sim.scenarios import Scenario, run_scenario

_why = why_unavailable() or (None if HAVE_NATIVE else "benchfab._native is not built (the tcp engine)")
pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.netns,
              pytest.mark.skipif(_why is not None, reason=_why or "")]
NODES = 4


def _retrans(cell: str) -> dict[str, int]:
    """node -> TCP segments retransmitted in its namespace during the test."""
    return {e["node"]: e["deltas"].get("RetransSegs", 0) for e in json.loads(cell) if e["kind"] == "tcp"}


def test_a_lossy_node_verdict_cites_the_retransmits_its_tests_counted(tmp_path: Path) -> None:
    o = run_scenario(Scenario("lossy", loss_pct=3.0), 1, NODES, tmp_path)
    [(kind, (node,))] = o.expected
    assert (kind, (node,)) in o.found, o.found
    run = benchfab.load_run(o.result.path.name, o.result.path.parent)
    on_node = run.tests[run.tests["used"].str.contains(f'"{node}"')]
    counted = [_retrans(c) for c in on_node["counters"]]
    # Every test of the lossy node retransmitted (at whichever end sent the data), and the
    # interface read is the node's own test-network interface, not loopback.
    assert all(sum(c.values()) > 0 for c in counted), counted
    nets = {e["device"] for c in on_node["counters"] for e in json.loads(c) if e["kind"] == "net"}
    assert nets and "lo" not in nets, nets
    diagnosis = load_diagnosis(o.result.path)
    assert diagnosis is not None
    [verdict] = [f for f in diagnosis.verdicts if f.kind == "lossy-node"]
    assert "; counters: RetransSegs +" in verdict.why, verdict.why


def test_a_clean_cluster_gets_no_verdict_and_no_counter_warning(tmp_path: Path) -> None:
    o = run_scenario(Scenario("clean"), 2, NODES, tmp_path)
    diagnosis = load_diagnosis(o.result.path)
    assert o.found == set() and diagnosis is not None and diagnosis.warnings == [], diagnosis
