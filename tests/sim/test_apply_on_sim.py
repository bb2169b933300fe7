"""Applied verdicts on the simulated cluster (real, shaped links; tests/fakecluster/netsim.py):
``benchfab sweep --apply-verdicts`` taints exactly the node seeded slow (and labels the others
``ok``), and a clean cluster gets ``ok`` only, no taint. The CLI as a user runs it."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchfab.native import HAVE_NATIVE
from tests.conftest import run_cli
from tests.fakecluster.netsim import why_unavailable
from tests.fakecluster.simcluster import SPEC_HEAD, SimCluster
from tests.sim.test_second_pass import RATE, SLOW, _seeds

_why = why_unavailable() or (None if HAVE_NATIVE else "benchfab._native is not built (the tcp engine)")
pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.netns,
              pytest.mark.skipif(_why is not None, reason=_why or "")]

BW = """\
name: apply-sim
kubernetes: {start_timeout: 30s}
second_pass: {above_median: null}
defaults: {timeout: 60s}
tests:
  - {name: bw, workload: rdma_write_bw, transport: tcp, sizes: [256K], iterations: 20, warmup: 3,
     placement: {pattern: all-pairs, second_pass: true}}
"""


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimCluster]:
    made = SimCluster.start(4, tmp_path / "cluster", RATE)
    try:
        yield made
    finally:
        made.stop()
        assert made.net.leftovers() == []


def sweep_and_apply(sim: SimCluster, tmp: Path) -> tuple[int, str]:
    spec = tmp / "spec.yaml"
    spec.write_text(SPEC_HEAD + BW)
    proc = run_cli("sweep", str(spec), "--apply-verdicts", "--results", str(tmp / "res"), "--no-progress",
                   "--kubeconfig", str(sim.cluster.kubeconfig))
    return proc.returncode, proc.stdout + proc.stderr


def marks(sim: SimCluster) -> dict[str, tuple[str | None, list[dict[str, Any]]]]:
    out = {}
    for node in sim.cluster.store.list("nodes", None):
        verdict = (node["metadata"].get("labels") or {}).get("benchfab.io/verdict")
        taints = [t for t in node["spec"].get("taints") or [] if t["key"].startswith("benchfab.io/")]
        out[node["metadata"]["name"]] = (verdict, taints)
    return out


@pytest.mark.parametrize("seed", _seeds(os.environ.get("BENCHFAB_SIM_SEEDS", "1")))
def test_an_applied_bad_node_verdict_taints_exactly_the_seeded_node(sim: SimCluster, tmp_path: Path,
                                                                    seed: int) -> None:
    slow = random.Random(seed).choice(sim.names)
    sim.slow_node(slow, SLOW)
    code, out = sweep_and_apply(sim, tmp_path)
    print("\n".join(line for line in out.splitlines() if line.startswith(("# applied", "# cleared", "bad-", "# diag"))))
    assert code == 1, out  # a verdict names a fault
    taint = [{"key": "benchfab.io/verdict", "value": "bad-node", "effect": "NoSchedule"}]
    assert marks(sim) == {n: ("bad-node", taint) if n == slow else ("ok", []) for n in sim.names}, out
    assert f"# applied: node {slow}: benchfab.io/verdict=bad-node" in out
    assert out.count("# applied: node ") == len(sim.names)


def test_a_clean_run_applies_ok_only(sim: SimCluster, tmp_path: Path) -> None:
    code, out = sweep_and_apply(sim, tmp_path)
    assert code == 0, out
    assert marks(sim) == {n: ("ok", []) for n in sim.names}, out
