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
from benchfab.diagnosis import Diagnosis, junit_suite, load_diagnosis, verdict_table, write_diagnosis
from benchfab.errors import SpecError, pod_not_started
from benchfab.faults import Finding
from benchfab.junit import document
from benchfab.retests import Triage, classify
from benchfab.spec import SecondPassRules, load_spec_text
from benchfab.triage import Judged, Suspects, find_suspects, judge
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


RULES = SecondPassRules()


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


def judged(a: str, b: str, *, slow: bool = False, lossy: bool = False, reason: str = "", name: str = "bw",
           bw: float | None = None) -> Judged:
    perf = 0.25 if slow else 1.0
    return Judged(f"000-{name}-{a}+{b}", name.split("-retest")[0], (a, b), "failed" if reason else "ok", reason,
                  perf, None, 0.03 if lossy else 0.0, slow, lossy, perf if bw is None else bw, "tcp",
                  (f"10.0.0.{a[1:]}", f"10.0.0.{b[1:]}"))


def triage(passed: list[Judged], nodes: list[str], retests: list[Judged]) -> tuple[Suspects, Triage]:
    suspects = find_suspects(passed, nodes, RULES)
    return suspects, classify(suspects, retests, passed, RULES)


def kinds(found: list[Finding]) -> set[tuple[str, tuple[str, ...]]]:
    return {(f.kind, f.nodes) for f in found}


def eight_node_diagnosis() -> Diagnosis:
    """n0 slow with everyone (and with known-good n3 in the retest), n1-n2 slow only together
    (and again when rerun), n7's pod never started: judged the way run_second_pass does."""
    nodes = [f"n{i}" for i in range(8)]
    dead = pod_not_started("n7", 0, "pod is Pending")
    passed = [judged(a, b, slow="n0" in (a, b) or {a, b} == {"n1", "n2"}, reason=dead if "n7" in (a, b) else "")
              for a, b in combinations(nodes, 2)]
    suspects = find_suspects(passed, nodes, RULES)
    assert suspects.dead.keys() == {"n7"}
    assert suspects.nodes == ("n0",) and suspects.links == (("n1", "n2"),)
    assert suspects.retested == ("n0", "n1", "n2") and "n0" not in suspects.good and "n7" not in suspects.good
    retests = [judged("n0", "n3", slow=True, name="bw-retest1"), judged("n1", "n4", name="bw-retest1"),
               judged("n2", "n5", name="bw-retest1"), judged("n1", "n2", slow=True, name="bw-retest1")]
    found = classify(suspects, retests, passed, RULES)
    assert found.unresolved == [] and found.cleared == []
    return Diagnosis("r", {}, found.verdicts, list(suspects.retested), list(suspects.good), [r.test_id for r in retests])


def test_bad_node_bad_link_dead_from_a_pass_and_its_retests() -> None:
    found = eight_node_diagnosis().verdicts
    assert kinds(found) == {("dead", ("n7",)), ("bad-node", ("n0",)), ("bad-link", ("n1", "n2"))}
    table = verdict_table(Diagnosis("r", {}, found))
    assert "kubectl cordon n0" in table and "kubectl cordon n1" not in table


def test_a_link_verdict_cordons_nothing_and_names_the_two_ports_and_their_counters() -> None:
    """Only node verdicts cordon; a link verdict says which two ports to inspect and what to read."""
    by_kind = {f.kind: f for f in eight_node_diagnosis().verdicts}
    link = by_kind["bad-link"]
    assert link.is_link and not any("cordon" in a and not a.startswith("#") for a in link.actions())
    assert not any(a.startswith("kubectl") for a in link.actions())  # no label on healthy nodes either
    inspect = " ".join(link.actions())
    assert "n1's interface with 10.0.0.1" in inspect and "n2's interface with 10.0.0.2" in inspect
    assert "rx_crc_errors" in inspect and "carrier_changes" in inspect  # a tcp fabric's counters
    roce = Finding("lossy-link", ("a", "b"), "why", (), ("mlx5_0", "mlx5_3"), "roce")
    assert "a's mlx5_0" in " ".join(roce.actions()) and "symbol_error" in " ".join(roce.actions())
    assert by_kind["bad-node"].actions()[:2] == ["kubectl cordon n0",
                                                 "kubectl label node n0 benchfab.io/verdict=bad-node --overwrite"]
    assert by_kind["dead"].actions()[0] == "kubectl cordon n7"
    stored = link.to_json()
    assert stored["subject"] == "link" and stored["ports"] == ["10.0.0.1", "10.0.0.2"]


def test_lossy_links_that_share_a_node_are_one_lossy_node_verdict() -> None:
    """A node losing packets with 3 of its 7 partners (under the node rule's half) and clean with
    its known-good partners in the retests: the node (each partner loses nothing with anyone
    else), not 3 lossy links, whatever its reruns show (1 % loss shows in some tests only)."""
    nodes = [f"n{i}" for i in range(8)]
    partners = {"n4", "n5", "n6"}
    passed = [judged(a, b, lossy=a == "n3" and b in partners) for a, b in combinations(nodes, 2)]
    suspects = find_suspects(passed, nodes, RULES)
    assert suspects.nodes == () and suspects.links == (("n3", "n4"), ("n3", "n5"), ("n3", "n6"))
    retests = [judged("n3", "n0", name="bw-retest1"), judged("n4", "n1", name="bw-retest1"),
               judged("n5", "n2", name="bw-retest1"), judged("n6", "n7", name="bw-retest1"),
               judged("n3", "n4", name="bw-retest1"), judged("n3", "n5", name="bw-retest2"),
               judged("n3", "n6", name="bw-retest2")]
    found = classify(suspects, retests, passed, RULES)
    assert kinds(found.verdicts) == {("lossy-node", ("n3",))} and found.cleared == []
    assert found.verdicts[0].why.startswith("loses packets with 3 partners (n4, n5, n6), each of which loses none")
    diagnosis = Diagnosis("r", {}, found.verdicts, list(suspects.retested), list(suspects.good), ["x"])
    cases = junit_cases(document([junit_suite(diagnosis)]), "benchfab diagnose r")
    assert cases["n3"].find("failure") is not None  # the node is named, its JUnit case fails
    assert all(cases[n].find("failure") is None for n in ("n4", "n5", "n6"))
    assert "kubectl cordon n3" in verdict_table(diagnosis)
    # One lossy partner is not enough: a lossy link, once its rerun lost packets again.
    one = [judged(a, b, lossy={a, b} == {"n3", "n4"}) for a, b in combinations(nodes, 2)]
    again = [judged("n3", "n0", name="bw-retest1"), judged("n4", "n1", name="bw-retest1"),
             judged("n3", "n4", lossy=True, name="bw-retest1")]
    assert kinds(triage(one, nodes, again)[1].verdicts) == {("lossy-link", ("n3", "n4"))}


def test_slow_links_that_share_a_node_stay_links_when_the_node_is_fine_with_known_good_ones() -> None:
    """Slow with 2 of its 7 partners, again when rerun, but fine with a known-good node: the paths
    are at fault, not the node (a switch uplink both pairs cross): two link verdicts, no cordon."""
    nodes = [f"n{i}" for i in range(8)]
    passed = [judged(a, b, slow=a == "n3" and b in {"n4", "n5"}) for a, b in combinations(nodes, 2)]
    retests = [judged("n3", "n0", name="bw-retest1"), judged("n4", "n1", name="bw-retest1"),
               judged("n5", "n2", name="bw-retest1"), judged("n3", "n4", slow=True, name="bw-retest1"),
               judged("n3", "n5", slow=True, name="bw-retest1")]
    suspects, found = triage(passed, nodes, retests)
    assert suspects.links == (("n3", "n4"), ("n3", "n5"))
    assert kinds(found.verdicts) == {("bad-link", ("n3", "n4")), ("bad-link", ("n3", "n5"))}
    assert not any(a.startswith("kubectl") for f in found.verdicts for a in f.actions())


def test_reruns_are_judged_entry_by_entry() -> None:
    """A throttled link is slow in the bandwidth entry's reruns and fine in the latency entry's
    (which cannot see a throttle): confirmed, not outvoted 2 to 2."""
    nodes = [f"n{i}" for i in range(6)]
    passed = [judged(a, b, slow={a, b} == {"n1", "n2"}) for a, b in combinations(nodes, 2)]
    retests = [judged("n1", "n0", name="bw-retest1"), judged("n2", "n3", name="bw-retest1"),
               judged("n1", "n2", slow=True, name="bw-retest1"), judged("n1", "n2", slow=True, name="bw-retest2"),
               judged("n1", "n2", name="lat-retest1"), judged("n1", "n2", name="lat-retest2")]
    assert kinds(triage(passed, nodes, retests)[1].verdicts) == {("bad-link", ("n1", "n2"))}


def test_a_suspect_link_that_is_fine_when_rerun_was_noise() -> None:
    nodes = [f"n{i}" for i in range(6)]
    passed = [judged(a, b, slow={a, b} == {"n1", "n2"}) for a, b in combinations(nodes, 2)]
    retests = [judged("n1", "n0", name="bw-retest1"), judged("n2", "n3", name="bw-retest1"),
               judged("n1", "n2", name="bw-retest1")]
    suspects, found = triage(passed, nodes, retests)
    assert found.verdicts == [] and found.unresolved == []
    assert found.cleared == [("n1", "n2", "0.25 x of the median in the pass, fine when rerun (bw 1.00 x)")]
    assert "a suspect link that was noise: n1-n2" in verdict_table(Diagnosis("r", {}, [], cleared=found.cleared))


def test_a_node_at_80_percent_is_a_suspect_by_its_median_and_named_when_its_retests_agree() -> None:
    """No single test of the node is below below_median (0.7), but the median over its partners is
    below node_below_median (0.9); noisy healthy pairs (one at 0.72) make no suspect node."""
    nodes = [f"n{i}" for i in range(8)]
    bw = {(a, b): 0.8 if "n0" in (a, b) else 1.0 for a, b in combinations(nodes, 2)}
    bw[("n2", "n5")] = 0.72  # noise on a healthy pair
    passed = [judged(a, b, bw=v) for (a, b), v in bw.items()]
    assert not any(j.suspect for j in passed)
    suspects = find_suspects(passed, nodes, RULES)
    assert suspects.nodes == ("n0",) and suspects.node_bw["n0"] == pytest.approx(0.8) and suspects.links == ()
    slow_again = [judged("n0", "n3", bw=0.82, name="bw-retest1"), judged("n0", "n4", bw=0.79, name="bw-retest2")]
    found = classify(suspects, slow_again, passed, RULES)
    assert kinds(found.verdicts) == {("bad-node", ("n0",))} and "(median 0.80 x)" in found.verdicts[0].why
    fine_again = [judged("n0", "n3", bw=0.97, name="bw-retest1"), judged("n0", "n4", bw=0.95, name="bw-retest2")]
    assert classify(suspects, fine_again, passed, RULES).verdicts == []  # the pass was noise
    off = SecondPassRules(node_below_median=None)
    assert find_suspects(passed, nodes, off).nodes == ()


def test_a_diagnosis_of_schema_1_still_loads(tmp_path: Path) -> None:
    old = {"schema": 1, "run_id": "r", "rules": {}, "suspects": ["a", "b", "c"], "good": ["d"], "retest_tests": [],
           "unresolved": [], "verdicts": [
               {"kind": "lossy", "nodes": ["a"], "why": "w", "evidence": [], "kubectl": ["kubectl cordon a"]},
               {"kind": "lossy", "nodes": ["b", "c"], "why": "w", "evidence": [], "kubectl": []}]}
    (tmp_path / "diagnosis.json").write_text(json.dumps(old))
    loaded = load_diagnosis(tmp_path)
    assert loaded is not None and kinds(loaded.verdicts) == {("lossy-node", ("a",)), ("lossy-link", ("b", "c"))}
    assert loaded.marked() == ({"a"}, {("b", "c")})


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
    assert body["nodes"] == ["n0"] and "kubectl cordon n0" in body["actions"]
    assert any(e["perf"] == 0.25 and e["hosts"] == ["n0", "n3"] for e in body["evidence"])  # the retest's figure
    link = json.loads(failed["n1 - n2"].text or "")  # type: ignore[union-attr]
    assert not any(c.startswith("kubectl") for c in link["actions"]) and link["nodes"] == ["n1", "n2"]
    assert "retests" in (cases["n1"].findtext("system-out") or "")
    assert "known-good" in (cases["n6"].findtext("system-out") or "")


def test_junit_skips_what_was_not_retested() -> None:
    nodes = [f"n{i}" for i in range(4)]
    passed = [judged(a, b, slow={a, b} == {"n1", "n2"}) for a, b in combinations(nodes, 2)]
    suspects, triaged = triage(passed, nodes, [])  # no retest ran
    found, unresolved = triaged.verdicts, triaged.unresolved
    cases = junit_cases(document([junit_suite(Diagnosis("q", {}, found, list(suspects.retested), list(suspects.good),
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
    suspects = find_suspects([judged(a, b) for a, b in combinations(nodes, 2)], nodes, RULES)
    assert not suspects.any and suspects.good == tuple(nodes)
    assert classify(suspects, [], [], RULES) == Triage([], [], [])


def test_second_pass_needs_a_pattern_of_many_node_sets() -> None:
    text = ("backend: kubernetes\nimage: x\ntests:\n  - {name: g, placement: {pattern: group, nodes: 2, second_pass: true}}\n")
    with pytest.raises(SpecError) as err:
        load_spec_text(text)
    assert "second_pass" in str(err.value) and "all-pairs" in str(err.value)
    with pytest.raises(SpecError, match="below_median"):
        load_spec_text("second_pass: {below_median: 1.5}\ntests:\n  - {name: a}\n")


def test_a_suspect_node_never_retested_is_unresolved_not_fine() -> None:
    nodes = [f"n{i}" for i in range(4)]
    passed = [judged(a, b, slow="n0" in (a, b)) for a, b in combinations(nodes, 2)]
    suspects, found = triage(passed, nodes, [])  # no known-good partner could be placed
    assert suspects.nodes == ("n0",) and found.verdicts == []
    assert found.unresolved == [("n0", "n1"), ("n0", "n2"), ("n0", "n3")]
