"""Expectations (#25 item 1): bounds as people write them, their validation (spec and
--expect FILE, file:line errors, exit 2), and a real local sweep (gloo all-reduce, tcp
bandwidth between local processes) judged both ways: a bound below the measured figure
gives no verdict, one above it gives below-expectation, exit 1 and a JUnit failure. The
bounds of the "both ways" checks are set from the figure the run measured (x 0.5 and x 2),
so they hold on any machine and under any load. Also: node types by labels, line rate
known or not, counters, and a baseline of another spec with a partial key match."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchfab import counters as counters_mod
from benchfab.bounds import BoundError, parse_bandwidth, parse_bound
from benchfab.compare.expectations import BELOW, counter_deltas, judge_counters, judge_run, selected_sizes
from benchfab.errors import SpecError
from benchfab.spec import load_spec_text
from benchfab.spec.expect_file import load_expect_file, load_expect_text
from tests.conftest import run_cli
from tests.verdict_faults import copy_run

SPEC = """\
name: expect-a
defaults: {iterations: 10, warmup: 2, timeout: 120s, in_place: false}
profiles:
  rated: {fabric: loopback, line_rate: 1Mbit}
  plain: {fabric: loopback}
tests:
  - name: ar
    workload: allreduce
    ranks: 2
    sizes: [1K, 64K]
    profiles: plain
    expect: {bandwidth: ">= 100 TB/s"}
  - name: bw
    workload: rdma_write_bw
    transport: tcp
    sizes: [64K]
    iterations: 50
    expect: {line_rate: ">= 90%", errors: {port_rcv_errors: 0}}
"""
# Another spec (a baseline shared across specs): the all-reduce at 64K and 256K on the same profile.
OTHER_SPEC = """\
name: expect-b
defaults: {iterations: 10, warmup: 2, timeout: 120s, in_place: false}
profiles:
  plain: {fabric: loopback}
tests:
  - name: allreduce-again
    workload: allreduce
    ranks: 2
    sizes: [64K, 256K]
"""


# -- bounds --------------------------------------------------------------------------------

def test_bounds_read_units_as_people_write_them() -> None:
    assert parse_bandwidth("45 GB/s") == 45e9 and parse_bandwidth("360 Gb/s") == 45e9
    assert parse_bandwidth("360Gbit/s") == 45e9 and parse_bandwidth("1 GiB/s") == 2**30
    assert parse_bound("latency", "<= 3 us").value == pytest.approx(3e-6)
    assert parse_bound("line_rate", ">= 90%").value == pytest.approx(0.9)
    assert parse_bound("count", 0).text == "<= 0" and parse_bound("size", ">= 64M").value == 64 << 20
    bound = parse_bound("bandwidth", ">= 45 GB/s")
    assert bound.holds(45e9) and not bound.holds(44.9e9)
    for kind, text in (("bandwidth", "45 GB/s"), ("bandwidth", ">= 45"), ("latency", "<= 3"), ("line_rate", ">= 120%"),
                       ("count", "<= 1.5")):
        with pytest.raises(BoundError):
            parse_bound(kind, text)  # type: ignore[arg-type]


def test_an_expectation_judges_the_largest_size_by_default() -> None:
    sizes = [1024, 65536, 1 << 26]
    assert selected_sizes("largest", sizes) == [1 << 26]
    assert selected_sizes("all", sizes) == sizes
    assert selected_sizes(">= 64K", sizes) == [65536, 1 << 26]


def test_counters_are_judged_by_their_largest_delta() -> None:
    # Stored the way a test stores them: each rank's before/after deltas, tagged by node.
    port = counters_mod.Source("rdma", "mlx5_0", 1)
    rank_a = {"rank": 0, "sources": counters_mod.deltas({port: {"port_rcv_errors": 5, "symbol_error": 1}},
                                                        {port: {"port_rcv_errors": 5, "symbol_error": 4}})}
    rank_b = {"rank": 1, "sources": counters_mod.deltas({port: {"port_rcv_errors": 10, "symbol_error": 9}},
                                                        {port: {"port_rcv_errors": 17, "symbol_error": 2}})}
    stored = counters_mod.stored_entries([rank_a, rank_b], ["node-a", "node-b"], ranks=2)
    counters = counter_deltas(json.dumps(stored))
    # node-b's symbol_error went down (a reset): no delta from it, never a negative one
    assert counters == {"port_rcv_errors": (7.0, "node-b/mlx5_0:1"), "symbol_error": (3.0, "node-a/mlx5_0:1")}
    judged = judge_counters({"port_rcv_errors": parse_bound("count", "<= 0"), "symbol_error": parse_bound("count", 5),
                             "link_downed": parse_bound("count", 0)}, counters)
    assert judged["port_rcv_errors"] == (False, 7.0, "node-b/mlx5_0:1") and judged["symbol_error"][0] is True
    assert judged["link_downed"][0] is None and "no counter 'link_downed'" in judged["link_downed"][2]
    assert judge_counters({"x": parse_bound("count", 0)}, None)["x"][0] is None
    assert counter_deltas(None) is None and counter_deltas("[]") is None


# -- validation ----------------------------------------------------------------------------

def test_spec_expectations_are_validated_with_line_and_fix() -> None:
    text = "tests:\n  - name: a\n    expect:\n      bandwidth: 45 GB/s\n      latncy: '<= 3 us'\n"
    with pytest.raises(SpecError) as err:
        load_spec_text(text, source="s.yaml")
    lines = [str(p) for p in err.value.problems]
    assert any(line.startswith("s.yaml:4: tests[0].expect.bandwidth: '45 GB/s' has no comparison sign") and
               'fix: write e.g. ">= 45 GB/s"' in line for line in lines), lines
    assert any(line.startswith("s.yaml:5: tests[0].expect.latncy: unknown key") and "'latency'" in line for line in lines)


def test_expect_file_errors_name_the_file_line_and_field() -> None:
    text = ("version: 1\nexpectations:\n  - workload: allreduce\n    expect: {bandwidth: '>= 45 GB/s', at: often}\n"
            "  - match: {}\n    expect: {line_rate: '>= 90'}\n")
    with pytest.raises(SpecError) as err:
        load_expect_text(text, source="e.yaml")
    lines = sorted(str(p) for p in err.value.problems)
    assert [line.split(": ")[0:2] for line in lines] == [
        ["e.yaml:4", "expectations[0].expect.at"], ["e.yaml:5", "expectations[1].match"],
        ["e.yaml:6", "expectations[1].expect.line_rate"]], lines
    assert all("(fix: " in line and "\n" not in line for line in lines)
    with pytest.raises(SpecError, match=r"e.yaml:1: the file is a list"):
        load_expect_text("- 1\n", source="e.yaml")
    # an escape in a quoted name is refused as in a spec (names reach terminals and reports)
    with pytest.raises(SpecError, match=r"e.yaml:3: expectations\[0\].workload: the value 'all\\x1breduce' "
                                        r"holds control characters \(\\x1b\)"):
        load_expect_text('version: 1\nexpectations:\n  - workload: "all\\x1breduce"\n    expect: {bandwidth: ">= 1 GB/s"}\n',
                         source="e.yaml")


def test_an_expect_file_is_read_as_a_spec_is(tmp_path: Path) -> None:
    """The file and YAML steps are the spec's (spec/yamldoc.py): the same words for the same problem."""
    path = tmp_path / "e.yaml"
    path.write_bytes(b"version: 1\nexpectations: caf\xe9\n")
    with pytest.raises(SpecError) as err:
        load_expect_file(path)
    assert str(err.value) == f"{path}:2: not a text file: byte 0xe9 at line 2 is not UTF-8 (fix: save the file as UTF-8 YAML)"
    with pytest.raises(SpecError, match=r"e.yaml:1: the file is plain text, expected a mapping with an 'expectations' list"):
        load_expect_text("hello\n", source="e.yaml")
    with pytest.raises(SpecError, match=r"e.yaml:1: the spec is plain text, expected a mapping with a 'tests' list"):
        load_spec_text("hello\n", source="e.yaml")
    with pytest.raises(SpecError, match=r"a directory, not a regular file \(fix: give the path of a YAML file\)"):
        load_expect_file(tmp_path)


def test_a_bad_expect_file_stops_the_sweep_before_it_runs(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    bad = tmp_path / "expect.yaml"
    bad.write_text("version: 1\nexpectations:\n  - expect: {bandwith: '>= 1 GB/s'}\n")
    for given, said in ((bad, f"{bad}:3: expectations[0].expect.bandwith: unknown key 'bandwith' (fix: did you mean "
                                 "'bandwidth'?)"),
                        (tmp_path / "none.yaml", f"{tmp_path / 'none.yaml'}: --expect: no such file")):
        proc = run_cli("sweep", str(spec), "--results", str(tmp_path / "results"), "--expect", str(given))
        assert proc.returncode == 2 and said in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists()


# -- a real run ----------------------------------------------------------------------------

@dataclass
class Swept:
    results: Path
    run: Path
    rc: int
    stdout: str
    junit: Path


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Swept:
    tmp = tmp_path_factory.mktemp("expect")
    (tmp / "spec.yaml").write_text(SPEC)
    results, junit = tmp / "results", tmp / "junit.xml"
    proc = run_cli("sweep", str(tmp / "spec.yaml"), "--results", str(results), "--run-id", "a", "--no-progress",
                   "--junit", str(junit))
    assert "Traceback" not in proc.stderr, proc.stderr
    return Swept(results, results / "a", proc.returncode, proc.stdout, junit)


def _figure(run: Path, test: str, field: str) -> float:
    doc = json.loads((run / "expectations.json").read_text())
    return float(next(v["figure"] for v in doc["verdicts"] if v["test_name"] == test and v["field"] == field))


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "expect.yaml"
    path.write_text(text)
    return path


@pytest.mark.slow
def test_a_sweep_below_its_expectation_exits_1_with_a_junit_failure(swept: Swept) -> None:
    assert swept.rc == 1
    below = [line for line in swept.stdout.splitlines() if line.startswith(BELOW)]
    assert len(below) == 1 and below[0].startswith(f"{BELOW}  ar allreduce/plain[loopback:none]/gloo.torch/host/")
    assert "/64K/" in below[0] and "expected >= 100 TB/s (node type: any node; spec test 'ar')" in below[0]
    suite = next(s for s in ET.parse(swept.junit).getroot() if s.get("name") == "benchfab expectations a")
    failures = [c for c in suite if c.find("failure") is not None]
    assert [f.get("name", "").split("/")[0] for f in failures] == ["allreduce"]
    assert failures[0].find("failure").get("type") == BELOW  # type: ignore[union-attr]
    # line rate: the rated profile states one (judged), the plain one does not (not-judged, said why)
    doc = json.loads((swept.run / "expectations.json").read_text())
    rates = {v["key_id"].split("/")[1]: v for v in doc["verdicts"] if v["field"] == "line_rate"}
    assert rates["rated[loopback:none]"]["verdict"] == "met" and "% of 0.001 Gb/s" in rates["rated[loopback:none]"]["shown"]
    assert rates["plain[loopback:none]"]["verdict"] == "not-judged"
    assert "line rate unknown" in rates["plain[loopback:none]"]["cause"]
    # the tcp test's ranks stored their interface's and TCP's counters, not an RDMA port's
    assert "# note: bw errors.port_rcv_errors: not judged: no counter 'port_rcv_errors' in this test's record" in swept.stdout


@pytest.mark.slow
def test_compare_judges_expectations_in_both_directions(swept: Swept, tmp_path: Path) -> None:
    """The same stored run against --expect FILE: half its measured bus bandwidth is met (exit 0,
    nothing below), twice it is below (exit 1, the figure and the bound in the line and JSON)."""
    busbw = _figure(swept.run, "ar", "bandwidth")
    for factor, rc in ((0.5, 0), (2.0, 1)):
        bound = f">= {busbw * factor / 1e6:.3f} MB/s"
        given = _file(tmp_path, f"version: 1\nexpectations:\n  - test: ar\n    expect: {{bandwidth: '{bound}'}}\n")
        proc = run_cli("compare", "a", "a", "--results", str(swept.results), "--expect", str(given), "-o", "json")
        assert proc.returncode == rc, proc.stderr
        doc = json.loads(proc.stdout)["expectations"]
        ours = [v for v in doc["verdicts"] if v["origin"].endswith("entry 0")]
        assert [v["verdict"] for v in ours] == ["met" if rc == 0 else BELOW] and ours[0]["expected"] == bound
        assert ours[0]["figure"] == pytest.approx(busbw)


@pytest.mark.slow
def test_node_type_expectations_apply_by_the_nodes_labels(swept: Swept, tmp_path: Path) -> None:
    """A match applies only where every node of the measurement carries its labels: the run's
    inventory given a GPU label (as the Kubernetes backend records it), the H100 entry judges
    it and names the node type; an A100 entry does not apply."""
    copy_run(swept.results, "a", "labelled")
    meta_path = swept.results / "labelled" / "run.json"
    meta = json.loads(meta_path.read_text())
    for node in meta["inventory"]["nodes"]:
        node["labels"] = {"nvidia.com/gpu.product": "H100"}
        node["hostname"] = "localhost"  # the hosts of local rows
    meta_path.write_text(json.dumps(meta))
    extra = load_expect_text("version: 1\nexpectations:\n"
                             "  - {workload: allreduce, match: {nvidia.com/gpu.product: H100}, expect: {bandwidth: '>= 1 TB/s'}}\n"
                             "  - {workload: allreduce, match: {nvidia.com/gpu.product: A100}, expect: {bandwidth: '>= 1 kB/s'}}\n"
                             , source="types.yaml")
    result = judge_run(swept.results / "labelled", extra)
    assert result is not None
    by_file = [j for j in result.judged if j.origin.startswith("types.yaml")]
    assert [(j.verdict, j.node_type, j.expected) for j in by_file] == [(BELOW, "nvidia.com/gpu.product=H100", ">= 1 TB/s")]
    unlabelled = judge_run(swept.run, extra)
    assert unlabelled is not None
    # without labels in the inventory (the local backend records none) a node-type bound is
    # said to be not judged, once per entry and test, never passed in silence
    assert sorted((j.verdict, j.test_name, j.node_type) for j in unlabelled.judged if j.origin.startswith("types.yaml")) == [
        ("not-judged", "ar", "nvidia.com/gpu.product=A100"), ("not-judged", "ar", "nvidia.com/gpu.product=H100")]
    assert all("node labels unknown" in j.cause for j in unlabelled.judged if j.origin.startswith("types.yaml"))


@pytest.mark.slow
def test_a_baseline_of_another_spec_compares_the_keys_that_match(swept: Swept) -> None:
    """A named baseline used by a sweep of another spec: the 64K all-reduce key is in both and
    judged; 1K only in the base and 256K only in the new run are listed, never 'missing'."""
    assert run_cli("baseline", "set", "a", "--name", "shared", "--results", str(swept.results)).returncode == 0
    spec = swept.results.parent / "other.yaml"
    spec.write_text(OTHER_SPEC)
    proc = run_cli("sweep", str(spec), "--results", str(swept.results), "--run-id", "b", "--no-progress",
                   "--baseline", "shared")
    assert "Traceback" not in proc.stderr, proc.stderr
    doc = json.loads((swept.results / "b" / "verdicts.json").read_text())
    by_size = {(v["key"]["workload"], v["key"]["profile"], v["key"]["size_bytes"]): v for v in doc["verdicts"]}
    assert by_size[("allreduce", "plain", 65536)]["ratio"] is not None
    assert by_size[("allreduce", "plain", 1024)]["verdict"] == "removed"
    assert "unmatched" in by_size[("allreduce", "plain", 1024)]["cause"]
    assert by_size[("allreduce", "plain", 262144)]["verdict"] == "new"
    assert not [v for v in doc["verdicts"] if v["verdict"] == "missing"]
    assert [k.split("/")[5] for k in doc["unmatched"]["new_only"]] == ["256K"]
    assert sorted(k.split("/")[0] + "/" + k.split("/")[5] for k in doc["unmatched"]["base_only"]) == [
        "allreduce/1K", "rdma_write_bw/64K", "rdma_write_bw/64K"]
    assert "the base is of spec 'expect-a', the new run of 'expect-b': 1 key(s) matched" in proc.stdout
    assert "# unmatched: 3 key(s) only the base has" in proc.stdout
