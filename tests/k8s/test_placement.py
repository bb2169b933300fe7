"""Placement patterns and the Kubernetes planner: unit and property tests (pure, fast)."""

from __future__ import annotations

from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchfab import placement as pl
from benchfab.errors import PlacementError
from benchfab.placement import NodeInfo
from benchfab.planner import plan
from benchfab.spec import load_spec_text

pytestmark = pytest.mark.k8s


def names(n: int) -> list[str]:
    return [f"n{i:03d}" for i in range(n)]


def assert_disjoint(rounds: list[list[tuple[str, ...]]]) -> None:
    for rnd in rounds:
        flat = [x for g in rnd for x in g]
        assert len(flat) == len(set(flat)), rnd


@given(st.integers(min_value=2, max_value=80))
@settings(max_examples=60, deadline=None)
def test_all_pairs_is_a_round_robin(n: int) -> None:
    rounds = [r.tolist() for r in pl.all_pairs_rounds(n)]
    # n-1 rounds of n/2 disjoint pairs; odd n: n rounds, one node rests each round
    assert len(rounds) == (n - 1 if n % 2 == 0 else n)
    for rnd in rounds:
        assert len(rnd) == n // 2
        flat = [x for p in rnd for x in p]
        assert len(set(flat)) == len(flat)
        assert all(0 <= a < b < n for a, b in rnd)
    pairs = [tuple(p) for rnd in rounds for p in rnd]
    assert sorted(pairs) == sorted(combinations(range(n), 2))  # every pair exactly once
    if n % 2:
        rested = [set(range(n)) - {x for p in rnd for x in p} for rnd in rounds]
        assert sorted(x for r in rested for x in r) == list(range(n))  # each node rests exactly once


def test_all_pairs_small_cases() -> None:
    assert list(pl.all_pairs_rounds(1)) == []
    assert pl.all_pairs(["a", "b"]) == [[("a", "b")]]
    assert sorted(p for r in pl.all_pairs(["a", "b", "c"]) for p in r) == [("a", "b"), ("a", "c"), ("b", "c")]


@given(st.integers(min_value=2, max_value=60))
@settings(max_examples=40, deadline=None)
def test_ring_pairs_neighbours_disjointly(n: int) -> None:
    nodes = names(n)
    rounds = pl.ring_rounds(nodes)
    assert_disjoint(rounds)
    pairs = {frozenset(p) for r in rounds for p in r}
    expected = {frozenset((nodes[i], nodes[(i + 1) % n])) for i in range(n)}
    assert pairs == expected
    assert len(rounds) <= (1 if n == 2 else 2 if n % 2 == 0 else 3)


@given(st.integers(min_value=2, max_value=50), st.integers(min_value=2, max_value=9))
@settings(max_examples=60, deadline=None)
def test_k_groups_cover_every_node(n: int, k: int) -> None:
    nodes = names(n)
    if n < k:
        with pytest.raises(PlacementError):
            pl.k_groups(nodes, k)
        return
    rounds = pl.k_groups(nodes, k)
    assert_disjoint(rounds)
    assert all(len(g) == k for r in rounds for g in r)
    assert {x for r in rounds for g in r for x in g} == set(nodes)
    assert len(rounds) == (1 if n % k == 0 else 2)


leaves = st.lists(st.sampled_from(["leaf-a", "leaf-b", "leaf-c", None]), min_size=2, max_size=40)


@given(leaves)
@settings(max_examples=60, deadline=None)
def test_topology_pairs_same_and_cross_leaf(assignment: list[str | None]) -> None:
    nodes = names(len(assignment))
    leaf = dict(zip(nodes, assignment))
    same = pl.topology_pairs(nodes, leaf, "same-leaf")
    cross = pl.topology_pairs(nodes, leaf, "cross-leaf")
    for rounds in (same, cross):
        assert_disjoint(rounds)
    same_pairs = [frozenset(p) for r in same for p in r]
    cross_pairs = [frozenset(p) for r in cross for p in r]
    assert all(leaf[a] == leaf[b] for a, b in (tuple(p) for p in same_pairs))
    assert all(leaf[a] != leaf[b] for a, b in (tuple(p) for p in cross_pairs))
    # together: every pair once
    assert sorted(map(sorted, same_pairs + cross_pairs)) == sorted(map(sorted, map(list, combinations(nodes, 2))))
    # same-leaf runs the leaves side by side: as many rounds as the biggest leaf needs
    sizes = [assignment.count(x) for x in set(assignment)]
    biggest = max(sizes)
    assert len(same) == (0 if biggest < 2 else biggest - 1 if biggest % 2 == 0 else biggest)
    # cross-leaf never takes more rounds than the global round robin; on two leaves it
    # takes the minimum, the bigger leaf's size (each of its nodes has that many partners)
    global_rr = [r for r in ([p for p in rnd if leaf[p[0]] != leaf[p[1]]] for rnd in pl.all_pairs(nodes)) if r]
    assert len(cross) <= len(global_rr)
    if len(sizes) == 2:
        assert len(cross) == max(sizes)


@pytest.mark.parametrize("a, b", [(4, 4), (3, 3), (2, 5), (1, 7), (8, 8)], ids=lambda v: str(v))
def test_cross_leaf_pairs_take_the_fewest_rounds(a: int, b: int) -> None:
    nodes = [f"a{i}" for i in range(a)] + [f"b{i}" for i in range(b)]
    leaf = {x: x[0] for x in nodes}
    cross = pl.topology_pairs(nodes, leaf, "cross-leaf")
    assert_disjoint(cross)
    assert sorted(tuple(sorted(p)) for r in cross for p in r) == sorted((x, y) for x in nodes[:a] for y in nodes[a:])
    assert len(cross) == max(a, b)  # 4 rounds on 4+4 (was 6), 3 on 3+3 (was 5)


def test_one_group_fills_a_leaf_first() -> None:
    nodes = ["a1", "b1", "a2", "b2", "a3"]
    leaf = {"a1": "A", "a2": "A", "a3": "A", "b1": "B", "b2": "B"}
    assert pl.one_group(nodes, 3, leaf) == ("a1", "a2", "a3")
    assert pl.one_group(nodes, 4, leaf) == ("a1", "a2", "a3", "b1")
    with pytest.raises(PlacementError, match="group of 6 nodes"):
        pl.one_group(nodes, 6, leaf)


@given(st.integers(min_value=4, max_value=30), st.data())
@settings(max_examples=50, deadline=None)
def test_retest_pairs_suspects_with_good_nodes(n: int, data: st.DataObject) -> None:
    nodes = names(n)
    all_pairs = list(combinations(nodes, 2))
    suspects = data.draw(st.lists(st.sampled_from(all_pairs), min_size=1, max_size=3, unique=True))
    sus_nodes = {x for p in suspects for x in p}
    good = [x for x in nodes if x not in sus_nodes]
    if not good:
        with pytest.raises(PlacementError):
            pl.retest_rounds(suspects, good)
        return
    rounds = pl.retest_rounds(suspects, good)
    assert_disjoint(rounds)
    tests = [g for r in rounds for g in r]
    with_good = [g for g in tests if g[1] in good]
    assert sorted(a for a, _ in with_good) == sorted(sus_nodes)  # each suspect retested once with a good node
    # ... and each suspect pair rerun itself, once (noise is ruled out before a verdict)
    assert sorted(g for g in tests if g[1] not in good) == sorted((min(p), max(p)) for p in suspects)


def test_a_pair_naming_one_node_twice_retests_that_node_alone() -> None:
    rounds = pl.retest_rounds([("a", "a"), ("b", "c")], ["g1", "g2", "g3"])
    tests = sorted(g for r in rounds for g in r)
    assert [g for g in tests if g[1].startswith("g")] == sorted(g for g in tests if g != ("b", "c"))
    assert ("b", "c") in tests and not any(g == ("a", "a") for g in tests) and len(tests) == 4


@given(st.integers(min_value=2, max_value=24), st.integers(min_value=1, max_value=4),
       st.integers(min_value=1, max_value=8), st.booleans())
@settings(max_examples=60, deadline=None)
def test_assign_slots_respects_capacity_and_sharing(n: int, per_node: int, cap: int, share: bool) -> None:
    nodes = names(n)
    slots = {x: (cap if i % 5 else max(0, cap - 2)) for i, x in enumerate(nodes)}
    rounds = pl.all_pairs(nodes)
    placed, notes = pl.assign_slots(rounds, slots, per_node, share)
    pl.check_rounds(placed, slots)  # no (node, slot) twice in a round, none beyond capacity
    for rnd in placed:
        for members in rnd:
            assert len(members) == 2 * per_node
        if not share:
            hosts = [m[0] for members in rnd for m in members[::per_node]]
            assert len(hosts) == len(set(hosts))
    kept = {frozenset(m[0] for m in members) for r in placed for members in r}
    fits = {frozenset(p) for r in rounds for p in r if all(slots[x] >= per_node for x in p)}
    assert kept == fits  # every pair that fits ran, the rest has a note
    assert len(notes) == sum(len(r) for r in rounds) - len(fits)
    if share and all(v >= 2 * per_node for v in slots.values()) and n > 3:
        assert len(placed) < len(rounds)  # sharing packs rounds together


def test_check_rounds_catches_double_booking() -> None:
    with pytest.raises(PlacementError, match="in two tests"):
        pl.check_rounds([[(("a", 0), ("b", 0)), (("a", 0), ("c", 0))]])
    with pytest.raises(PlacementError, match="beyond"):
        pl.check_rounds([[(("a", 1), ("b", 0))]], {"a": 1, "b": 1})
    with pytest.raises(PlacementError, match="two tests of one round"):
        pl.assign_slots([[("a", "b"), ("a", "c")]], {"a": 1, "b": 1, "c": 1})


K8S_SPEC = """\
name: k
backend: kubernetes
image: reg/benchfab-worker:1
profiles:
  shared: {fabric: ib, mode: shared, resource: rdma/rdma_shared_device_a, network: rdma-net}
  sriov: {fabric: ib, mode: sriov, resource: nvidia.com/cx7_sriov_rdma, network: sriov-rdma-net}
defaults: {sizes: [8, 1M], iterations: 5, device: cpu}
tests:
  - name: pairs
    placement: {pattern: all-pairs}
  - name: ar
    profiles: shared
    placement: {pattern: group, nodes: 4, gpus_per_node: 2}
  - name: rails
    profiles: shared
    placement: {pattern: group, nodes: 3, rails: 2}
"""


def test_plan_kubernetes_rounds_ids_and_capacity() -> None:
    spec = load_spec_text(K8S_SPEC)
    nodes = [NodeInfo(f"node-{i}", leaf="A" if i < 3 else "B", slots={"shared": 8, "sriov": 1 if i else 0})
             for i in range(5)]
    placed = plan(spec, nodes)
    by_profile = [(t.profile_name, t.spec.name) for t in placed.tests]
    # profile-major order: all of 'shared' first, so its pods are reused
    assert [p for p, _ in by_profile] == sorted([p for p, _ in by_profile], key=["shared", "sriov"].index)
    shared_pairs = [t for t in placed.tests if t.spec.name == "pairs" and t.profile_name == "shared"]
    assert len(shared_pairs) == 10 and {len(t.members) for t in shared_pairs} == {2}
    assert shared_pairs[0].test_id.startswith("000-pairs-shared-node-")
    sriov_pairs = [t for t in placed.tests if t.profile_name == "sriov"]
    assert len(sriov_pairs) == 6 and all("node-0" not in t.hosts for t in sriov_pairs)  # node-0 has no VF
    # the node without a VF is named, with why (no reason from the inventory: the slot count)
    assert placed.left_out == (("node-0", "0 free slot(s) for profile sriov, pairs needs 1 per node"),)
    ar = next(t for t in placed.tests if t.spec.name == "ar")
    assert ar.spec.ranks == 8 and ar.task().ranks == 8 and ar.hosts == ("node-0", "node-1", "node-2", "node-3")
    # one pod per node owning its 2 GPUs (torchrun's shape): rank = pod index * 2 + LOCAL_RANK
    assert ar.members == tuple((f"node-{i}", 0) for i in range(4)) and ar.local_ranks == 2
    assert all(t.local_ranks == 1 for t in placed.tests if t.spec.name != "ar")  # pairs and per-rail groups
    rails = [t for t in placed.tests if t.spec.name == "rails"]
    assert len(rails) == 2 and len({t.test_id for t in rails}) == 2
    rnd = next(r for r in placed.rounds if rails[0] in r.tests)
    assert len(rnd.tests) == 2  # rails run side by side: different slots of the same nodes
    for r in placed.rounds:
        pl.check_rounds([[t.members for t in r.tests]])
    assert len({t.test_id for t in placed.tests}) == len(placed.tests)
    # stable ids between plans
    assert [t.test_id for t in plan(spec, nodes).tests] == [t.test_id for t in placed.tests]


def test_plan_kubernetes_refuses_empty_inventory() -> None:
    with pytest.raises(PlacementError, match="ar/shared: a group of 4 nodes, the inventory has 0"):
        plan(load_spec_text(K8S_SPEC), [])
    pairs_only = load_spec_text(K8S_SPEC.split("  - name: ar")[0])
    with pytest.raises(PlacementError, match="nothing to run"):
        plan(pairs_only, [NodeInfo("a", slots={"shared": 1})])
