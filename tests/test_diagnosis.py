"""The second pass's rules and verdicts on stored-run frames (the end-to-end proof on real
shaped links is tests/sim/test_second_pass.py)."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from itertools import combinations
from pathlib import Path

import pandas as pd
import pytest

from benchfab.cli import main
from benchfab.diagnosis import (
    Diagnosis,
    Judged,
    classify,
    find_suspects,
    judge,
    junit_suite,
    load_diagnosis,
    verdict_table,
    write_diagnosis,
)
from benchfab.errors import SpecError, pod_not_started
from benchfab.junit import document
from benchfab.spec import SecondPassRules, load_spec_text
from tests.helpers import ROOT
from tests.verdict_faults import copy_run


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


def eight_node_diagnosis() -> Diagnosis:
    """n0 slow with everyone (and with known-good n3 in the retest), n1-n2 slow only together,
    n7's pod never started: judged and classified the way run_second_pass does."""
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
    assert unresolved == []
    return Diagnosis("r", {}, found, list(suspects.nodes), list(suspects.good), [r.test_id for r in retests])


def test_bad_node_bad_link_dead_from_a_pass_and_its_retests() -> None:
    found = eight_node_diagnosis().verdicts
    assert {(f.kind, f.nodes) for f in found} == {("dead", ("n7",)), ("bad-node", ("n0",)), ("bad-link", ("n1", "n2"))}
    table = verdict_table(Diagnosis("r", {}, found))
    assert "kubectl cordon n0" in table and "kubectl cordon n1" not in table


def junit_cases(xml_text: str, suite_name: str) -> dict[str, ET.Element]:
    root = ET.fromstring(xml_text)
    (suite,) = [s for s in root.iter("testsuite") if s.get("name") == suite_name]
    return {c.get("name", ""): c for c in suite.iter("testcase")}


def test_junit_has_a_failure_per_verdict_and_a_pass_per_fine_node(tmp_path: Path) -> None:
    write_diagnosis(tmp_path, eight_node_diagnosis())
    stored = load_diagnosis(tmp_path)  # what `benchfab diagnose --junit` renders: the stored verdicts
    assert stored is not None
    text = document([junit_suite(stored)])
    root = ET.fromstring(text)
    (suite,) = root.iter("testsuite")
    # 3 verdicts fail; n1..n6 pass (n1, n2: fine as nodes, their link is the verdict); n7 is dead, n0 bad.
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("9", "3", "0")
    assert (root.get("tests"), root.get("failures")) == ("9", "3")
    cases = junit_cases(text, "benchfab diagnose r")
    assert sorted(cases) == ["n0", "n1", "n1 - n2", "n2", "n3", "n4", "n5", "n6", "n7"]
    failed = {name: c.find("failure") for name, c in cases.items() if c.find("failure") is not None}
    assert {name: f.get("type") for name, f in failed.items() if f is not None} == {
        "n0": "bad-node", "n1 - n2": "bad-link", "n7": "dead"}
    assert cases["n1 - n2"].get("classname") == "benchfab.diagnosis.link"
    bad = failed["n0"]
    assert bad is not None and bad.get("message", "").startswith("bad-node: slow or failing")
    body = json.loads(bad.text or "")
    assert body["nodes"] == ["n0"] and "kubectl cordon n0" in body["kubectl"]
    assert any(e["perf"] == 0.25 and e["hosts"] == ["n0", "n3"] for e in body["evidence"])  # the retest's figure
    link = json.loads(failed["n1 - n2"].text or "")  # type: ignore[union-attr]
    assert not any("cordon" in c for c in link["kubectl"]) and link["nodes"] == ["n1", "n2"]
    assert "retests" in (cases["n1"].findtext("system-out") or "")
    assert "known-good" in (cases["n6"].findtext("system-out") or "")


def test_junit_skips_what_was_not_retested() -> None:
    nodes = [f"n{i}" for i in range(4)]
    passed = [judged(a, b, slow={a, b} == {"n1", "n2"}) for a, b in combinations(nodes, 2)]
    suspects = find_suspects(passed, nodes)
    found, unresolved = classify(suspects, [], passed)  # no retest ran
    cases = junit_cases(document([junit_suite(Diagnosis("q", {}, found, list(suspects.nodes), list(suspects.good),
                                                        unresolved=unresolved))]), "benchfab diagnose q")
    assert unresolved == [("n1", "n2")] and cases["n1 - n2"].find("skipped") is not None
    assert "n1" not in cases and cases["n0"].find("system-out") is not None


def test_junit_file_of_a_run_holds_the_comparison_and_the_second_pass(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """--junit FILE on a run with diagnosis.json (sweep --baseline and compare share this path):
    two testsuites in one <testsuites>, and the comparison's suite unchanged."""
    res = tmp_path / "results"
    res.mkdir()
    shutil.copytree(ROOT / "results" / "example", res / "example")
    copy_run(res, "example", "base", started="2026-12-01T01:00:00Z")
    copy_run(res, "example", "new", started="2026-12-02T01:00:00Z")
    out = tmp_path / "ci" / "verdicts.xml"
    out.parent.mkdir()
    assert main(["compare", "base", "new", "--results", str(res), "--junit", str(out)]) == 0
    alone = ET.parse(out).getroot()
    write_diagnosis(res / "new", eight_node_diagnosis())
    assert main(["compare", "base", "new", "--results", str(res), "--junit", str(out)]) == 0
    capsys.readouterr()
    both = ET.parse(out).getroot()
    names = [s.get("name") for s in both.iter("testsuite")]
    assert names == ["benchfab compare base -> new", "benchfab diagnose r"]
    compared, before = next(both.iter("testsuite")), next(alone.iter("testsuite"))
    compared.tail = before.tail = None  # the indentation after it differs: it is no longer the last suite
    assert ET.tostring(compared) == ET.tostring(before)
    assert both.get("tests") == str(int(compared.get("tests", "")) + 9) and both.get("failures") == "3"
    assert [p.name for p in out.parent.iterdir()] == ["verdicts.xml"]  # written atomically: no temp file left


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
