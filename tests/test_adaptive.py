"""Adaptive all-pairs (placement.adaptive): the spec's errors, the plan (the screen only, said
so), the focus chosen from a judged screen and its plan, without a cluster. The end-to-end
proof on shaped links is tests/sim/test_adaptive_sim.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchfab.cli import main
from benchfab.errors import SpecError
from benchfab.focus import choose_focus, plan_focus
from benchfab.placement import NodeInfo
from benchfab.planner import plan
from benchfab.screen import draw_sample, focus_bounds, screen_order
from benchfab.spec import SecondPassRules, load_spec_text
from benchfab.triage import judge
from tests.test_diagnosis import frames

HEAD = "backend: kubernetes\nimage: x/benchfab-worker:1\ntests:\n"
ENTRY = ("  - {name: bw, workload: rdma_write_bw, transport: tcp, sizes: [256K], iterations: 5,\n"
         "     placement: {pattern: all-pairs, second_pass: true, adaptive: ADAPTIVE}}\n")
NODES = [f"n{i}" for i in range(8)]


def spec_text(adaptive: str = "{screen: ring, sample: 2, seed: 3}", placement_extra: str = "") -> str:
    entry = ENTRY.replace("ADAPTIVE", adaptive)
    if placement_extra:
        entry = entry.replace("second_pass: true,", f"second_pass: true, {placement_extra},")
    return HEAD + entry


@pytest.mark.parametrize(("adaptive", "extra", "message"), [
    ("{sample: -1}", "", "tests[0].placement.adaptive.sample: sample must be at least 0, got -1"),
    ("{screen: all-pairs}", "", "unknown screen 'all-pairs'"),
    ("{screen: rings}", "", "did you mean 'ring'?"),
    ("{screen: ring, every: 3}", "", "every"),
    ("{screen: ring}", "rails: 2", "adaptive with rails is not supported"),
    ("{screen: ring}", "allow_sharing: true", "adaptive with allow_sharing is not supported"),
])
def test_bad_adaptive_is_one_line(adaptive: str, extra: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec_text(spec_text(adaptive, extra))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_adaptive_needs_all_pairs() -> None:
    text = spec_text().replace("pattern: all-pairs", "pattern: ring")
    with pytest.raises(SpecError, match="adaptive narrows an all-pairs test, the pattern is ring"):
        load_spec_text(text)


def test_adaptive_on_the_local_backend_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "local.yaml"
    path.write_text(spec_text().replace("backend: kubernetes\nimage: x/benchfab-worker:1\n", ""))
    assert main(["validate", str(path)]) == 2
    assert "pattern 'all-pairs' places ranks on several nodes" in capsys.readouterr().err


def test_plan_lists_the_screen_and_says_the_rest_depends_on_it() -> None:
    spec = load_spec_text(spec_text())
    placed = plan(spec, [NodeInfo(x, slots={"loopback": 1}) for x in NODES], skip_unplaceable=True)
    # The ring screen: 8 pairs in 2 rounds, each node with both neighbours in the seeded order.
    assert [len(r.tests) for r in placed.rounds] == [4, 4]
    order = screen_order(NODES, 3)
    assert order != NODES and sorted(order) == NODES and order == screen_order(NODES, 3)
    assert {frozenset(t.hosts) for t in placed.tests} == {frozenset((order[i], order[(i + 1) % 8])) for i in range(8)}
    other = plan(load_spec_text(spec_text("{screen: ring, seed: 4}")), [NodeInfo(x, slots={"loopback": 1}) for x in NODES])
    assert {frozenset(t.hosts) for t in other.tests} != {frozenset(t.hosts) for t in placed.tests}  # another seed, other pairs
    note = next(n for n in placed.notes if "adaptive" in n)
    assert "ring screen only" in note and "at most 28 in 7 round(s)" in note and "3 with one flagged" in note


def test_plan_json_says_the_estimate_is_a_lower_bound(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(spec_text("{screen: k-groups}"))
    assert main(["plan", str(path), "--nodes", "8", "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["estimate_is_lower_bound"] is True
    assert len(doc["tests"]) == 4  # k-groups of 2: one round of 4 disjoint pairs
    plain = tmp_path / "p.yaml"
    plain.write_text(spec_text().replace(", adaptive: {screen: ring, sample: 2, seed: 3}", ""))
    assert main(["plan", str(plain), "--nodes", "8", "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["estimate_is_lower_bound"] is False and len(doc["tests"]) == 28


def test_focus_bounds() -> None:
    assert focus_bounds(1024, 8, 0) == (0, 0)  # nothing flagged: the screen was all
    assert focus_bounds(1024, 8, 4) == (66, 11)  # 12 nodes: 11 rounds of 6 pairs
    assert focus_bounds(1024, 8) == (1024 * 1023 // 2, 1023)  # every node flagged: full all-pairs
    assert focus_bounds(10, 8, 5) == (45, 9)  # never more nodes than there are


def _ring_screen() -> list[tuple[str, str]]:
    return [(NODES[i], NODES[(i + 1) % 8]) for i in range(8)]


def test_the_focus_is_the_flagged_nodes_and_a_seeded_sample() -> None:
    spec = load_spec_text(spec_text())
    entry = spec.resolved_tests()[0]
    figures = {p: 100.0 for p in _ring_screen()}
    figures[("n2", "n3")] = 40.0  # a slow link between ring neighbours
    s, r, t = frames(figures)
    chosen = choose_focus(judge(s, r, t, SecondPassRules(), {"bw"}, {"bw"}), NODES, SecondPassRules(), entry)
    assert chosen["flagged"] == ["n2", "n3"]
    assert len(chosen["sampled"]) == 2 and not set(chosen["sampled"]) & {"n2", "n3"}
    again = choose_focus(judge(s, r, t, SecondPassRules(), {"bw"}, {"bw"}), NODES, SecondPassRules(), entry)
    assert again == chosen  # the seed makes the draw repeatable
    good = [x for x in NODES if x not in ("n2", "n3")]
    assert draw_sample(good, 2, 3) == chosen["sampled"] and draw_sample(good, 9, 3) == good


def test_a_clean_screen_flags_nothing_and_samples_nothing() -> None:
    entry = load_spec_text(spec_text()).resolved_tests()[0]
    s, r, t = frames({p: 100.0 for p in _ring_screen()})
    chosen = choose_focus(judge(s, r, t, SecondPassRules(), {"bw"}, {"bw"}), NODES, SecondPassRules(), entry)
    assert chosen["flagged"] == [] and chosen["sampled"] == []


def test_the_focus_plan_is_all_pairs_among_the_chosen_nodes() -> None:
    spec = load_spec_text(spec_text())
    nodes = [NodeInfo(x, slots={"loopback": 1}) for x in NODES]
    recorded = {"bw": {"screen": "ring", "seed": 3, "sample": 2, "flagged": ["n2", "n3"], "sampled": ["n0", "n6"],
                       "dead": []}}
    # A recorded choice (a resumed run's run.json) is reused: no stored screen is read.
    focus = plan_focus(spec, Path("/nonexistent"), nodes, recorded=recorded)
    pairs = {t.hosts for t in focus.plan.tests}
    assert len(pairs) == 6 and {x for p in pairs for x in p} == {"n0", "n2", "n3", "n6"}
    assert all(t.spec.name == "bw-focus" and t.test_id.startswith("000-bw-focus-") for t in focus.plan.tests)
    assert [r.index for r in focus.plan.rounds] == [0, 1, 2]
    assert focus.record["bw"]["tests"] == 6
    nothing = plan_focus(spec, Path("/nonexistent"), nodes, recorded={"bw": {**recorded["bw"], "flagged": [], "sampled": []}})
    assert nothing.plan.tests == [] and nothing.record["bw"]["tests"] == 0
