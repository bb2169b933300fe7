"""Per-rail pairwise tests and NIC verdicts on the simulated cluster: nodes with R NICs, one
bridge (subnet) per rail, a fault on one rail of one node (tc-shaped, or dropping packets).

CI runs 4 nodes x 2 rails over one seed each: a clean cluster gets no verdict, a NIC at
half its peers' rate is one bad-nic verdict naming exactly that node and rail, a NIC losing
1 % of its packets one lossy-nic verdict. BENCHFAB_SIM_SEEDS=1-5 runs more seeds;
benchmarks/rails_sensitivity.py measures bigger clusters (docs/DIAGNOSIS.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchfab.native import HAVE_NATIVE
from benchfab.store import load_run
from tests.fakecluster.netsim import why_unavailable
from tests.sim.scenarios import RailScenario, run_scenario
from tests.sim.test_second_pass import _seeds

_why = why_unavailable() or (None if HAVE_NATIVE else "benchfab._native is not built (the tcp engine)")
pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.netns,
              pytest.mark.skipif(_why is not None, reason=_why or "")]

SEEDS = _seeds(os.environ.get("BENCHFAB_SIM_SEEDS", "1"))
NODES, RAILS = 4, 2


@pytest.mark.parametrize("seed", SEEDS)
def test_a_clean_multi_rail_cluster_gets_no_verdict(tmp_path: Path, seed: int) -> None:
    o = run_scenario(RailScenario("clean", RAILS), seed, NODES, tmp_path)
    assert o.found == set(), o.found
    assert o.result.exit_code() == 0
    # Every pair on every rail, each over its rail's interface (the rail's subnet), in the rounds
    # of all-pairs alone: 4 nodes, 3 rounds of 2 pairs x 2 rails.
    run = load_run(o.result.path)
    passed = run.tests[~run.tests["test_name"].str.contains("retest")]
    assert len(passed) == 6 * RAILS and set(passed["status"]) == {"ok"}
    for used in passed["used"]:
        data = json.loads(used)
        ips = {r["net_ip"] for r in data["ranks"]}
        assert len({ip.rsplit(".", 1)[0] for ip in ips}) == 1, data  # both ends on one rail's subnet
        assert data["rail_device"] == f"sim-rail{data['rail']}"
    assert len([t for t in json.loads((o.result.path / "run.json").read_text())["planned_tests"] if "retest" not in t]) == 12


@pytest.mark.parametrize("seed", SEEDS)
def test_a_nic_at_half_rate_is_named_by_node_and_rail_and_nothing_else(tmp_path: Path, seed: int) -> None:
    o = run_scenario(RailScenario("slow-nic", RAILS, fraction=0.5), seed, NODES, tmp_path)
    assert o.found == o.expected, o.found


@pytest.mark.parametrize("seed", SEEDS)
def test_a_nic_losing_1_percent_is_one_lossy_nic_verdict(tmp_path: Path, seed: int) -> None:
    o = run_scenario(RailScenario("lossy-nic", RAILS, loss_pct=1.0), seed, NODES, tmp_path)
    assert o.found == o.expected, o.found
