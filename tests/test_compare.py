"""benchfab compare / baseline on stored runs: the noise model (blocks, the pooled
run-to-run spread, the moderated history spread), the key (incomplete rows apart), verdicts
and their causes, lost and removed keys, damaged stores, history with its step detector and
its scope, baselines, and the four outputs. The runs are copies of results/example (a real
local sweep) with seeded faults written through the store's writer (tests/verdict_faults.py)."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from benchfab.cli import main
from benchfab.compare import Method, Scope, compare_runs, load_keys, parse_base, run_comparison, set_baseline
from benchfab.compare.history import step_from
from benchfab.compare.keys import MEDIANS_CACHE
from benchfab.compare.noise import history_spread, log_units, pair_spread, pair_spreads
from benchfab.errors import StoreError, UnknownRun, UsageError
from benchfab.store import RunStore
from benchfab.verdicts import read_verdicts
from tests.conftest import run_cli
from tests.helpers import ROOT
from tests.verdict_faults import copy_run, drop_from_spec, jitter_run, rewrite_test


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


# -- the noise model ---------------------------------------------------------------------


def test_blocks_reduce_iterations_the_way_the_figure_does() -> None:
    times = np.arange(1, 101, dtype=np.float64)  # 100 iterations: 10 blocks of 10
    means = log_units(times, "mean")
    assert len(means) == 10 and np.exp(means[0]) == pytest.approx(5.5) and np.exp(means[-1]) == pytest.approx(95.5)
    assert np.exp(log_units(times, "median")[1]) == pytest.approx(15.5)
    assert len(log_units(times[:7], "mean")) == 7  # fewer iterations than blocks: one each
    assert len(log_units(times[:1], "mean")) == 0  # one iteration tells no spread


def test_pair_spread_ignores_a_minority_and_a_common_shift() -> None:
    rng = np.random.default_rng(1)
    d = rng.normal(0, 0.05, 400)
    assert pair_spread(d) == pytest.approx(0.05, rel=0.15)
    moved = d.copy()
    moved[:40] -= 0.5  # a tenth of the keys really moved: the spread barely widens
    assert pair_spread(moved) == pytest.approx(0.05, rel=0.3)
    assert pair_spread(d - 0.3) == pytest.approx(pair_spread(d))  # every key moved: the same spread
    assert pair_spread(np.array([0.0, 0.1])) is None  # two keys show no spread
    # A class that wanders more than the rest is judged on its own spread, the rest on the overall one.
    classes = ["calm"] * 360 + ["wild"] * 40
    wild = np.concatenate([d[:360], rng.normal(0, 0.5, 40)])
    spreads, overall = pair_spreads(wild, classes)
    assert overall is not None and spreads[0] == overall and spreads[-1] == pytest.approx(0.5, rel=0.35)


def test_history_spread_is_moderated_toward_the_typical_key() -> None:
    rng = np.random.default_rng(2)
    past = rng.normal(0, 0.02, (50, 5))
    past[0] = [0.0, 0.0, 0.0, 0.0, 0.0]  # five runs that happened to agree exactly
    past[1, 2:] = np.nan  # two runs only
    centre, sigma = history_spread(past)
    assert centre[0] == 0.0 and 0.005 < sigma[0] < 0.03  # not a band of zero
    assert 0.01 < float(np.median(sigma[2:])) < 0.04
    assert np.isfinite(sigma[1])  # the typical spread stands in for its own


# -- keys and verdicts ------------------------------------------------------------------


def test_identical_runs_are_all_same(results: Path) -> None:
    c = run_comparison(parse_base("base", results), results / "new", results, Method())
    assert c.counts() == {"same": 73}  # every summary row of the example run is its own key
    assert c.exit_code == 0 and not c.incomplete and c.spread == 0.0


def test_seeded_slowdown_flags_exactly_that_key(results: Path) -> None:
    """Seeded fault: one size of the tcp latency test made 20 % slower in 'new'."""
    rewrite_test(results, "new", LAT_TEST, size=LAT_SIZE, slowdown=1.2)
    c = run_comparison(parse_base("base", results), results / "new", results, Method())
    (worse,) = c.regressions
    assert worse.verdict == "worse" and worse.key["size_bytes"] == LAT_SIZE and worse.metric == "lat_median_s"
    # As a notebook calls it: BASE and NEW as the CLI takes them, the defaults.
    assert run_comparison("base", "new", results).to_dict() == c.to_dict()
    # 1,000 iterations in 10 blocks of 100 whose medians spread by about 7 %: a band of 17 %
    assert worse.ratio == pytest.approx(1.2) and worse.noise is not None and 0.1 < worse.noise < 0.2
    assert c.exit_code == 1
    # a factor above the slowdown lets it pass; so does a z that puts the noise band above it
    assert not run_comparison(parse_base("base", results), results / "new", results, Method(factor=1.25)).regressions
    wide = math.log(1.2) / math.log1p(worse.noise) * 5 * 1.01  # z at which the band covers 20 %
    assert not run_comparison(parse_base("base", results), results / "new", results, Method(z=wide)).regressions


def test_runs_that_wander_are_same_within_their_noise(results: Path) -> None:
    """Seeded: every key of 'new' moved by its own factor exp(N(0, 0.3)) (a host whose runs
    wander by about 30 %), and one key 20 % slower on top. Two such runs cannot support a
    verdict on a 20 % change: every key is same, and the line says how wide the noise is."""
    jitter_run(results, "new", 0.3, seed=7)
    rewrite_test(results, "new", LAT_TEST, size=LAT_SIZE, slowdown=1.2)
    c = run_comparison(parse_base("base", results), results / "new", results, Method())
    assert c.regressions == [] and c.exit_code == 0
    assert c.spread is not None and 0.2 < c.spread < 0.45  # the pooled run-to-run spread found the 0.3
    seeded = next(v for v in c.verdicts if v.key["size_bytes"] == LAT_SIZE and v.key["workload"] == "rdma_write_lat")
    assert seeded.verdict == "same" and seeded.noise is not None and seeded.noise > 1.0
    assert seeded.label(1.1) == f"same (noise ±{seeded.noise * 100:.0f} %)"
    assert "run-to-run spread of these two runs" in " ".join(c.notes)
    table = run_cli("compare", "base", "new", "--results", str(results)).stdout
    assert "same (noise ±" in table and "no regression" in table
    # ... while a key that moved far beyond that noise is still worse
    rewrite_test(results, "new", "006-tcp-write-bw", size=1 << 20, slowdown=200.0)
    (far,) = run_comparison(parse_base("base", results), results / "new", results, Method()).regressions
    assert far.key["size_bytes"] == 1 << 20 and far.metric == "bw_avg_Bps"


def test_repeats_are_the_units_when_a_key_has_them(tmp_path: Path) -> None:
    """A key measured by several repeats (separate launches) is judged on their spread, not
    on its iterations: two runs of a spec with repeat: 3, the second with one repeat's rows
    20 % slower (seeded), leave that key same, with the repeats' noise."""
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: rep\ntests:\n  - {name: lat, workload: rdma_write_lat, transport: tcp, sizes: [64], "
                    "iterations: 200, repeat: 3}\n")
    res = tmp_path / "res"
    assert run_cli("sweep", str(spec), "--results", str(res), "--run-id", "a", "--no-progress").returncode == 0
    copy_run(res, "a", "b")
    rewrite_test(res, "b", "000-lat-rep1", slowdown=1.2)
    base, new = load_keys(res / "a"), load_keys(res / "b")
    (key,) = new.keys
    assert new.keys[key].unit_kind == "repeats" and len(new.keys[key].units) == 3
    c = compare_runs(base, new)
    (v,) = c.verdicts
    assert v.verdict == "same" and v.noise is not None and v.noise > 0.1


def test_faster_is_better_and_lost_keys_fail_unless_the_spec_dropped_them(results: Path) -> None:
    """Seeded: the 2-rank allreduce twice as fast; the 3-rank one's rows removed from 'new'.
    Lost data never passes: the keys are missing (exit 1) while the new run's spec still has
    the test, and removed from the spec (exit 0) once its spec text drops it."""
    rewrite_test(results, "new", "000-allreduce-2r", size=8 << 20, slowdown=0.5)
    RunStore(results, "new").write_test(load_test_row(results / "new", "001-allreduce-3r"), [], [])  # type: ignore[arg-type]
    c = run_comparison(parse_base("base", results), results / "new", results, Method())
    counts = c.counts()
    assert counts["better"] == 2 and counts["missing"] == 14  # 8 MiB out- and in-place; 7 sizes x 2 flags
    for better in (v for v in c.verdicts if v.verdict == "better"):
        assert better.key["size_bytes"] == 8 << 20 and better.ratio == pytest.approx(2.0)
    assert c.exit_code == 1 and {v.verdict for v in c.regressions} == {"missing"}
    drop_from_spec(results, "new", "allreduce-3r")
    dropped = run_comparison(parse_base("base", results), results / "new", results, Method())
    assert dropped.counts()["removed"] == 14 and "missing" not in dropped.counts() and dropped.exit_code == 0
    assert {v.cause for v in dropped.verdicts if v.verdict == "removed"} == {"removed from the spec (test 'allreduce-3r')"}
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
    assert c.method.test == "history-spread" and c.base_runs == [f"h{i}" for i in range(5)]
    assert c.base_label == "history:5 (5 of 5 runs)"
    (worse,) = c.regressions
    assert worse.key["size_bytes"] == LAT_SIZE and worse.ratio == pytest.approx(1.2, rel=0.02)
    assert worse.noise is not None and worse.noise < 0.15  # its history's +-1 % (moderated, not 0) and its own blocks
    assert worse.cause is not None and worse.cause.startswith("changed from run new (this run)")
    # the step's figures in the unit of the tables (docs/UNITS.md), not seconds
    before, after = worse.cause.split(": lat_median_s ")[1].split(" -> ")
    assert before.endswith(" us") and after.endswith(" us")
    assert float(after.removesuffix(" us")) / float(before.removesuffix(" us")) == pytest.approx(1.2, rel=0.05)
    # Each complete history run's medians are cached beside it; a rewritten run is read afresh.
    assert all((results / f"h{i}" / MEDIANS_CACHE).exists() for i in range(5))
    for i in range(5):
        rewrite_test(results, f"h{i}", LAT_TEST, size=LAT_SIZE, slowdown=1.2)
    again = run_comparison(parse_base("history:5", results), results / "new", results, Method())
    assert not again.regressions


def test_history_says_what_it_used_and_leaves_out_other_hosts(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """history:7 with two earlier runs of the spec, one of them measured on another machine
    (its kernel differs, as the committed example run's does): '1 of 7 runs', the other left
    out and named; --any-host takes it; fewer than 3 runs are judged as a pair of runs."""
    copy_run(results, "base", "other", started="2026-12-01T00:30:00Z")
    meta_path = results / "other" / "run.json"
    meta = json.loads(meta_path.read_text())
    meta["inventory"]["nodes"][0]["kernel"] = "5.15.0-other"
    meta_path.write_text(json.dumps(meta))
    c = run_comparison(parse_base("history:7", results), results / "new", results, Method())
    assert c.base_label == "history:7 (1 of 7 runs)" and c.base_runs == ["base"]
    assert c.method.test == "noise-band"  # one earlier run shows no run-to-run spread: a pair
    notes = " ".join(c.notes)
    assert "1 of 7 runs" in notes and "left out 1 from other machines (--any-host takes them)" in notes
    wide = run_comparison(parse_base("history:7", results), results / "new", results, Method(), Scope(any_host=True))
    assert wide.base_label == "history:7 (2 of 7 runs)" and wide.base_runs == ["base"]  # still a pair: the latest
    out = bf(capsys, "compare", "--history", "7", "new", "--results", str(results))
    assert out.returncode == 0 and "# compare history:7 (1 of 7 runs) -> new" in out.stdout
    # another text of the spec is left out the same way, unless --any-spec
    drop_from_spec(results, "base", "broadcast-2r")
    lone = run_comparison(parse_base("history:7", results), results / "new", results, Method())
    assert lone.base_runs == [] and "1 from another text of the spec (--any-spec takes them)" in " ".join(lone.notes)
    assert run_comparison(parse_base("history:7", results), results / "new", results, Method(),
                          Scope(any_spec=True)).base_runs == ["base"]


def _truncate(part: Path) -> None:
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])


@pytest.mark.parametrize("side", ["new", "base"])
def test_a_damaged_store_fails_the_comparison_naming_the_file(results: Path, side: str,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Seeded: one Parquet part of either run cut in half. No verdict stands on unreadable
    data: the comparison is damaged, names the file and exits 1 (never 'no regression')."""
    part = results / side / "summary" / f"{LAT_TEST}.parquet"
    _truncate(part)
    c = run_comparison(parse_base("base", results), results / "new", results, Method())
    assert c.exit_code == 1 and c.verdicts == [] and len(c.damaged) == 1 and str(part) in c.damaged[0]
    out = bf(capsys, "compare", "base", "new", "--results", str(results), "--save")
    assert out.returncode == 1 and "damaged" in out.stdout and str(part) in out.stdout
    assert "no regression" not in out.stdout and "Traceback" not in out.stderr
    if side == "base":  # the new run is intact: the verdicts beside it say what happened
        saved = read_verdicts(results / "new")
        assert saved is not None and saved.damaged and str(part) in saved.damaged[0]
        suite = ET.parse(results / "new" / "verdicts.junit.xml").getroot().find("testsuite")
        assert suite is not None and suite.get("failures") == "1"
        exported = bf(capsys, "export", "new", "--openmetrics", "--results", str(results))
        assert 'benchfab_comparison_damaged{run_id="new",base="base"} 1.0' in exported.stdout


def test_a_deleted_summary_never_passes(results: Path) -> None:
    """Seeded: the new run's summary/ directory deleted. Whether the store reports the
    directory as damaged or reads no rows, the comparison fails: damaged, or every key
    missing (the spec still plans them all), exit 1."""
    import shutil

    shutil.rmtree(results / "new" / "summary")
    c = run_comparison(parse_base("base", results), results / "new", results, Method())
    assert c.exit_code == 1
    assert c.damaged or c.counts() == {"missing": 73}, c.counts()


def test_a_damaged_history_run_fails_the_history(results: Path) -> None:
    """Seeded: three earlier runs, then the middle one's summary part cut in half after a
    history has cached its medians (the cache must not hide it)."""
    for i in range(3):
        copy_run(results, "base", f"h{i}", started=f"2026-12-01T0{i + 2}:00:00Z")
    assert run_comparison(parse_base("history:5", results), results / "new", results, Method()).exit_code == 0
    assert (results / "h1" / MEDIANS_CACHE).exists()
    _truncate(results / "h1" / "summary" / f"{LAT_TEST}.parquet")
    c = run_comparison(parse_base("history:5", results), results / "new", results, Method())
    assert c.exit_code == 1 and c.damaged and "h1" in c.damaged[0]


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
    assert doc["schema"] == 2 and doc["new"] == "new" and doc["base"] == {"label": "base", "runs": ["base"]}
    assert doc["method"] == {"test": "noise-band", "factor": 1.1, "z": 5.0} and doc["damaged"] == []
    (bad,) = [v for v in doc["verdicts"] if v["verdict"] == "worse"]
    assert bad["key"]["size_bytes"] == LAT_SIZE and set(bad) == {
        "key", "key_id", "metric", "higher_is_better", "verdict", "base_median", "new_median", "ratio", "noise", "cause"}
    for path in (junit, results / "new" / "verdicts.junit.xml"):
        suite = ET.parse(path).getroot().find("testsuite")
        assert suite is not None and suite.get("tests") == "73" and suite.get("failures") == "1"
        (failed,) = [c for c in suite.iter("testcase") if c.find("failure") is not None]
        assert failed.get("name") == bad["key_id"]
        message = failed.find("failure").get("message")  # type: ignore[union-attr]
        assert "ratio 1.200" in message and "us" in message and "noise ±" in message
    md = bf(capsys, "compare", "base", "new", "--results", res, "-o", "markdown", "--factor", "1.3")
    assert md.returncode == 0 and "| same |" in md.stdout and "no regression" in md.stdout
    # base and new mix metrics: each cell carries the unit of its metric (docs/UNITS.md)
    unit_of_metric = {"busbw_Bps": " GB/s", "bw_avg_Bps": " Gb/s", "lat_median_s": " us"}
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in md.stdout.splitlines() if line.startswith("| same")]
    assert len(rows) == 73 and {r[2] for r in rows} == set(unit_of_metric)
    assert all(r[3].endswith(unit_of_metric[r[2]]) and r[4].endswith(unit_of_metric[r[2]]) for r in rows)
    js = bf(capsys, "compare", "base", "new", "--results", res, "-o", "json")
    assert json.loads(js.stdout)["verdicts"][0]["verdict"] == "worse"
    assert bf(capsys, "compare", "--history", "1", "new", "--results", res).returncode == 1
    for bad_args in (["compare", "nope", "new"], ["compare", "base"], ["compare", "history:x", "new"],
                     ["compare", "base", "new", "--factor", "0.5"], ["compare", "base", "new", "--noise-z", "-1"]):
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
