"""The second pass's rules and verdicts on stored-run frames (the end-to-end proof on real
shaped links is tests/sim/test_second_pass.py)."""

from __future__ import annotations

import json
from itertools import combinations

import pandas as pd
import pytest

from benchfab.diagnosis import Diagnosis, Judged, classify, find_suspects, judge, verdict_table
from benchfab.errors import SpecError, pod_not_started
from benchfab.spec import SecondPassRules, load_spec_text


def frames(figures: dict[tuple[str, str], float], workload: str = "rdma_write_bw",
           name: str = "bw") -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Summary, raw and tests frames of one all-pairs entry: one row per pair with its figure."""
    col = "bw_avg_Bps" if workload == "rdma_write_bw" else "lat_median_s"
    summary, tests = [], []
    for (a, b), value in figures.items():
        tid = f"000-{name}-{a}+{b}"
        summary.append({"test_id": tid, "test_name": name, "profile": "tcp", "workload": workload, "dtype": "none",
                        "redop": "none", "in_place": False, "size_bytes": 8, "status": "ok", "busbw_Bps": None,
                        "bw_avg_Bps": value if col == "bw_avg_Bps" else None,
                        "lat_median_s": value if col == "lat_median_s" else None})
        tests.append({"test_id": tid, "test_name": name, "status": "ok", "reason": "",
                      "used": json.dumps({"hosts": [a, b]})})
    return pd.DataFrame(summary), pd.DataFrame(columns=["test_id", "size_bytes", "in_place", "time_s"]), pd.DataFrame(tests)


NODES = ["n0", "n1", "n2", "n3", "n4"]


def slow_pairs(rules: SecondPassRules, figures: dict[tuple[str, str], float], workload: str = "rdma_write_bw") -> set[tuple[str, ...]]:
    s, r, t = frames(figures, workload)
    return {j.hosts for j in judge(s, r, t, rules, {"bw"}, {"bw"}) if j.slow}


def test_median_and_clusterkit_rules() -> None:
    figures = {p: 100.0 for p in combinations(NODES, 2)}
    figures[("n0", "n1")] = 60.0
    figures[("n2", "n3")] = 85.0
    assert slow_pairs(SecondPassRules(), figures) == {("n0", "n1")}  # below 0.7 x the median
    # ClusterKit: below 90 % of the best also catches the pair at 85 %.
    assert slow_pairs(SecondPassRules(below_median=None, below_best=0.9), figures) == {("n0", "n1"), ("n2", "n3")}
    lat = {p: 10e-6 for p in combinations(NODES, 2)}
    lat[("n1", "n4")] = 25e-6
    assert slow_pairs(SecondPassRules(), lat, "rdma_write_lat") == set()  # 2.5 x: under above_median 3
    assert slow_pairs(SecondPassRules(above_median=None, above_lowest=2.0), lat, "rdma_write_lat") == {("n1", "n4")}


def judged(a: str, b: str, *, slow: bool = False, lossy: bool = False, reason: str = "", name: str = "bw") -> Judged:
    return Judged(f"000-{name}-{a}+{b}", "bw", (a, b), "failed" if reason else "ok", reason,
                  0.25 if slow else 1.0, None, 0.03 if lossy else 0.0, slow, lossy)


def test_bad_node_bad_link_dead_from_a_pass_and_its_retests() -> None:
    nodes = [f"n{i}" for i in range(8)]
    dead = pod_not_started("n7", 0, "pod is Pending")
    passed = [judged(a, b, slow="n0" in (a, b) or {a, b} == {"n1", "n2"}, reason=dead if "n7" in (a, b) else "")
              for a, b in combinations(nodes, 2)]
    suspects = find_suspects(passed, nodes)
    assert suspects.dead.keys() == {"n7"}
    assert suspects.nodes == ("n0", "n1", "n2") and "n0" not in suspects.good and "n7" not in suspects.good
    retests = [judged("n0", "n3", slow=True, name="bw-retest1"), judged("n1", "n4", name="bw-retest1"),
               judged("n2", "n5", name="bw-retest1")]
    found, unresolved = classify(suspects, retests, passed)
    assert {(f.kind, f.nodes) for f in found} == {("dead", ("n7",)), ("bad-node", ("n0",)), ("bad-link", ("n1", "n2"))}
    assert unresolved == []
    table = verdict_table(Diagnosis("r", {}, found))
    assert "kubectl cordon n0" in table and "kubectl cordon n1" not in table


def test_a_fine_pass_has_no_suspect() -> None:
    nodes = [f"n{i}" for i in range(6)]
    suspects = find_suspects([judged(a, b) for a, b in combinations(nodes, 2)], nodes)
    assert not suspects.any and suspects.good == tuple(nodes)
    assert classify(suspects, [], []) == ([], [])


def test_second_pass_needs_a_pattern_of_many_node_sets() -> None:
    text = ("backend: kubernetes\nimage: x\ntests:\n  - {name: g, placement: {pattern: group, nodes: 2, second_pass: true}}\n")
    with pytest.raises(SpecError) as err:
        load_spec_text(text)
    assert "second_pass" in str(err.value) and "all-pairs" in str(err.value)
    with pytest.raises(SpecError, match="below_median"):
        load_spec_text("second_pass: {below_median: 1.5}\ntests:\n  - {name: a}\n")
