"""The verdicts on real local sweeps (gloo all-reduce and tcp latency between local processes):
`sweep --baseline` compares at the end and sets the exit code, a seeded 50 % slowdown of one
key flags exactly that key (sensitivity check against the run it was copied from), and a
damaged base or lost data fails the gate.

Two local runs minutes apart are not compared with each other here: on this shared 2-core
box tcp latency between them moved 4x even with a load average below the cores, which says
nothing about benchfab. The false-positive and sensitivity checks between two real runs are
tests/sim/test_verdicts_on_shaped_links.py, on links a shaper holds steady (root, as in CI)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchfab.compare import Method, parse_base, run_comparison
from benchfab.compare.keys import MEDIANS_CACHE
from benchfab.store import RunStore
from tests.conftest import run_cli
from tests.test_compare import load_test_row
from tests.verdict_faults import copy_run, rewrite_test

pytestmark = pytest.mark.slow

SPEC = """\
name: verdicts
defaults: {iterations: 30, warmup: 5, timeout: 120s}
tests:
  - name: ar
    workload: allreduce
    ranks: 2
    sizes: [64K, 1M]
    in_place: false
  - name: lat
    workload: rdma_write_lat
    transport: tcp
    sizes: [8, 4K]
    iterations: 1000
"""
SEEDED_TEST, SEEDED_SIZE = "001-lat", 4096


@dataclass
class TwoRuns:
    results: Path
    base_proc_rc: int
    new_stdout: str
    new_rc: int


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> TwoRuns:
    """'a' then 'b' of the same spec, 'b' with --baseline a (compared at the end of its sweep)."""
    tmp = tmp_path_factory.mktemp("verdicts")
    spec = tmp / "spec.yaml"
    spec.write_text(SPEC)
    results = tmp / "results"
    a = run_cli("sweep", str(spec), "--results", str(results), "--run-id", "a", "--no-progress")
    b = run_cli("sweep", str(spec), "--results", str(results), "--run-id", "b", "--no-progress", "--baseline", "a")
    assert a.returncode == 0, a.stderr
    return TwoRuns(results, a.returncode, b.stdout, b.returncode)


def test_sweep_with_baseline_compares_and_sets_the_exit_code(two_runs: TwoRuns) -> None:
    doc = json.loads((two_runs.results / "b" / "verdicts.json").read_text())
    assert doc["base"] == {"label": "a", "runs": ["a"]} and doc["new"] == "b"
    assert len(doc["verdicts"]) == 4 and "# compare a -> b" in two_runs.new_stdout
    regressions = [v for v in doc["verdicts"] if v["verdict"] in ("worse", "failed", "changed", "missing")]
    assert two_runs.new_rc == (1 if regressions else 0)
    assert (two_runs.results / "b" / "verdicts.junit.xml").exists()
    # Each complete run leaves the medians a later history reads, so a history never reads cold.
    assert all((two_runs.results / r / MEDIANS_CACHE).is_file() for r in ("a", "b"))


def test_seeded_slowdown_flags_exactly_that_key(two_runs: TwoRuns) -> None:
    """Sensitivity check. Seeded fault: run 'b' copied to 'c' with the tcp latency test's
    4 KiB times made 50 % longer, written through the store's own writer. 50 %, not 20 %: the
    copy's only noise is the run's own (10 blocks of 100 iterations), which a local run on a
    busy 2-core box can spread over +-20 %; the 15 % sensitivity is tests/sim's."""
    results = two_runs.results
    copy_run(results, "b", "c")
    rewrite_test(results, "c", SEEDED_TEST, size=SEEDED_SIZE, slowdown=1.5)
    against_itself = run_comparison(parse_base("b", results), results / "c", results, Method())
    assert [(v.verdict, v.key["size_bytes"], v.key["workload"]) for v in against_itself.regressions] == [
        ("worse", SEEDED_SIZE, "rdma_write_lat")]


def test_unknown_baseline_is_refused_before_the_sweep(two_runs: TwoRuns, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    proc = run_cli("sweep", str(spec), "--results", str(two_runs.results), "--run-id", "z", "--baseline", "no-such")
    assert proc.returncode == 2 and "no run 'no-such'" in proc.stderr
    assert not (two_runs.results / "z").exists()


def test_sweep_baseline_fails_on_a_damaged_base_or_lost_data(two_runs: TwoRuns, tmp_path: Path) -> None:
    """What the nightly job runs (sweep --baseline): seeded, the base 'a' copied with one
    Parquet part cut in half, then with one test's rows gone. Neither passes the gate: the
    sweep's tests are all ok, yet it exits 1, saying damaged (and the file) or missing."""
    results = two_runs.results
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    copy_run(results, "a", "cut")
    part = sorted((results / "cut" / "summary").glob("round-*.parquet"))[0]  # the first round's: 000-ar's rows
    part.write_bytes(part.read_bytes()[:100])
    damaged = run_cli("sweep", str(spec), "--results", str(results), "--run-id", "d", "--no-progress", "--baseline", "cut")
    assert damaged.returncode == 1, damaged.stderr
    assert "damaged" in damaged.stdout and str(part) in damaged.stdout and "Traceback" not in damaged.stderr
    assert json.loads((results / "d" / "verdicts.json").read_text())["damaged"]

    copy_run(results, "a", "full")
    RunStore(results, "d").write_test(load_test_row(results / "d", SEEDED_TEST), [], [])  # type: ignore[arg-type]
    lost = run_cli("compare", "full", "d", "--results", str(results))
    assert lost.returncode == 1 and "missing" in lost.stdout and "not measured in the new run" in lost.stdout
