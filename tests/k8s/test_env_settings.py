"""A test's NCCL settings (sweep_env) reach its rank pods on the fake cluster (real HTTP, real
agent and gloo worker processes): each variant's ranks see its values, through the task
annotation, never a shell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import benchfab
from tests.fakecluster import FakeCluster, seed_nodes
from tests.k8s.helpers import SPEC, assert_clean, sweep

pytestmark = [pytest.mark.k8s, pytest.mark.slow]


def test_each_variant_reaches_its_pods(cluster: FakeCluster, tmp_path: Path) -> None:
    seed_nodes(cluster, 2)
    text = SPEC + ("  - name: ar\n    placement: {pattern: group, nodes: 2}\n"
                   "    sweep_env: {NCCL_ALGO: [Ring, Tree]}\n    env: {NCCL_PROTO: '$(touch /tmp/benchfab-x)'}\n")
    result, _, out = sweep(cluster, text, tmp_path / "res")
    assert result.counts == {"ok": 2}, out
    run = benchfab.load_run("r", tmp_path / "res")
    for test_id, used in zip(run.tests["test_id"], run.tests["used"]):
        ranks = json.loads(used)["ranks"]
        algo = test_id.split(".ALGO-")[1].split("-")[0]
        assert len(ranks) == 2 and {r["env"]["NCCL_ALGO"] for r in ranks} == {algo}, test_id
        assert {r["env"]["NCCL_PROTO"] for r in ranks} == {"$(touch /tmp/benchfab-x)"}
    assert set(run.summary["env"]) == {"NCCL_ALGO=Ring NCCL_PROTO=$(touch /tmp/benchfab-x)",
                                       "NCCL_ALGO=Tree NCCL_PROTO=$(touch /tmp/benchfab-x)"}
    assert set(run.summary["env_check"]) == {"not checked"}  # gloo ranks: no NCCL log
    assert not Path("/tmp/benchfab-x").exists()
    assert_clean(cluster)
