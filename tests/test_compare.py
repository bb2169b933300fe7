"""benchfab compare / baseline on stored runs: the U test against SciPy and known values,
the key (incomplete rows apart), verdicts and their causes, history with its step
detector, baselines, and the four outputs. The runs are copies of results/example (a
real local sweep) with seeded faults written through the store's writer (tests/verdict_faults.py)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from benchfab.cli import main
from benchfab.compare import Method, compare_runs, load_keys, mann_whitney_u, parse_base, run_comparison, set_baseline
from benchfab.compare.judge import step_from
from benchfab.compare.keys import MEDIANS_CACHE
from benchfab.errors import StoreError, UnknownRun, UsageError
from benchfab.store import RunStore
from benchfab.verdicts import read_verdicts
from tests.conftest import run_cli
from tests.helpers import ROOT
from tests.verdict_faults import copy_run, rewrite_test


class Ran:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def bf(capsys: pytest.CaptureFixture[str], *args: str) -> Ran:
    """benchfab ARGS in this process (the CLI's own main and exit code; one real process
    below checks the same through the installed entry point)."""
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return Ran(code, out.out, out.err)


LAT_TEST = "007-tcp-write-lat"  # 1000 iterations per size in the example run
LAT_SIZE = 512


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """results/ with the example run as 'base' and an identical copy as 'new'."""
    res = tmp_path / "results"
    res.mkdir()
    import shutil

    shutil.copytree(ROOT / "results" / "example", res / "example")
    copy_run(res, "example", "base", started="2026-12-01T01:00:00Z")
    copy_run(res, "example", "new", started="2026-12-02T01:00:00Z")
    shutil.rmtree(res / "example")
    return res


# -- Mann-Whitney U -------------------------------------------------------------------


def test_u_test_known_values() -> None:
    # Completely separated samples of 3 and 3: U = 0, exact two-sided p = 2/C(6,3) = 0.1.
    assert mann_whitney_u([1, 2, 3], [4, 5, 6]) == (0.0, pytest.approx(0.1))
    # Identical values only: nothing tells them apart.
    assert mann_whitney_u([5, 5, 5], [5, 5]) == (3.0, 1.0)
    with pytest.raises(ValueError):
        mann_whitney_u([], [1.0])


@pytest.mark.parametrize("n1,n2,rounding", [(5, 7, None), (8, 8, None), (20, 30, None), (20, 20, 1), (300, 200, 2),
                                            (60, 60, None)])
def test_u_test_matches_scipy(n1: int, n2: int, rounding: int | None) -> None:
    rng = np.random.default_rng(n1 * 1000 + n2)
    x, y = rng.normal(size=n1), rng.normal(0.4, size=n2)
    if rounding is not None:  # ties
        x, y = np.round(x, rounding), np.round(y, rounding)
    u, p = mann_whitney_u(x, y)
    exact = rounding is None and n1 * n2 < 2500
    ref = mannwhitneyu(x, y, alternative="two-sided", method="exact" if exact else "asymptotic")
    assert u == ref.statistic
    assert p == pytest.approx(ref.pvalue, rel=1e-9)


# -- keys and verdicts ------------------------------------------------------------------


def test_identical_runs_are_all_same(results: Path) -> None:
    c = run_comparison(parse_base("base", results), results / "new", results, Method())
    assert c.counts() == {"same": 73}  # every summary row of the example run is its own key
    assert c.exit_code == 0 and not c.incomplete


def test_seeded_slowdown_flags_exactly_that_key(results: Path) -> None:
    """Seeded fault: one size of the tcp latency test made 20 % slower in 'new'."""
    rewrite_test(results, "new", LAT_TEST, size=LAT_SIZE, slowdown=1.2)
    c = run_comparison(parse_base("base", results), results / "new", results, Method())
    (worse,) = c.regressions
    assert worse.verdict == "worse" and worse.key["size_bytes"] == LAT_SIZE and worse.metric == "lat_median_s"
    # As a notebook calls it: BASE and NEW as the CLI takes them, asv's defaults.
    assert run_comparison("base", "new", results).to_dict() == c.to_dict()
    assert worse.ratio == pytest.approx(1.2) and worse.p_value is not None and worse.p_value < 1e-6
    assert c.exit_code == 1
    # a factor above the slowdown lets it pass; so does a p threshold below what the samples reach
    assert not run_comparison(parse_base("base", results), results / "new", results, Method(factor=1.25)).regressions
    assert not run_comparison(parse_base("base", results), results / "new", results,
                              Method(p_threshold=worse.p_value / 10)).regressions


def test_faster_is_better_and_extra_keys_are_new_or_missing(results: Path) -> None:
    """Seeded: the 2-rank allreduce twice as fast; the 3-rank one's rows removed from 'new'."""
    rewrite_test(results, "new", "000-allreduce-2r", size=8 << 20, slowdown=0.5)
    RunStore(results, "new").write_test(load_test_row(results / "new", "001-allreduce-3r"), [], [])  # type: ignore[arg-type]
    c = run_comparison(parse_base("base", results), results / "new", results, Method())
    counts = c.counts()
    assert counts["better"] == 2 and counts["missing"] == 14  # 8 MiB out- and in-place; 7 sizes x 2 flags
    for better in (v for v in c.verdicts if v.verdict == "better"):
        assert better.key["size_bytes"] == 8 << 20 and better.ratio == pytest.approx(2.0)
    assert c.exit_code == 0  # missing and better are no regressions
    back = run_comparison(parse_base("new", results), results / "base", results, Method())
    assert back.counts()["new"] == 14


def load_test_row(run: Path, test_id: str) -> dict[str, object]:
    import benchfab

    tests = benchfab.load_run(run).tests
    return {str(k): v for k, v in tests[tests["test_id"] == test_id].iloc[0].to_dict().items()}


def test_fallback_to_sockets_is_changed_with_its_cause(results: Path) -> None:
    """Seeded: rank 0's stored NCCL report says IB in 'base' and Socket in 'new' (numbers unchanged)."""
    rewrite_test(results, "base", "000-allreduce-2r", used_nccl={"network": "IB", "hcas": ["mlx5_0"], "gdr": True})
    rewrite_test(results, "new", "000-allreduce-2r", used_nccl={"network": "Socket", "hcas": [], "gdr": None})
    c = run_comparison(parse_base("base", results), results / "new", results, Method())
    changed = [v for v in c.verdicts if v.verdict == "changed"]
    assert len(changed) == 22 and all(v.key["ranks"] == 2 and v.key["workload"] == "allreduce" for v in changed)
    assert {v.cause for v in changed} == {"NCCL fell back to Socket (base: IB)"}
    assert c.exit_code == 1


def test_gpudirect_off_and_wrong_data_are_changed(results: Path) -> None:
    """Seeded: GPUDirect on in 'base', off in 'new' for one test; #wrong > 0 in another."""
    rewrite_test(results, "base", "002-allgather-2r", used_nccl={"network": "IB", "gdr": True})
    rewrite_test(results, "new", "002-allgather-2r", used_nccl={"network": "IB", "gdr": False})
    import benchfab

    run = benchfab.load_run(results / "new")
    rows = [{str(k): v for k, v in r.items()} for r in run.summary[run.summary["test_id"] == "004-broadcast-2r"].to_dict("records")]
    rows[0]["wrong"] = 3
    raw = [{str(k): v for k, v in r.items()} for r in run.raw[run.raw["test_id"] == "004-broadcast-2r"].to_dict("records")]
    RunStore(results, "new").write_test(load_test_row(results / "new", "004-broadcast-2r"), rows, raw)  # type: ignore[arg-type]
    c = run_comparison(parse_base("base", results), results / "new", results, Method())
    causes = {v.cause for v in c.verdicts if v.verdict == "changed"}
    assert causes == {"GPUDirect RDMA off (base: on)", "#wrong 3 (base: 0): the data check found corrupted data"}


def test_failed_test_and_incomplete_rows(results: Path) -> None:
    """Seeded: one test of 'new' failed; one summary row of another lost its transport (incomplete key)."""
    import benchfab

    failed = {**load_test_row(results / "new", "005-alltoall-2r"), "status": "failed", "reason": "rank 1 died"}
    run = benchfab.load_run(results / "new")
    keep = lambda tid: [{str(k): v for k, v in r.items()} for r in run.summary[run.summary["test_id"] == tid].to_dict("records")]  # noqa: E731
    raw = lambda tid: [{str(k): v for k, v in r.items()} for r in run.raw[run.raw["test_id"] == tid].to_dict("records")]  # noqa: E731
    RunStore(results, "new").write_test(failed, keep("005-alltoall-2r"), raw("005-alltoall-2r"))  # type: ignore[arg-type]
    rows = keep("003-reducescatter-2r")
    rows[0]["transport"] = None
    RunStore(results, "new").write_test(load_test_row(results / "new", "003-reducescatter-2r"), rows,  # type: ignore[arg-type]
                                        raw("003-reducescatter-2r"))
    data = load_keys(results / "new")
    c = compare_runs(load_keys(results / "base"), data)
    assert {v.cause for v in c.verdicts if v.verdict == "failed"} == {"failed: rank 1 died"}
    assert c.counts()["failed"] == 4  # alltoall: 4 sizes, out-of-place only
    # The incomplete row is set aside and reported, never merged: its key in base reads as missing.
    assert [(r["run"], r["test_id"], r["missing"]) for r in c.incomplete] == [("new", "003-reducescatter-2r", ["transport"])]
    assert c.counts()["missing"] == 1


# -- history ----------------------------------------------------------------------------


def test_step_detector() -> None:
    assert step_from([10, 10.2, 9.9, 10.1, 10, 10.1, 8, 8.1, 7.9], 1.1) == 6
    assert step_from([10, 10.2, 9.9, 10.1, 10, 10.1, 10, 9.8], 1.1) is None
    assert step_from([10, 10.2, 9.9, 10.1, 8, 10.1], 1.1) is None  # one dip that came back is no step


def test_history_flags_the_slowed_key_and_names_the_run(results: Path) -> None:
    """Seeded: five earlier copies of the run with +-1 % wobble, then 'new' with one key 20 % slower."""
    for i, wobble in enumerate([1.0, 1.01, 0.99, 1.005, 0.995]):
        copy_run(results, "base", f"h{i}", started=f"2026-12-01T0{i + 2}:00:00Z")
        rewrite_test(results, f"h{i}", LAT_TEST, slowdown=wobble)
    rewrite_test(results, "new", LAT_TEST, size=LAT_SIZE, slowdown=1.2)
    c = run_comparison(parse_base("history:5", results), results / "new", results, Method())
    assert c.method.test == "history-mad" and c.base_runs == [f"h{i}" for i in range(5)]
    (worse,) = c.regressions
    assert worse.key["size_bytes"] == LAT_SIZE and worse.ratio == pytest.approx(1.2, rel=0.02)
    assert worse.cause is not None and worse.cause.startswith("changed from run new (this run)")
    # Each complete history run's medians are cached beside it; a rewritten run is read afresh.
    assert all((results / f"h{i}" / MEDIANS_CACHE).exists() for i in range(5))
    for i in range(5):
        rewrite_test(results, f"h{i}", LAT_TEST, size=LAT_SIZE, slowdown=1.2)
    again = run_comparison(parse_base("history:5", results), results / "new", results, Method())
    assert not again.regressions


# -- baselines and the command ------------------------------------------------------------


def test_baselines_point_at_runs_and_check_the_spec_hash(results: Path) -> None:
    entry = set_baseline(results, "base", "good")
    assert entry["run"] == "base" and entry["spec_hash"].startswith("sha256:")
    doc = json.loads((results / "baselines.json").read_text())
    assert doc["baselines"]["good"]["run"] == "base"
    assert parse_base("good", results).run == results / "base"
    with pytest.raises(UsageError, match="--name"):
        set_baseline(results, "base", "no/slash")
    meta = json.loads((results / "base" / "run.json").read_text())
    meta["spec_text"] += "\n# edited"
    (results / "base" / "run.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="no longer matches"):
        parse_base("good", results)
    with pytest.raises(UnknownRun):
        parse_base("nothing-like-this", results)


def test_compare_command_outputs_and_exit_codes(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Seeded: one key 20 % slower in 'new'."""
    rewrite_test(results, "new", LAT_TEST, size=LAT_SIZE, slowdown=1.2)
    res = str(results)
    junit = results / "out.xml"
    proc = run_cli("compare", "base", "new", "--results", res, "--save", "--junit", str(junit))
    assert proc.returncode == 1, proc.stderr
    assert "1 regression(s)" in proc.stdout and "worse" in proc.stdout
    doc = json.loads((results / "new" / "verdicts.json").read_text())
    # the report/export side reads the same file through its own checked reader
    read_back = read_verdicts(results / "new")
    assert read_back is not None and [v.key_id for v in read_back.verdicts if v.verdict == "worse"] == [
        v["key_id"] for v in doc["verdicts"] if v["verdict"] == "worse"]
    assert doc["schema"] == 1 and doc["new"] == "new" and doc["base"] == {"label": "base", "runs": ["base"]}
    assert doc["method"] == {"test": "mann-whitney-u", "factor": 1.1, "p_threshold": 0.002}
    (bad,) = [v for v in doc["verdicts"] if v["verdict"] == "worse"]
    assert bad["key"]["size_bytes"] == LAT_SIZE and set(bad) == {
        "key", "key_id", "metric", "higher_is_better", "verdict", "base_median", "new_median", "ratio", "p_value", "cause"}
    for path in (junit, results / "new" / "verdicts.junit.xml"):
        suite = ET.parse(path).getroot().find("testsuite")
        assert suite is not None and suite.get("tests") == "73" and suite.get("failures") == "1"
        (failed,) = [c for c in suite.iter("testcase") if c.find("failure") is not None]
        assert failed.get("name") == bad["key_id"]
        message = failed.find("failure").get("message")  # type: ignore[union-attr]
        assert "ratio 1.200" in message and "us" in message
    md = bf(capsys, "compare", "base", "new", "--results", res, "-o", "markdown", "--factor", "1.3")
    assert md.returncode == 0 and "| same |" in md.stdout and "no regression" in md.stdout
    js = bf(capsys, "compare", "base", "new", "--results", res, "-o", "json")
    assert json.loads(js.stdout)["verdicts"][0]["verdict"] == "worse"
    assert bf(capsys, "compare", "--history", "1", "new", "--results", res).returncode == 1
    for bad_args in (["compare", "nope", "new"], ["compare", "base"], ["compare", "history:x", "new"],
                     ["compare", "base", "new", "--factor", "0.5"]):
        proc = bf(capsys, *bad_args, "--results", res)
        assert proc.returncode == 2, (bad_args, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stderr.strip().splitlines()[-1].startswith("benchfab")
    assert bf(capsys, "baseline", "set", "base", "--name", "good", "--results", res).returncode == 0
    listed = bf(capsys, "baseline", "list", "-o", "json", "--results", res)
    assert json.loads(listed.stdout)["good"]["run"] == "base"
    assert bf(capsys, "compare", "good", "new", "--results", res, "--factor", "1.3").returncode == 0


def test_json_outputs_of_runs_and_show(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = json.loads(bf(capsys, "runs", "--results", str(results), "-o", "json").stdout)
    assert [r["run_id"] for r in runs] == ["base", "new"] and runs[0]["counts"] == {"ok": 8}
    shown = json.loads(bf(capsys, "show", "base", "--results", str(results), "-o", "json").stdout)
    assert len(shown["summary"]) == 73 and {t["status"] for t in shown["tests"]} == {"ok"}
    plan = json.loads(bf(capsys, "plan", str(ROOT / "jobs" / "local.yaml"), "-o", "json").stdout)
    assert len(plan["tests"]) == 8 and plan["tests"][0]["test_id"] == "000-allreduce-2r"
