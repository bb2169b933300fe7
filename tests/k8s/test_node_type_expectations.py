"""Expectations per node type on the fake cluster: the Kubernetes backend records each node's
labels in the run's inventory, and an ``expect_by_node`` entry judges exactly the pairs whose
nodes all carry its labels (real HTTP, real agent processes, tcp bandwidth between them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchfab.compare.expectations import BELOW, judge_run
from benchfab.native import HAVE_NATIVE
from tests.fakecluster import SHARED, SRIOV, FakeCluster
from tests.k8s.helpers import SPEC, sweep

pytestmark = [pytest.mark.k8s, pytest.mark.slow,
              pytest.mark.skipif(not HAVE_NATIVE, reason="benchfab._native is not built (the tcp engine)")]

PRODUCT = "nvidia.com/gpu.product"
TESTS = """\
  - name: bw
    workload: rdma_write_bw
    transport: tcp
    sizes: [64K]
    iterations: 100
    placement: {pattern: all-pairs}
    expect: {bandwidth: ">= 1 kb/s"}
    expect_by_node:
      - match: {nvidia.com/gpu.product: H100}
        expect: {bandwidth: ">= 100 Tb/s"}
"""


def test_expect_by_node_judges_the_pairs_of_that_node_type(cluster: FakeCluster, tmp_path: Path) -> None:
    for name, product in (("gpu-node-0", "H100"), ("gpu-node-1", "H100"), ("gpu-node-2", "A100")):
        cluster.add_node(name, labels={"nvidia.com/gpu.present": "true", "example.com/leaf": "leaf-0", PRODUCT: product},
                         allocatable={SHARED: 63, SRIOV: 4, "nvidia.com/gpu": 8})
    cluster.add_nad("bench", "rdma-net", SHARED)
    # agents start slowly on a loaded 2-core box: more start time than test_e2e's 20 s
    result, _backend, out = sweep(cluster, SPEC.replace("start_timeout: 20s", "start_timeout: 120s") + TESTS, tmp_path / "res")
    assert set(result.counts) == {"ok"}, out
    run = tmp_path / "res" / "r"
    nodes = json.loads((run / "run.json").read_text())["inventory"]["nodes"]
    assert {n["name"]: n["labels"][PRODUCT] for n in nodes} == {"gpu-node-0": "H100", "gpu-node-1": "H100",
                                                                "gpu-node-2": "A100"}
    judged = judge_run(run)
    assert judged is not None
    by_pair = {frozenset(j.key_id.split("/")[-1].split(",")): j for j in judged.judged}
    assert len(by_pair) == 3  # each pair judged once: the H100 bound replaced the defaults' for the H100 pair
    h100 = by_pair[frozenset({"gpu-node-0", "gpu-node-1"})]
    assert (h100.verdict, h100.node_type, h100.expected) == (BELOW, f"{PRODUCT}=H100", ">= 100 Tb/s")
    for mixed in ({"gpu-node-0", "gpu-node-2"}, {"gpu-node-1", "gpu-node-2"}):
        assert (by_pair[frozenset(mixed)].verdict, by_pair[frozenset(mixed)].node_type) == ("met", "any node")
    assert judged.exit_code == 1
