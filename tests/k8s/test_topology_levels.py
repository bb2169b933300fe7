"""A multi-level topology (nodes.topology_keys: [block, leaf]) read from the nodes' labels
through the fake API server: leaves of the same name in two blocks are different leaves,
and the cross-leaf plan takes the fewest rounds (benchfab.edgecolour)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from benchfab.backends.kubernetes.inventory import leaf_of
from benchfab.edgecolour import fewest_rounds
from benchfab.errors import SpecError
from benchfab.spec import NodeSelection, load_spec_text
from tests.fakecluster import SHARED, FakeCluster

pytestmark = pytest.mark.k8s

SPEC = """\
backend: kubernetes
namespace: bench
image: x/benchfab:1
profiles:
  shared: {fabric: ib, mode: shared, resource: rdma/rdma_shared_device_a, network: rdma-net}
nodes: {topology_keys: [example.com/block, example.com/leaf]}
defaults: {device: cuda}
tests: [{name: cross, placement: {pattern: topology, scope: cross-leaf}}]
"""


def test_leaf_of_joins_every_level() -> None:
    keys = NodeSelection(topology_keys=["block", "leaf"]).leaf_keys()
    assert leaf_of({"block": "b1", "leaf": "l1"}, keys) == "b1/l1"
    assert leaf_of({"leaf": "l1"}, keys) is None  # a level missing: no leaf, as with no label
    assert leaf_of({"block": "b1", "leaf": "l1"}, NodeSelection(topology_key="leaf").leaf_keys()) == "l1"
    assert leaf_of({"leaf": "l1"}, NodeSelection().leaf_keys()) is None
    with pytest.raises(SpecError, match="topology_key and topology_keys are both given"):
        load_spec_text(SPEC.replace("nodes: {", "nodes: {topology_key: x, "))


def test_cross_leaf_plan_over_blocks_and_leaves(cluster: FakeCluster, cli: Callable[..., CompletedProcess[str]],
                                                write_spec: Callable[..., Path]) -> None:
    # Two blocks, each with leaves l0 (3 nodes) and l1 (2 nodes): four leaves of 3, 2, 3, 2.
    leaf_of: dict[str, str] = {}
    for block in ("b0", "b1"):
        for leaf, count in (("l0", 3), ("l1", 2)):
            for i in range(count):
                name = f"{block}-{leaf}-{i}"
                cluster.add_node(name, labels={"example.com/block": block, "example.com/leaf": leaf},
                                 allocatable={SHARED: 63, "nvidia.com/gpu": 8})
                leaf_of[name] = f"{block}/{leaf}"
    cluster.add_nad("bench", "rdma-net", SHARED)
    proc = cli("plan", str(write_spec(SPEC)), "--kubeconfig", str(cluster.kubeconfig), "-o", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tests = json.loads(proc.stdout)["tests"]
    pairs = [tuple(sorted(t["hosts"])) for t in tests]
    assert len(pairs) == len(set(pairs))
    wanted = {(a, b) for a in leaf_of for b in leaf_of if a < b and leaf_of[a] != leaf_of[b]}
    assert set(pairs) == wanted  # b0-l0-* and b1-l0-* are in different leaves: their pairs are planned
    assert ("b0-l0-0", "b1-l0-0") in wanted
    rounds: dict[int, list[str]] = {}
    for t in tests:
        rounds.setdefault(t["round"], []).extend(t["hosts"])
    assert all(len(hosts) == len(set(hosts)) for hosts in rounds.values())
    assert len(rounds) == fewest_rounds([3, 2, 3, 2]) == 8  # 10 nodes, the smallest leaf 2: 8 partners
