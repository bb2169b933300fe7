"""The planner as a stream (planner.plan_stream): the same rounds as plan(), placed one at a
time; all-pairs rounds computed alone; a huge plan counted (planshape) and `benchfab plan`
summarising it instead of listing every test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchfab.backends.kubernetes.render import offline_nodes
from benchfab.cli import main
from benchfab.cli import specs as spec_commands
from benchfab.costs import pod_costs
from benchfab.errors import PlacementError
from benchfab.placement import NodeInfo, all_pairs_array, all_pairs_round, all_pairs_rounds, assign_slots
from benchfab.planner import plan, plan_stream
from benchfab.planshape import first_rounds, plan_shape
from benchfab.spec import load_spec_text

SPEC = """\
backend: kubernetes
image: x/y:1
profiles:
  ib: {fabric: ib, mode: shared, resource: rdma/a, network: n}
  roce: {fabric: roce, mode: shared, resource: rdma/b, network: m}
tests:
  - {name: pairs, sizes: [8, 1M], device: cpu, dtypes: [float32, bfloat16], placement: {pattern: all-pairs}}
  - {name: few, sizes: [8], device: cpu, profiles: roce, placement: {pattern: all-pairs, max_rounds: 2}}
  - {name: ring, sizes: [8], device: cpu, placement: {pattern: ring}}
  - {name: groups, sizes: [8], device: cpu, placement: {pattern: k-groups, k: 3}}
  - {name: shared, sizes: [8], device: cpu, profiles: ib, placement: {pattern: all-pairs, allow_sharing: true}}
"""


def _nodes(n: int, short: int | None = None) -> list[NodeInfo]:
    """n nodes with 2 slots of each profile; node ``short`` has no roce slot (left out of roce tests)."""
    return [NodeInfo(f"n{i:02d}", slots={"ib": 2, "roce": 0 if i == short else 2}) for i in range(n)]


@pytest.mark.parametrize("n", [2, 3, 8, 9])
def test_all_pairs_rounds_one_at_a_time_are_the_full_array(n: int) -> None:
    full = all_pairs_array(n)
    lazy = list(all_pairs_rounds(n))
    assert len(lazy) == len(full) and all(np.array_equal(a, b) for a, b in zip(full, lazy))
    assert np.array_equal(all_pairs_round(n, len(full) - 1), full[-1])
    pairs = {tuple(p) for r in lazy for p in r.tolist()}
    assert len(pairs) == n * (n - 1) // 2  # every pair once


@pytest.mark.parametrize("n", [7, 10])
def test_the_stream_is_the_plan_round_by_round(n: int) -> None:
    """Every round of the stream, in order, is plan()'s: same index, test ids, members,
    estimates and overheads; its notes and left-out nodes are plan()'s once it is consumed."""
    spec, nodes = load_spec_text(SPEC), _nodes(n, short=3)
    whole = plan(spec, nodes, skip_unplaceable=True)
    stream = plan_stream(spec, nodes, True)
    rounds = list(stream.rounds)
    assert [(r.index, r.overhead_s, [(t.test_id, t.members, t.estimate_s, t.spec.ranks) for t in r.tests]) for r in rounds] \
        == [(r.index, r.overhead_s, [(t.test_id, t.members, t.estimate_s, t.spec.ranks) for t in r.tests])
            for r in whole.rounds]
    assert set(stream.notes) <= set(whole.notes) and tuple(stream.left_out) == whole.left_out
    assert any("n03" in node for node, _ in whole.left_out)


@pytest.mark.parametrize("n", [7, 10])
def test_the_shape_counts_what_plan_places(n: int) -> None:
    """plan_shape's rounds and tests per combination (all-pairs counted by arithmetic) are
    those of the placed plan, and first_rounds are its first rounds."""
    spec, nodes = load_spec_text(SPEC), _nodes(n, short=3)
    whole = plan(spec, nodes, skip_unplaceable=True)
    shapes = plan_shape(spec, nodes, pod_costs())
    assert sum(s.rounds for s in shapes) == len(whole.rounds)
    assert sum(s.tests for s in shapes) == len(whole.tests)
    for s in shapes:
        placed = [r for r in whole.rounds if r.tests[0].test_id.startswith(s.test_id + "-")]
        assert (s.rounds, s.tests) == (len(placed), sum(len(r.tests) for r in placed)), s
    few = next(s for s in shapes if s.test_id.startswith("001-few"))
    assert few.rounds == 2 and few.tests == 2 * ((n - 1) // 2)  # max_rounds, on the n-1 roce nodes
    firsts = first_rounds(spec, nodes, 3, pod_costs())
    assert [[t.test_id for t in r.tests] for r in firsts] == [[t.test_id for t in r.tests] for r in whole.rounds[:3]]


def test_a_round_that_names_a_node_twice_is_refused_naming_it() -> None:
    with pytest.raises(PlacementError, match="node b is in two tests of one round"):
        assign_slots([[("a", "b"), ("b", "c")]], {"a": 1, "b": 1, "c": 1})
    with pytest.raises(PlacementError, match="names a node twice"):
        assign_slots([[("a", "a")]], {"a": 2})
    placed, notes = assign_slots([[("a", "b"), ("c", "d")]], {"a": 2, "b": 2, "c": 2, "d": 0}, 2)
    assert placed == [[(("a", 0), ("a", 1), ("b", 0), ("b", 1))]] and notes == [
        "c+d skipped: d has 0 free slot(s), a test needs 2"]


def test_plan_counts_a_huge_plan_instead_of_listing_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Over LIST_LIMIT tests (lowered here to 50: 40 nodes plan 780 pairs) `benchfab plan`
    prints each combination's rounds and tests and the first rounds, in text and in JSON."""
    monkeypatch.setattr(spec_commands, "LIST_LIMIT", 50)
    path = tmp_path / "pairs.yaml"
    path.write_text(SPEC)
    assert main(["plan", str(path), "--nodes", "40"]) == 0
    out = capsys.readouterr().out
    spec = load_spec_text(SPEC)
    whole = plan(spec, offline_nodes(spec, 40), skip_unplaceable=True)  # the nodes --nodes 40 makes up
    assert f"{len(whole.tests):,} test(s) in {len(whole.rounds):,} round(s)" in out
    assert "counted, not listed" in out and "000-pairs-ib-float32" in out and "780" in out
    assert out.count("\nround ") == spec_commands.FIRST_ROUNDS and "round 0: 20 test(s)" in out
    assert main(["plan", str(path), "--nodes", "40", "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["listed"] is False and doc["tests_total"] == len(whole.tests)
    assert {t["round"] for t in doc["tests"]} == {0, 1, 2}
    monkeypatch.setattr(spec_commands, "LIST_LIMIT", 100_000)
    assert main(["plan", str(path), "--nodes", "40"]) == 0
    assert "counted, not listed" not in capsys.readouterr().out


def test_a_rounds_pods_are_found_once_per_plan() -> None:
    """PodPool.wanted_slots starts the whole profile's pool (reuse_pods): the slots of every
    test of the plan, found once per plan and shape (a scan per round cost 0.43 s of CPU on
    1,024 nodes), and found again for another plan (the second pass's)."""
    from types import SimpleNamespace

    from benchfab.backends.kubernetes.pods import PodPool, pod_keys

    spec, nodes = load_spec_text(SPEC), _nodes(6)
    whole = plan(spec, nodes, skip_unplaceable=True)
    pool = PodPool(SimpleNamespace(namespace="ns"), spec, dict, lambda state: None)  # type: ignore[arg-type]
    pool.plan = whole
    every = sorted({k for t in whole.tests if t.profile_name == "ib" for k in pod_keys(t)})
    first_round = list(whole.rounds[0].tests)
    assert pool.wanted_slots("ib", first_round) == every
    assert pool.wanted_slots("ib", list(whole.rounds[1].tests)) == every
    fewer = plan(spec, nodes[:3], skip_unplaceable=True)
    pool.plan = fewer
    assert pool.wanted_slots("ib", list(fewer.rounds[0].tests)) == sorted(
        {k for t in fewer.tests if t.profile_name == "ib" for k in pod_keys(t)})
