"""Results store: round trip, atomic parts, schema version, run lookup."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import benchfab
from benchfab.errors import StoreError
from benchfab.store import RunStore, list_runs, resolve_run_path


def _rows(test_id: str, n: int = 3) -> tuple[dict, list[dict], list[dict]]:  # type: ignore[type-arg]
    test = {"run_id": "r", "test_id": test_id, "test_name": "t", "workload": "allreduce", "profile": "lo",
            "fabric": "loopback", "mode": "none", "ranks": 2, "nodes": 1, "dtype": "float32", "redop": "sum",
            "status": "ok", "reason": "", "log_tail": "", "started": 1.0, "ended": 2.0, "duration_s": 1.0, "used": "{}"}
    summary = [{"schema_version": 1, "run_id": "r", "test_id": test_id, "size_bytes": 8 << i, "in_place": False,
                "time_s": 1e-3 * (i + 1), "algbw_Bps": (8 << i) / (1e-3 * (i + 1)), "busbw_Bps": (8 << i) / (1e-3 * (i + 1)),
                "wrong": 0, "status": "ok", "reason": ""} for i in range(n)]
    raw = [{"run_id": "r", "test_id": test_id, "size_bytes": 8, "in_place": False, "iteration": i, "time_s": 1e-3} for i in range(5)]
    return test, summary, raw


def test_round_trip(tmp_path: Path) -> None:
    store = RunStore(tmp_path, "r")
    store.write_meta({"started": "2026-11-27T00:00:00Z", "status": "complete", "spec": {"name": "x"}})
    for tid in ("a", "b"):
        store.write_test(*_rows(tid))
    run = benchfab.load_run("r", tmp_path)
    assert len(run.summary) == 6 and len(run.raw) == 10 and len(run.tests) == 2
    assert run.summary["size_bytes"].tolist()[:3] == [8, 16, 32]
    assert run.meta["schema_version"] == 1 and run.meta["run_id"] == "r"
    assert store.finished_tests() == {"a", "b"}
    # no temporary files left behind
    assert not [p for p in tmp_path.rglob(".*.tmp")]


def test_rewriting_a_test_replaces_it(tmp_path: Path) -> None:
    store = RunStore(tmp_path, "r")
    store.write_meta({})
    test, summary, raw = _rows("a")
    test["status"] = "timeout"
    store.write_test(test, summary[:1], raw)
    assert store.finished_tests() == set()
    store.write_test(*_rows("a"))
    run = benchfab.load_run(tmp_path / "r")
    assert len(run.summary) == 3 and store.finished_tests() == {"a"}


def test_schema_version_is_checked(tmp_path: Path) -> None:
    store = RunStore(tmp_path, "r")
    store.write_meta({})
    meta = json.loads((tmp_path / "r" / "run.json").read_text())
    meta["schema_version"] = 99
    (tmp_path / "r" / "run.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="schema version 99"):
        benchfab.load_run("r", tmp_path)


def test_run_lookup_by_prefix_and_latest(tmp_path: Path) -> None:
    for rid, started in (("20261101-a", "2026-11-01"), ("20261102-b", "2026-11-02")):
        RunStore(tmp_path, rid).write_meta({"started": started})
    assert resolve_run_path("20261101", tmp_path).name == "20261101-a"
    assert resolve_run_path("latest", tmp_path).name == "20261102-b"
    with pytest.raises(StoreError, match="ambiguous"):
        resolve_run_path("2026110", tmp_path)
    with pytest.raises(StoreError, match="no run"):
        resolve_run_path("nope", tmp_path)
    assert [p.name for p in list_runs(tmp_path)] == ["20261101-a", "20261102-b"]


def test_invalid_run_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        RunStore(tmp_path, "../escape")


def test_load_runs_of_nothing_is_an_empty_frame(tmp_path: Path) -> None:
    frame = benchfab.load_runs(tmp_path)
    assert isinstance(frame, pd.DataFrame) and frame.empty and "busbw_Bps" in frame.columns
