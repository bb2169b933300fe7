"""A round's tests stored as one part per table (benchfab.store.layout): three files a round,
whatever its size; a test measured again (--resume after it failed) ends with exactly one set of
rows, from an older per-test part or round part, even when a crash stops the writer between
storing the new part and cleaning the old; runs stored one part per test still read."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

import benchfab
from benchfab.compare.keys import load_keys, load_medians
from benchfab.errors import DamagedRun
from benchfab.store import RunStore, read_columns, read_table, summary_chunks
from tests.store_layouts import TABLES, to_rounds, write_per_test

EXAMPLE = Path(__file__).resolve().parents[1] / "results" / "example"


def _rows(test_id: str, status: str = "ok", sizes: int = 3) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """A test's rows; ``time_s`` tells a failed attempt (2 ms) from the rerun (1 ms)."""
    t = 1e-3 if status == "ok" else 2e-3
    test = {"run_id": "r", "test_id": test_id, "test_name": "t", "workload": "allreduce", "profile": "lo",
            "fabric": "loopback", "mode": "none", "ranks": 2, "nodes": 1, "dtype": "float32", "redop": "sum",
            "status": status, "reason": "" if status == "ok" else "rank 1 exited", "log_tail": "", "started": 1.0,
            "ended": 2.0, "duration_s": 1.0, "used": "{}"}
    key = {"workload": "allreduce", "profile": "lo", "fabric": "loopback", "mode": "none", "memory": "host",
           "transport": "gloo", "engine": "torch", "ranks": 2, "nodes": 1, "hosts": "localhost", "dtype": "float32",
           "redop": "sum", "in_place": False, "env": ""}  # records.MEASUREMENT_KEY, less the size
    summary = [{"schema_version": 1, "run_id": "r", "test_id": test_id, **key, "size_bytes": 8 << i, "time_s": t,
                "busbw_Bps": (8 << i) / t, "wrong": 0, "status": status, "reason": ""} for i in range(sizes)]
    raw = [{"run_id": "r", "test_id": test_id, "size_bytes": 8, "in_place": False, "iteration": i, "time_s": t}
           for i in range(4)]
    return test, summary, raw


def _store(tmp_path: Path) -> RunStore:
    store = RunStore(tmp_path, "r")
    store.write_meta({"status": "complete", "started": "2026-12-01T00:00:00Z", "spec": {"name": "r"}})
    return store


def _files(store: RunStore) -> dict[str, list[str]]:
    return {t: sorted(p.name for p in (store.path / t).glob("*.parquet")) for t in TABLES}


def _assert_one_row_set(store: RunStore, tests: int, rerun: str) -> None:
    """Every reader sees each test once, the rerun test with its new (ok) rows only."""
    run = benchfab.load_run(store.path)
    assert sorted(run.tests["test_id"]) == sorted(set(run.tests["test_id"])) and len(run.tests) == tests
    assert len(run.summary) == 3 * tests and len(run.raw) == 4 * tests
    assert set(run.summary.loc[run.summary["test_id"] == rerun, "time_s"]) == {1e-3}
    assert set(run.tests["status"]) == {"ok"} and store.finished_tests() == set(run.tests["test_id"])
    scanned = read_columns(store.path, "summary", ["test_id", "time_s"], categorical=["test_id"])
    assert len(scanned) == 3 * tests and set(scanned.loc[scanned["test_id"] == rerun, "time_s"]) == {1e-3}
    assert len(read_columns(store.path, "raw", ["time_s"])) == 4 * tests
    shown = list(summary_chunks(store.path, read_table(store.path, "tests")))
    assert len(shown) == tests and {len(c.rows) for c in shown} == {3}
    keys = load_keys(store.path).keys  # every test measured the same 3 sizes: 3 keys, each ok
    assert len(keys) == 3 and all(k.ok for k in keys.values())


@pytest.mark.parametrize("tests", [1, 7, 64])
def test_a_round_is_three_files_whatever_its_size(tmp_path: Path, tests: int) -> None:
    store = _store(tmp_path)
    store.write_tests([_rows(f"{i:03d}-t") for i in range(tests)])
    store.write_tests([_rows(f"{i:03d}-u") for i in range(tests)])
    assert _files(store) == {t: ["round-000001.parquet", "round-000002.parquet"] for t in TABLES}
    run = benchfab.load_run(store.path)
    assert len(run.tests) == 2 * tests and len(run.summary) == 6 * tests and len(run.raw) == 8 * tests
    # A later writer of the run (a resume, diagnose) numbers on; ids stay valid file names.
    RunStore(tmp_path, "r").write_test(*_rows("999-late"))
    assert _files(store)["tests"][-1] == "round-000003.parquet"


def test_resume_after_a_failed_test_in_a_round_part_keeps_one_row_set(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.write_tests([_rows("000-a"), _rows("001-b", "failed"), _rows("002-c")])
    again = RunStore(tmp_path, "r")  # a --resume: a new controller
    assert again.finished_tests() == {"000-a", "002-c"}
    again.write_tests([_rows("001-b")])
    _assert_one_row_set(again, 3, "001-b")
    assert _files(again)["tests"] == ["round-000001.parquet", "round-000002.parquet"]
    # A round whose every test is measured again goes, all three files.
    again.write_tests([_rows("000-a"), _rows("002-c")])
    assert _files(again) == {t: ["round-000002.parquet", "round-000003.parquet"] for t in TABLES}
    _assert_one_row_set(again, 3, "001-b")


def test_resume_of_a_run_stored_one_part_per_test_keeps_one_row_set(tmp_path: Path) -> None:
    store = _store(tmp_path)
    for tid, status in (("000-a", "ok"), ("001-b", "failed"), ("002-c", "ok")):
        write_per_test(store.path, *_rows(tid, status))
    assert RunStore(tmp_path, "r").finished_tests() == {"000-a", "002-c"}
    again = RunStore(tmp_path, "r")
    again.write_tests([_rows("001-b")])
    _assert_one_row_set(again, 3, "001-b")
    assert _files(again) == {t: ["000-a.parquet", "002-c.parquet", "round-000001.parquet"] for t in TABLES}


@pytest.mark.parametrize("older", ["per-test", "round"])
def test_a_crash_before_the_older_part_is_cleaned_still_reads_one_row_set(tmp_path: Path, older: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(tmp_path)
    if older == "per-test":
        for tid, status in (("000-a", "ok"), ("001-b", "failed"), ("002-c", "ok")):
            write_per_test(store.path, *_rows(tid, status))
    else:
        store.write_tests([_rows("000-a"), _rows("001-b", "failed"), _rows("002-c")])
    old_part = "001-b.parquet" if older == "per-test" else "round-000001.parquet"
    # The writer stops after the new part (the first step), as a crash there would leave it.
    monkeypatch.setattr(RunStore, "_drop_tests", lambda self, name, again: None)
    crashed = RunStore(tmp_path, "r")
    crashed.write_tests([_rows("001-b")])
    assert "001-b" in set(read_table(store.path, "tests").query("status == 'ok'")["test_id"])
    for table in TABLES:  # the failed attempt's rows are all still on disk
        assert old_part in _files(store)[table]
    _assert_one_row_set(store, 3, "001-b")
    load_medians(store.path)  # the medians file of the complete run: from the counted rows
    assert len(load_medians(store.path)[1]) == 3
    monkeypatch.undo()
    # Halfway through the cleaning (summary/ and raw/ done, tests/ not): still one row set.
    RunStore(tmp_path, "r")._drop_tests(old_part, {"001-b"})
    _assert_one_row_set(store, 3, "001-b")


def test_a_round_part_without_its_tests_row_is_overwritten_by_the_next_writer(tmp_path: Path) -> None:
    """A crash after summary/ and raw/ but before tests/: those tests count as not run, and the
    part's number is taken again by the next round, replacing what was left."""
    store = _store(tmp_path)
    store.write_tests([_rows("000-a")])
    store.write_tests([_rows("001-b", "failed")])
    (store.path / "tests" / "round-000002.parquet").unlink()
    again = RunStore(tmp_path, "r")
    assert again.finished_tests() == {"000-a"}
    again.write_tests([_rows("001-b")])
    assert _files(again) == {t: ["round-000001.parquet", "round-000002.parquet"] for t in TABLES}
    _assert_one_row_set(again, 2, "001-b")


def test_a_run_stored_one_part_per_test_reads_as_one_stored_in_rounds(tmp_path: Path) -> None:
    """results/example is a real run of the earlier layout (one part per test): it reads as
    before, and the same tests stored again in rounds read the same."""
    assert {p.name for p in (EXAMPLE / "tests").glob("*.parquet")} >= {"000-allreduce-2r.parquet"}
    old = benchfab.load_run(EXAMPLE)
    shutil.copytree(EXAMPLE, tmp_path / "old")  # the medians file is written beside the run: not into the checkout
    shutil.copytree(EXAMPLE, tmp_path / "example")
    rounds = to_rounds(tmp_path / "example", 3)
    assert len(rounds) == 3 and len(list((tmp_path / "example" / "summary").glob("*.parquet"))) == 3
    new = benchfab.load_run(tmp_path / "example")
    for table in ("summary", "tests"):
        order = ["test_id", *(["size_bytes", "in_place"] if table == "summary" else [])]
        a, b = (getattr(r, table).sort_values(order, ignore_index=True) for r in (old, new))
        assert len(a) == len(b) and set(a.columns) <= set(b.columns), table
        for column in a.columns:
            assert _values(a[column]) == _values(b[column]), (table, column)
    assert sorted(load_medians(tmp_path / "old")[1].items()) == sorted(load_medians(tmp_path / "example")[1].items())


def _values(column: Any) -> list[Any]:
    return [None if v is None or v != v else v for v in column.astype(object).tolist()]


def test_a_value_of_another_type_than_the_records_say_is_stored_as_it_is(tmp_path: Path) -> None:
    """The round's tables are built straight in Arrow: a fraction in an integer column is never
    cut to a whole number (it is stored as a float, as pandas stored it)."""
    store = _store(tmp_path)
    test, summary, raw = _rows("000-a")
    summary[0]["iterations"] = 2.5
    summary[1]["iterations"] = 3
    store.write_tests([(test, summary, raw), _rows("001-b")])
    stored = benchfab.load_run(store.path).summary
    assert stored.loc[stored["test_id"] == "000-a", "iterations"].tolist()[:2] == [2.5, 3.0]
    assert str(benchfab.load_run(store.path).raw["iteration"].dtype) == "int64"  # whole numbers stay integers


def test_a_fifo_where_the_older_part_was_is_named_never_opened(tmp_path: Path) -> None:
    """A hostile user of a shared results directory plants a FIFO where the part to clean is:
    the writer names it (an open would block the sweep forever); the new part is stored."""
    store = _store(tmp_path)
    store.write_tests([_rows("000-a"), _rows("001-b", "failed")])
    part = store.path / "summary" / "round-000001.parquet"
    part.unlink()
    os.mkfifo(part)
    with pytest.raises(DamagedRun, match=f"{part}: a FIFO"):
        RunStore(tmp_path, "r").write_tests([_rows("001-b")])
    assert (store.path / "tests" / "round-000002.parquet").exists()
