"""The medians file a history reads of each earlier run (benchfab.compare.keys.load_medians):
written by the controller that holds the run, never by a history while a controller holds it,
and a file planted where it belongs (a FIFO, another table) read as absent, never trusted."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchfab.compare import Method, parse_base, run_comparison
from benchfab.compare.keys import MEDIANS_CACHE, load_medians
from benchfab.runlock import RunLock
from tests.helpers import ROOT
from tests.verdict_faults import copy_run, rewrite_test

LAT_TEST = "007-tcp-write-lat"  # its judged figure: lat_median_s


@pytest.fixture
def history(tmp_path: Path) -> Path:
    """results/ with three earlier copies of the example run (h0..h2) and 'new'."""
    res = tmp_path / "results"
    res.mkdir()
    shutil.copytree(ROOT / "results" / "example", res / "example")
    for i in range(3):
        copy_run(res, "example", f"h{i}", started=f"2026-12-01T0{i + 1}:00:00Z")
    copy_run(res, "example", "new", started="2026-12-02T01:00:00Z")
    shutil.rmtree(res / "example")
    for run in res.iterdir():
        (run / MEDIANS_CACHE).unlink(missing_ok=True)
    return res


def _history(results: Path) -> int:
    return run_comparison(parse_base("history:3", results), results / "new", results, Method()).exit_code


def test_a_history_leaves_a_held_run_to_its_controller(history: Path) -> None:
    """While a controller holds h1 (a diagnose adding retests), a history reads it but writes
    no medians file into it; the controller itself (owned) does, and so does the next history
    once the lock is gone. Every run's medians are the same, read either way."""
    derived = load_medians(history / "h1")[1]
    (history / "h1" / MEDIANS_CACHE).unlink()
    with RunLock(history / "h1"):
        assert _history(history) == 0
        assert not (history / "h1" / MEDIANS_CACHE).exists()
        assert (history / "h0" / MEDIANS_CACHE).exists() and (history / "h2" / MEDIANS_CACHE).exists()
        load_medians(history / "h1", owned=True)
        assert (history / "h1" / MEDIANS_CACHE).exists()
    (history / "h1" / MEDIANS_CACHE).unlink()
    assert _history(history) == 0 and (history / "h1" / MEDIANS_CACHE).exists()
    cached = load_medians(history / "h1")[1]
    assert cached.sort_index().equals(derived.sort_index()) and len(cached) > 10


def test_a_stale_or_planted_medians_file_is_never_read(history: Path) -> None:
    """Seeded: h0's file replaced by a FIFO (an open would block the history forever), h1's by
    a Parquet table of another shape, h2's left stale by a rewritten test (its latency 2x). The
    history reads none of them: it derives each run's medians again, so h2's rewritten key
    reads its new figure, and replaces the files."""
    assert _history(history) == 0
    before = load_medians(history / "h2")[1]
    (history / "h0" / MEDIANS_CACHE).unlink()
    os.mkfifo(history / "h0" / MEDIANS_CACHE)
    pq.write_table(pa.table({"key": ["x"], "value": [1.0]}), history / "h1" / MEDIANS_CACHE)
    rewrite_test(history, "h2", LAT_TEST, slowdown=2.0)
    assert _history(history) == 0
    for run in ("h0", "h1", "h2"):
        assert (history / run / MEDIANS_CACHE).is_file(), run
    after = load_medians(history / "h2")[1]
    changed = [k for k in before.index if after[k] != before[k]]
    assert changed and all(after[k] == pytest.approx(before[k] * 2.0, rel=1e-9) for k in changed)
